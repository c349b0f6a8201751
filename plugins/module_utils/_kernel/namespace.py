# This file is private to the wharf.network collection: its API may change at any time.
"""One place that talks to the kernel about namespaces and opens netlink sockets in them.

Why not `IPRoute(netns=NAME)`: pyroute2 0.9 forks a helper process per namespace to create the
socket (and silently creates the namespace unless `flags=0`). Entering the namespace with
setns(2) on this thread, opening the socket there and coming back costs about a millisecond and
no fork, which is what makes one module call over hundreds of namespaces cheap. A netlink
socket stays bound to the namespace it was created in, so the socket keeps working after the
thread has returned home.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from collections.abc import Callable, Iterator

from ansible_collections.wharf.network.plugins.module_utils._engine.errors import WharfError, kernel_error
from ansible_collections.wharf.network.plugins.module_utils._kernel.rtnl import Rtnl

NETNS_RUN_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
CLONE_NEWUTS = 0x04000000
MS_BIND = 4096
MS_REC = 16384
MS_SHARED = 1 << 20
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def setns(fd: int, nstype: int) -> None:
    """Move the calling thread into the namespace behind `fd`."""
    _check(_libc.setns(fd, nstype), "setns")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(source: str, target: str, fstype: str, flags: int) -> None:
    _check(
        _libc.mount(source.encode(), target.encode(), fstype.encode(), flags, None),
        f"mount {source} on {target}",
    )


def umount(target: str) -> None:
    _check(_libc.umount2(target.encode(), MNT_DETACH), f"umount {target}")


def netns_path(name: str) -> str:
    return os.path.join(NETNS_RUN_DIR, name)


def netns_exists(name: str) -> bool:
    return os.path.exists(netns_path(name))


def list_netns() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_RUN_DIR))
    except FileNotFoundError:
        return []


@contextlib.contextmanager
def entered(path: str, nstype: int = CLONE_NEWNET) -> Iterator[None]:
    """Run the body of the `with` on this thread inside the namespace file `path`.

    The thread always returns to the namespace it came from, also when the body raises.
    """
    kind = "net" if nstype == CLONE_NEWNET else "uts"
    home = os.open(f"/proc/thread-self/ns/{kind}", os.O_RDONLY)
    try:
        target = os.open(path, os.O_RDONLY)
        try:
            setns(target, nstype)
        finally:
            os.close(target)
        try:
            yield
        finally:
            setns(home, nstype)
    finally:
        os.close(home)


def prepare_run_dir(directory: str = NETNS_RUN_DIR) -> None:
    """Make `directory` a shared mount point, as `ip netns add` does.

    Namespaces bound into a shared directory stay visible to mount namespaces created later
    from this one (e.g. by `ip netns exec`), so every tool sees the same set.
    """
    os.makedirs(directory, exist_ok=True)
    try:
        mount("none", directory, "none", MS_SHARED | MS_REC)
    except OSError:
        mount(directory, directory, "none", MS_BIND | MS_REC)
        mount("none", directory, "none", MS_SHARED | MS_REC)


def create_namespace_file(path: str, nstype: int, inside: Callable[[], None] | None = None) -> None:
    """Create a new namespace of `nstype` and pin it by a bind mount on `path`.

    The thread unshares, binds its new namespace, runs `inside()` there (e.g. to open a socket
    or bring loopback up without a second setns) and goes back home: no child process. The
    caller makes sure the directory of `path` exists (and, for network namespaces, is shared:
    see `prepare_run_dir`).
    """
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
    os.close(fd)
    kind = "net" if nstype == CLONE_NEWNET else "uts"
    home = os.open(f"/proc/thread-self/ns/{kind}", os.O_RDONLY)
    try:
        try:
            unshare(nstype)
            mount(f"/proc/thread-self/ns/{kind}", path, "none", MS_BIND)
            if inside is not None:
                inside()
        except OSError:
            with contextlib.suppress(OSError):
                umount(path)
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        finally:
            setns(home, nstype)
    finally:
        os.close(home)


def remove_namespace_file(path: str) -> None:
    """Unpin a namespace; the kernel frees it once no process or socket holds it."""
    try:
        umount(path)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOENT):
            raise
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class NamespaceSockets:
    """Netlink sockets (`Rtnl`), one per namespace, opened on first use and reused.

    `None` is the namespace the module runs in. A module run creates one of these, passes it
    to every resource and closes it at the end.
    """

    def __init__(self) -> None:
        self._sockets: dict[str | None, Rtnl] = {}

    def get(self, namespace: str | None) -> Rtnl:
        if namespace in self._sockets:
            return self._sockets[namespace]
        if namespace is None:
            rtnl = Rtnl()
        else:
            if not netns_exists(namespace):
                raise WharfError(f"namespace '{namespace}' does not exist")
            try:
                with entered(netns_path(namespace)):
                    rtnl = Rtnl()
            except OSError as exc:
                raise kernel_error(f"namespace '{namespace}'", "open netlink socket", exc) from exc
        self._sockets[namespace] = rtnl
        return rtnl

    def adopt(self, namespace: str, rtnl: Rtnl) -> None:
        """Keep a socket opened while the thread was inside a namespace it just created."""
        self._sockets[namespace] = rtnl

    def forget(self, namespace: str | None) -> None:
        """Close the socket of a namespace that is about to be removed."""
        rtnl = self._sockets.pop(namespace, None)
        if rtnl is not None:
            rtnl.close()

    def close(self) -> None:
        for rtnl in self._sockets.values():
            with contextlib.suppress(OSError):
                rtnl.close()
        self._sockets.clear()

    def __enter__(self) -> NamespaceSockets:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ns_label(namespace: str | None) -> str:
    """How a namespace is named in messages and diffs."""
    return namespace if namespace else "(host)"
