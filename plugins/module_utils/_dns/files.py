# This file is private to the wharf.network collection: its API may change at any time.
"""Per-container resolver files: ``/etc/netns/NAME/resolv.conf`` and ``/etc/netns/NAME/hosts``.

``ip netns exec NAME`` bind-mounts each file of ``/etc/netns/NAME/`` over the one of ``/etc``, so every program run
in the container resolves through them, as a Docker container does through the files Docker writes. The text is
pure (rendered from the topology model); :func:`plan_container_files` compares them with the files on the host
and plans the writes. Files carry :data:`FILE_MARK` on their first line: only files with the mark are ever
replaced or removed. An existing file is rewritten in place (as Docker rewrites a container's hosts file): a
process already running in the container holds a bind mount of that very file and sees the new content.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

from ansible_collections.wharf.network.plugins.module_utils._dns.state import (
    RESOLVER_ADDRESS,
    HostResolvConf,
    runs_own_dns_server,
)
from ansible_collections.wharf.network.plugins.module_utils._engine.plan import Plan
from ansible_collections.wharf.network.plugins.module_utils._kernel.files import read_file, write_atomically
from ansible_collections.wharf.network.plugins.module_utils._model.types import Container, Topology

DOCKER_NDOTS = "ndots:0"  # Docker's resolv.conf when its embedded resolver serves the container
NETNS_ETC = "/etc/netns"
FILE_NAMES = ("hosts", "resolv.conf")

FILE_MARK = "# written by wharf.network (container_dns): changes here are overwritten"
HOSTS_HEADER = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


def resolv_conf_text(topology: Topology, container: Container, host_resolv: HostResolvConf) -> str | None:
    """The container's ``/etc/netns/NAME/resolv.conf``, or None when it has no network the resolver serves.

    As Docker with its embedded resolver: the one nameserver is the resolver's address on the container's own
    loopback, 127.0.0.11 (it listens inside the container's namespace), ``search`` is the container's
    ``dns_search`` or else the host's, and
    ``options`` is the host's options, then ``ndots:0`` unless the container sets ``ndots``, then the
    container's ``dns_options`` (the last value of an option wins in glibc, so the container's win). A container
    that publishes port 53 (``state.runs_own_dns_server``) gets its ``dns`` servers, else the host's (at most
    three, glibc's MAXNS), as on Docker's default bridge.
    """
    bridged = [topology.networks[e.network] for e in container.endpoints if topology.networks[e.network].bridged]
    if not bridged:
        return None
    if runs_own_dns_server(container):
        servers = list(dict.fromkeys(container.dns or host_resolv.nameservers))[:3]
    else:
        servers = [RESOLVER_ADDRESS]
    lines = [FILE_MARK, *(f"nameserver {s}" for s in servers)]
    search = container.dns_search or host_resolv.search
    if search:
        lines.append("search " + " ".join(search))
    options = [o for o in host_resolv.options if not o.startswith("ndots:")]
    if not any(o.startswith("ndots:") for o in container.dns_options):
        options.append(DOCKER_NDOTS)
    options.extend(container.dns_options)
    lines.append("options " + " ".join(dict.fromkeys(options)))
    return "\n".join(lines) + "\n"


def hosts_text(topology: Topology, container: Container) -> str:
    """The container's ``/etc/netns/NAME/hosts``: the localhost lines, then ``extra_hosts`` (``host-gateway`` is
    the gateway of the container's first network, the host's own address there, as Docker's docker0 address),
    then its own addresses with its hostname and name. glibc reads ``files`` before ``dns``, so these lines win
    over the resolver, as in Docker. A ``host-gateway`` entry of a container without a network is left out with
    a comment (there is no gateway to name)."""
    lines = [FILE_MARK, HOSTS_HEADER.rstrip("\n")]
    gateway = str(container.endpoints[0].gateway) if container.endpoints else None
    for name, address in container.extra_hosts:
        if address == "host-gateway":
            if gateway is None:
                lines.append(f"# {name}: host-gateway left out, the container has no network")
                continue
            address = gateway
        lines.append(f"{address}\t{name}")
    names = list(dict.fromkeys(n for n in (container.hostname, container.name) if n))
    for endpoint in container.endpoints:
        lines.append(f"{endpoint.address}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"


def container_files(topology: Topology, host: str, host_resolv: HostResolvConf) -> dict[str, dict[str, str]]:
    """Namespace name → file name (``hosts``, ``resolv.conf``) → text, for every present container of this host
    with a namespace of its own. ``ip netns exec NAME`` bind-mounts ``/etc/netns/NAME/FILE`` over ``/etc/FILE``."""
    files: dict[str, dict[str, str]] = {}
    for container in topology.containers_on(host):
        if container.state != "present" or not container.own_namespace:
            continue
        entry = {"hosts": hosts_text(topology, container)}
        resolv = resolv_conf_text(topology, container, host_resolv)
        if resolv is not None:
            entry["resolv.conf"] = resolv
        files[container.name] = entry
    return files


def _rewrite(path: str, text: str) -> None:
    """Replace a small file's content in place, in one write."""
    with open(path, "r+", encoding="utf-8") as handle:
        handle.write(text)
        handle.truncate()


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(path))  # only when empty: a directory holding anything else stays


def plan_container_files(
    wanted: dict[str, dict[str, str]],
    plan: Plan,
    root: str = NETNS_ETC,
    removable: Callable[[str], bool] = lambda name: True,
) -> list[str]:
    """Add to ``plan`` the writes and removals that make ``root/NAME/FILE`` hold ``wanted``; return the errors.

    Only files carrying :data:`FILE_MARK` are replaced or removed: a file someone else wrote is an error (named),
    never overwritten. Files of other namespaces are removed (and their directory, when that leaves it empty) when
    ``removable(NAME)``: the caller says which (a container the topology no longer declares keeps its files unless
    the topology prunes, as it keeps its namespace)."""
    errors: list[str] = []
    for name, texts in sorted(wanted.items()):
        for file_name, text in sorted(texts.items()):
            path = os.path.join(root, name, file_name)
            current = read_file(path)
            if current == text:
                continue
            if current is not None and not current.startswith(FILE_MARK):
                errors.append(f"{path} exists and was not written by wharf.network: move it away to let it be managed")
                continue
            action = "create" if current is None else "write"
            plan.add(
                "file",
                path,
                action,
                None if current is None else {"content": current},
                {"content": text},
                lambda p=path, t=text: write_atomically(p, t) if not os.path.exists(p) else _rewrite(p, t),
            )
    try:
        present = sorted(os.listdir(root))
    except FileNotFoundError:
        present = []
    for name in present:
        if name not in wanted and not removable(name):
            continue
        for file_name in FILE_NAMES:
            if file_name in wanted.get(name, {}):
                continue
            path = os.path.join(root, name, file_name)
            current = read_file(path) if os.path.isfile(path) else None
            if current is not None and current.startswith(FILE_MARK):
                plan.add("file", path, "delete", {"content": current}, None, lambda p=path: _remove(p))
    return errors
