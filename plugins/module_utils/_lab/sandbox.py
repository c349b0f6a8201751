# This file is private to the wharf.network collection: its API may change at any time without notice.
"""Sandbox hosts: long-lived processes that stand in for machines on the controller.

A sandbox host is one process holding its own network, UTS and mount namespaces. Inside it, the
directories the collection writes to (``/run/netns``, ``/etc/netns``, ``/run/wharf``) are private
tmpfs mounts and ``/sys`` shows the sandbox's own network namespace, so everything a play does
inside — named network namespaces, bridges, nftables tables, state files — stays inside and is
invisible to the machine. Killing every process of the sandbox frees all of it: the named network
namespaces of containers are bind mounts in the sandbox's private mount namespace, which disappears
with its last process.

Standard library only, because the connection plugin, the module and the ``bin/wharf-sandbox``
CLI all load this file, the CLI without Ansible installed. The functions that run commands take the runner
as ``run`` (a :data:`Runner`): the module passes ``AnsibleModule.run_command``, controller-side callers
``plugins/plugin_utils/process.run_process``; nothing here starts a process itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import hashlib
import json
import os
import re
import signal
import time
from collections.abc import Callable, Iterator

RUN_DIR = "/run/wharf-sandbox"
"""Default directory for ``NAME.pid`` and ``NAME.json``; the environment variable
``WHARF_SANDBOX_RUN_DIR`` overrides it (read at each call, so tests and labs can keep their own)."""

RUN_DIR_ENV = "WHARF_SANDBOX_RUN_DIR"

PRIVATE_DIRS = ("/run/netns", "/etc/netns", "/run/wharf")
"""Directories that get a private tmpfs inside every sandbox. They must exist on the machine to
serve as mount points; creating them there (empty) is harmless."""

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
HOSTNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

Runner = Callable[[list[str]], tuple[int, str, str]]
"""Runs an argv (no shell) and returns (exit code, stdout, stderr): ``AnsibleModule.run_command``'s contract."""

# The sandbox keeps this environment for its whole life; commands entered later via nsenter
# bring their own, so only the setup script below depends on it.
_SANDBOX_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C")

# Runs as the sandbox process itself (unshare execs it without forking), then becomes
# `sleep infinity`: the parent knows setup succeeded when the process's command name is "sleep".
# $1 is the hostname, passed as an argument so it is never parsed as shell code.
_SETUP_SCRIPT = """set -e
for dir in {dirs}; do mount -t tmpfs -o mode=0755 wharf-sandbox "$dir"; done
mount -t sysfs sysfs /sys
ip link set lo up
printf '%s' "$1" > /proc/sys/kernel/hostname
exec sleep infinity
""".format(dirs=" ".join(PRIVATE_DIRS))

# Starts the sandbox in the background and prints its pid, so the sandbox is reparented to init
# at once: the caller (an Ansible module, the CLI, a test run) can exit or keep running without
# ever having to reap it. Through `env -i -C /` it runs in "/" (a working directory pins nothing the
# caller might remove) with only _SANDBOX_ENV; setsid gives it a session of its own (a signal to the
# caller's process group does not reach it); its stderr is the log ($3), where setup errors land.
# setsid does not fork here: a background job of a shell without job control leads no process group.
_LAUNCH_SCRIPT = (
    'setsid unshare --net --uts --mount --propagation private -- /bin/sh -c "$1" wharf-sandbox "$2"'
    ' </dev/null >/dev/null 2>>"$3" &\n'
    "echo $!"
)


class SandboxError(RuntimeError):
    """A sandbox host could not be created, entered or destroyed; the message says which and why."""


@dataclasses.dataclass(frozen=True)
class SandboxHost:
    """A running sandbox host, as recorded in its ``NAME.json``.

    ``netns_inode`` and ``mntns_inode`` identify the sandbox's namespaces; they tell a live sandbox
    from a recycled pid.
    """

    name: str
    pid: int
    hostname: str
    netns_inode: int | None = None
    mntns_inode: int | None = None
    created: str = ""

    def nsenter_argv(self) -> list[str]:
        """Command prefix that runs a program inside the sandbox (network, mount and UTS namespaces).

        nsenter sets the working directory to ``/`` when it enters the mount namespace.
        """
        return ["nsenter", "-t", str(self.pid), "-n", "-m", "-u", "--"]

    def is_alive(self) -> bool:
        """True while the sandbox process runs and still holds the namespaces it was created with."""
        if _process_state(self.pid) in (None, "Z", "X"):
            return False
        if self.mntns_inode is not None and ns_inode(self.pid, "mnt") != self.mntns_inode:
            return False
        return self.netns_inode is None or ns_inode(self.pid, "net") == self.netns_inode

    def as_dict(self) -> dict[str, object]:
        """The fields written to ``NAME.json``."""
        return dataclasses.asdict(self)


def run_dir() -> str:
    """Directory of the pidfiles and JSON records: ``$WHARF_SANDBOX_RUN_DIR`` or :data:`RUN_DIR`."""
    return os.environ.get(RUN_DIR_ENV) or RUN_DIR


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid sandbox name, else raise ValueError saying what is allowed.

    The name becomes a file name and the default hostname, hence the narrow alphabet.
    """
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ValueError(
            f"sandbox name {name!r} is invalid: use 1 to 63 characters from a-z, 0-9, '_', '.', '-',"
            " starting with a letter or digit"
        )
    return name


def validate_hostname(hostname: str) -> str:
    """Return ``hostname`` if the kernel accepts it as a UTS hostname (at most 64 bytes), else raise ValueError."""
    if not isinstance(hostname, str) or not HOSTNAME_RE.fullmatch(hostname):
        raise ValueError(
            f"sandbox hostname {hostname!r} is invalid: use 1 to 64 characters from A-Z, a-z, 0-9, '_', '.', '-',"
            " starting with a letter or digit"
        )
    return hostname


def ns_inode(pid: int | str, kind: str) -> int | None:
    """Inode of namespace ``kind`` (``net``, ``mnt``, ``uts``…) of process ``pid``, None if it is gone or a zombie."""
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def get(name: str) -> SandboxHost | None:
    """The running sandbox called ``name``, or None.

    A record whose process is dead, or whose pid now belongs to another process, is stale: its
    files are removed and None is returned, so a crash never blocks re-creating the sandbox.
    """
    validate_name(name)
    path = _state_path(name, "json")
    try:
        with open(path, encoding="utf-8") as handle:
            host = SandboxHost(**json.load(handle))
    except FileNotFoundError:
        # A pidfile without its record is left from a crash; the log may belong to a create under way.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_state_path(name, "pid"))
        return None
    except (OSError, ValueError, TypeError):
        host = None
    if host is None or host.name != name or not host.is_alive():
        _remove_state(name)
        return None
    return host


def list_hosts() -> list[SandboxHost]:
    """Every running sandbox recorded in :func:`run_dir`, sorted by name; stale records are cleaned."""
    try:
        entries = sorted(os.listdir(run_dir()))
    except FileNotFoundError:
        return []
    hosts = []
    for entry in entries:
        name, ext = os.path.splitext(entry)
        if ext == ".json" and NAME_RE.fullmatch(name):
            host = get(name)
            if host is not None:
                hosts.append(host)
    return hosts


def create(
    name: str, hostname: str | None = None, timeout: float = READY_TIMEOUT, *, run: Runner
) -> tuple[SandboxHost, bool]:
    """Make sure sandbox ``name`` runs with ``hostname`` (default: the name); return it and whether anything changed.

    Returns only once the sandbox is ready: private mounts in place, loopback up, hostname set.
    An existing sandbox is kept (with its containers); only its hostname is set if it differs.
    Raises ValueError for a bad name or hostname and SandboxError if the sandbox fails to start.
    """
    validate_name(name)
    hostname = validate_hostname(hostname if hostname is not None else name)
    if os.geteuid() != 0:
        raise SandboxError(f"sandbox host {name!r}: creating namespaces needs root (CAP_SYS_ADMIN)")
    with _locked(create_dir=True):
        host = get(name)
        if host is not None:
            if host.hostname == hostname:
                return host, False
            _run_inside(
                run,
                host,
                ["/bin/sh", "-c", 'printf %s "$1" > /proc/sys/kernel/hostname', "sh", hostname],
                f"could not set the hostname of sandbox host {name!r}",
            )
            host = dataclasses.replace(host, hostname=hostname)
        else:
            host = _start(name, hostname, timeout, run)
        _write_state(host)
        return host, True


def destroy(name: str, timeout: float = STOP_TIMEOUT) -> bool:
    """Stop sandbox ``name`` and everything running inside it; return False if it was not running.

    Every process sharing a namespace with the sandbox is killed: those entered with nsenter
    (same mount namespace), those started with ``ip netns exec`` inside it (a child mount namespace,
    but the sandbox's UTS namespace and a network namespace bound in the sandbox), and daemons that
    left the process tree. With no process left, the kernel frees the sandbox's namespaces and
    every named network namespace created inside it.
    """
    validate_name(name)
    with _locked(create_dir=False):
        host = get(name)
        if host is None:
            return False
        if ns_inode("self", "mnt") == host.mntns_inode:
            raise SandboxError(f"sandbox host {name!r} cannot be destroyed from inside itself")
        _stop(host, timeout)
        _remove_state(name)
        return True


def destroy_prefix(prefix: str, timeout: float = STOP_TIMEOUT) -> list[str]:
    """Destroy every running sandbox whose name starts with ``prefix``; return their names.

    Meant for cleaning up after a crashed test run or lab; an empty prefix is refused so a typo
    cannot remove every sandbox on the machine.
    """
    if not prefix:
        raise ValueError("sandbox name prefix must not be empty")
    return [host.name for host in list_hosts() if host.name.startswith(prefix) and destroy(host.name, timeout)]


def _start(name: str, hostname: str, timeout: float, run: Runner) -> SandboxHost:
    """Launch the sandbox process and wait until its setup script has handed over to ``sleep``."""
    for path in PRIVATE_DIRS:
        os.makedirs(path, mode=0o755, exist_ok=True)
    log = _state_path(name, "log")
    with open(log, "wb"):
        pass  # a log from an earlier failed start is not this one's
    argv = ["/usr/bin/env", "-i", "-C", "/", *_SANDBOX_ENV, "/bin/sh", "-c", _LAUNCH_SCRIPT, "wharf-sandbox-launch"]
    _code, stdout, stderr = run([*argv, _SETUP_SCRIPT, hostname, log])
    try:
        pid = int(stdout.strip())
    except ValueError:
        logged = _read_log(name)
        raise SandboxError(f"sandbox host {name!r} failed to start: {stderr.strip() or logged}") from None
    deadline = time.monotonic() + timeout
    while True:
        state = _process_state(pid)
        if state is None or state in ("Z", "X"):
            raise SandboxError(f"sandbox host {name!r} failed to start: {_read_log(name)}")
        if _process_comm(pid) == "sleep":
            break
        if time.monotonic() > deadline:
            _kill(pid)
            raise SandboxError(f"sandbox host {name!r} was not ready after {timeout:g} s: {_read_log(name)}")
        time.sleep(0.002)
    _remove_log(name)
    return SandboxHost(
        name=name,
        pid=pid,
        hostname=hostname,
        netns_inode=ns_inode(pid, "net"),
        mntns_inode=ns_inode(pid, "mnt"),
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )


def _stop(host: SandboxHost, timeout: float) -> None:
    """SIGKILL every process that shares a namespace with the sandbox and wait until none is left."""
    with _pinned_namespaces(host) as members:
        deadline = time.monotonic() + timeout
        while pids := _processes_in(members):
            if time.monotonic() > deadline:
                raise SandboxError(
                    f"sandbox host {host.name!r}: processes {sorted(pids)} still run after {timeout:g} s of SIGKILL"
                )
            for pid in pids:
                _kill(pid)
            time.sleep(0.002)


@contextlib.contextmanager
def _pinned_namespaces(host: SandboxHost) -> Iterator[set[int]]:
    """Inodes of the sandbox's namespaces and of every namespace bound in its mounts, held open meanwhile.

    The kernel reuses the inode number of a freed namespace at once; the open descriptors keep each
    one alive while processes are being killed, so a namespace created meanwhile elsewhere (another
    sandbox, another test) can never take a number we are matching and lose its processes.
    The machine's own namespaces (those of pid 1 and of this process) are left out, so a process
    inside that joined one of them cannot widen the kill to the machine.
    """
    paths = [f"/proc/{host.pid}/ns/{kind}" for kind in ("mnt", "net", "uts")]
    try:
        with open(f"/proc/{host.pid}/mountinfo", encoding="utf-8") as handle:
            for line in handle:
                fields = line.split()
                if fields[fields.index("-") + 1] == "nsfs":
                    # Named network namespaces (`ip netns add`) are nsfs files bound at this mount point.
                    paths.append(f"/proc/{host.pid}/root" + _unescape(fields[4]))
    except OSError:
        pass
    machine = {ns_inode(pid, kind) for pid in (1, "self") for kind in ("mnt", "net", "uts")}
    descriptors = []
    try:
        for path in paths:
            with contextlib.suppress(OSError):
                descriptors.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
        yield {os.fstat(fd).st_ino for fd in descriptors} - machine
    finally:
        for fd in descriptors:
            os.close(fd)


def _unescape(path: str) -> str:
    """Undo the octal escapes (space, tab, newline, backslash) of a path in /proc/PID/mountinfo."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), path)


def _processes_in(inodes: set[int]) -> list[int]:
    """Pids of live processes whose mount, network or UTS namespace is one of ``inodes``."""
    own = os.getpid()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (1, own):
            continue
        if any(ns_inode(entry, kind) in inodes for kind in ("mnt", "net", "uts")):
            pids.append(int(entry))
    return pids


def _run_inside(run: Runner, host: SandboxHost, argv: list[str], failure: str) -> None:
    """Run ``argv`` inside the sandbox; raise SandboxError(``failure``: stderr) if it fails."""
    code, _stdout, stderr = run(host.nsenter_argv() + argv)
    if code != 0:
        raise SandboxError(f"{failure}: {stderr.strip()}")


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _process_state(pid: int) -> str | None:
    """The one-letter state from /proc/PID/stat (R, S, Z…), None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            # The command name in parentheses may itself contain spaces and parentheses.
            return handle.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return None


def _process_comm(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return None


@contextlib.contextmanager
def _locked(create_dir: bool) -> Iterator[None]:
    """Serialise create and destroy across processes (Ansible forks, parallel tests) with a lock on the run dir."""
    directory = run_dir()
    if create_dir:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        # Nothing was ever recorded here, so there is nothing to guard.
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _state_path(name: str, ext: str) -> str:
    return os.path.join(run_dir(), f"{name}.{ext}")


def _write_state(host: SandboxHost) -> None:
    """Write ``NAME.json`` and ``NAME.pid`` atomically, so a concurrent reader never sees half a record."""
    for ext, text in (("json", json.dumps(host.as_dict(), indent=2) + "\n"), ("pid", f"{host.pid}\n")):
        path = _state_path(host.name, ext)
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(path + ".tmp", path)


def _remove_state(name: str) -> None:
    for ext in ("json", "pid"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_state_path(name, ext))
    _remove_log(name)


def _read_log(name: str) -> str:
    try:
        with open(_state_path(name, "log"), encoding="utf-8", errors="replace") as handle:
            text = handle.read().strip()
    except OSError:
        text = ""
    _remove_log(name)
    return text or "no error output (is util-linux unshare installed?)"


def _remove_log(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_state_path(name, "log"))


# --- sandbox fleets: several sandbox hosts on one underlay segment ----------------------------------------
#
# A fleet's underlay is an L2 segment that lives in a lab sandbox of its own (a sandbox host like the others,
# named by the caller, never the machine's namespace): a bridge there, and per member one veth pair whose far
# end is the member's underlay interface, with the member's own address. Members reach each other over it as
# machines on one switch do; nothing of it is visible outside the lab and the members.

UNDERLAY_BRIDGE = "underlay0"
UNDERLAY_INTERFACE = "eth0"

# Runs inside the lab (its network namespace): the bridge, then the member's veth pair, whose far end is
# created directly in the member's namespace. $1 port name, $2 member pid, $3 member interface, $4 MTU,
# $5 member name (the port's alias, for people looking at the lab).
# Members join at once (Ansible forks): a bridge another member made meanwhile is fine.
_UNDERLAY_PORT_SCRIPT = f"""set -e
ip link show {UNDERLAY_BRIDGE} >/dev/null 2>&1 || ip link add {UNDERLAY_BRIDGE} type bridge 2>/dev/null || true
ip link set {UNDERLAY_BRIDGE} up
ip link add "$1" mtu "$4" type veth peer name "$3" mtu "$4" netns "$2"
ip link set "$1" alias "$5" master {UNDERLAY_BRIDGE} up
"""


def underlay_port_name(member: str) -> str:
    """The lab's bridge port of a member: `ul-` + 10 hex digits of sha1(name), at most 15 characters, stable."""
    return "ul-" + hashlib.sha1(member.encode()).hexdigest()[:10]


def _inside(run: Runner, host: SandboxHost, argv: list[str]) -> tuple[int, str, str]:
    return run(host.nsenter_argv() + argv)


def underlay_state(member: str, interface: str = UNDERLAY_INTERFACE, *, run: Runner) -> dict[str, object] | None:
    """The member's underlay interface as it is: ``{"addresses": [CIDR...], "mtu": N, "up": bool}``, None if it
    has none (or the member does not run)."""
    host = get(member)
    if host is None:
        return None
    code, stdout, _stderr = _inside(run, host, ["ip", "-j", "addr", "show", "dev", interface])
    if code != 0:
        return None
    links = json.loads(stdout or "[]")
    if not links:
        return None
    link = links[0]
    addresses = [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if a.get("family") == "inet"]
    return {"addresses": addresses, "mtu": link.get("mtu"), "up": "UP" in link.get("flags", [])}


def join_underlay(
    member: str, lab: str, address: str, mtu: int = 1500, interface: str = UNDERLAY_INTERFACE, *, run: Runner
) -> bool:
    """Put running sandbox ``member`` on the underlay of lab ``lab`` with ``address`` (CIDR); True if it changed.

    The lab sandbox is started when the first member joins. The member's interface is left alone when it already
    has exactly that address and MTU and is up; a different address replaces the old one.
    """
    validate_name(lab)
    host = get(member)
    if host is None:
        raise SandboxError(f"sandbox host {member!r} is not running, it cannot join underlay {lab!r}")
    if lab == member:
        raise SandboxError(f"sandbox host {member!r} cannot be its own underlay lab")
    wanted = {"addresses": [address], "mtu": mtu, "up": True}
    current = underlay_state(member, interface, run=run)
    if current == wanted:
        return False
    if current is None:
        lab_host, _created = create(lab, run=run)
        code, _stdout, stderr = _inside(
            run,
            lab_host,
            ["/bin/sh", "-c", _UNDERLAY_PORT_SCRIPT, "sh", underlay_port_name(member), str(host.pid), interface,
             str(mtu), member],
        )  # fmt: skip
        if code != 0:
            raise SandboxError(f"sandbox host {member!r} could not join underlay {lab!r}: {stderr.strip()}")
    script = 'ip addr flush dev "$1" && ip addr add "$2" dev "$1" && ip link set "$1" mtu "$3" up'
    code, _stdout, stderr = _inside(run, host, ["/bin/sh", "-c", script, "sh", interface, address, str(mtu)])
    if code != 0:
        raise SandboxError(f"sandbox host {member!r}: underlay address {address}: {stderr.strip()}")
    return True


def underlay_members(lab: str, *, run: Runner) -> list[str]:
    """Names of the members whose port is still on the lab's bridge (empty when the lab does not run)."""
    host = get(lab)
    if host is None:
        return []
    code, stdout, _stderr = _inside(run, host, ["ip", "-j", "link", "show", "master", UNDERLAY_BRIDGE])
    if code != 0:
        return []
    return sorted(link.get("ifalias") or link["ifname"] for link in json.loads(stdout or "[]"))


def leave_underlay(member: str, lab: str, timeout: float = STOP_TIMEOUT, *, run: Runner) -> bool:
    """After ``member`` was destroyed: wait until its port left the lab, and stop the lab once no member is left.

    The kernel deletes the veth pair when the member's namespace is freed, shortly after its last process ends.
    Returns True when this call stopped the lab.
    """
    validate_name(lab)
    if get(lab) is None:
        return False
    deadline = time.monotonic() + timeout
    while member in underlay_members(lab, run=run):
        if time.monotonic() > deadline:
            raise SandboxError(f"underlay {lab!r}: the port of {member!r} was still there after {timeout:g} s")
        time.sleep(0.01)
    if underlay_members(lab, run=run):
        return False
    return destroy(lab)
