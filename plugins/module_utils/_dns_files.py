# This file is private to the wharf.network collection: its API may change at any time.
"""Per-container resolver files: ``/etc/netns/NAME/resolv.conf`` and ``/etc/netns/NAME/hosts``.

``ip netns exec NAME`` bind-mounts each file of ``/etc/netns/NAME/`` over the one of ``/etc``, so every program run
in the container resolves through them, as a Docker container does through the files Docker writes. The text is
pure (rendered from the topology model); :class:`ContainerFiles` observes, plans and applies them. Files carry
:data:`FILE_MARK` on their first line: only files with the mark are ever replaced or removed.
"""

from __future__ import annotations

from ansible_collections.wharf.network.plugins.module_utils._dns_state import MAX_NAMESERVERS, HostResolvConf
from ansible_collections.wharf.network.plugins.module_utils._topology import Container, Topology

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

    As Docker with its embedded resolver: the nameservers are the resolver's addresses (here the gateways of the
    container's bridged networks, non-internal ones first so that glibc, which moves on after REFUSED, still
    reaches a forwarding server), ``search`` is the container's ``dns_search`` or else the host's, and
    ``options`` is the host's options, then ``ndots:0`` unless the container sets ``ndots``, then the
    container's ``dns_options`` (the last value of an option wins in glibc, so the container's win).
    """
    bridged = [topology.networks[e.network] for e in container.endpoints if topology.networks[e.network].bridged]
    if not bridged:
        return None
    ordered = [n for n in bridged if not n.internal] + [n for n in bridged if n.internal]
    servers = list(dict.fromkeys(str(n.gateway) for n in ordered))[:MAX_NAMESERVERS]
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
