# This file is private to the wharf.network collection: its API may change at any time.
"""The topology model → this host's resolver state: who may ask, and what each asker may learn.

Pure (no Ansible, no kernel, no DNS library): the ``container_dns`` module renders it to JSON and the resolver
daemon (``_dns/server/``) loads that JSON and precomputes its wire answers from it.

Why views: the answer depends on who asks (Docker's embedded resolver and aardvark-dns work the same way). An
asker is a container, known by the namespace its query arrives in (the resolver listens on 127.0.0.11 inside
each container's namespace, never by source address: an address can be forged or self-assigned, a namespace
cannot); the container gives its networks, and every container with the same *set* of networks sees the same
names. So the state holds one view per distinct set of networks (``"backend+frontend"``) and a map from
container to view: answers are precomputed once per view, not once per container.

A view for the networks S holds, for each network N in S, every present container attached to N that an asker
on this host can reach on N: containers living on this host for a ``bridge`` network (a bridge is local to its
host), containers on *every* inventory host for an ``overlay`` network (one L2 segment over VXLAN, their
addresses are known from the topology). Names are lowercased (DNS is case-insensitive):

- the container's name, its hostname and its aliases on N, and each of them qualified by the network,
  ``NAME.N`` (as Docker) → its address on N;
- several containers with one alias give several addresses (the daemon rotates their order);
- the reverse name of each such address → NAME.NETWORK (PTR, as Docker answers).

``hidden`` lists every name the topology defines anywhere (on this host or not); a hidden name missing from the
asker's view gets NXDOMAIN and is never forwarded, so the topology does not leak to the upstream servers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.wharf.network.plugins.module_utils._model.types import Container, Topology

STATE_FORMAT = 2  # the resolver's server/tables.py reads this format only
RESOLVER_ADDRESS = "127.0.0.11"  # Docker's: on each container's own loopback, what its resolv.conf names
NETNS_DIR = "/run/netns"  # where the containers' namespaces are pinned (_kernel/namespace.py NETNS_RUN_DIR)
RECORD_TTL = 600  # seconds, Docker's embedded resolver uses the same


@dataclass(frozen=True)
class HostResolvConf:
    """What the host's own resolv.conf says: its upstream servers, search domains and options."""

    nameservers: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


def parse_resolv_conf(text: str) -> HostResolvConf:
    """Read ``nameserver``, ``search``/``domain`` and ``options`` lines as glibc does (the last search/domain
    line wins, comments start with ``#`` or ``;``). IPv6 nameservers are kept (the daemon skips what it cannot
    reach); scoped ones (``fe80::1%eth0``) keep their scope."""
    servers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) < 2:
            continue
        key, values = words[0], words[1:]
        if key == "nameserver":
            try:
                ipaddress.ip_address(values[0].split("%", 1)[0])
            except ValueError:
                continue
            servers.append(values[0])
        elif key in ("search", "domain"):
            search = values
        elif key == "options":
            options.extend(values)
    return HostResolvConf(tuple(servers), tuple(search), tuple(options))


@dataclass
class _View:
    networks: tuple[str, ...]
    names: dict[str, set[str]] = field(default_factory=dict)
    reverse: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, address: str) -> None:
        self.names.setdefault(name.lower().rstrip("."), set()).add(address)


def runs_own_dns_server(container: Container) -> bool:
    """The container publishes port 53 (a DNS server of its own, such as pi-hole): the resolver does not listen
    inside it. A server there binds port 53 of every address, which a socket of ours on 127.0.0.11:53 would
    refuse it (Linux allows no wildcard bind beside a listening one). Docker avoids that with a DNAT inside the
    namespace to a random port; here such a container resolves through the host's servers instead, as on
    Docker's default bridge, and its own names still resolve for every other container."""
    return any(p.target[0] <= 53 <= p.target[1] for p in container.ports)


def view_id(networks: Iterable[str]) -> str:
    """The stable id of the view for a set of networks: their names, sorted, joined by ``+``."""
    return "+".join(sorted(set(networks)))


def reverse_name(address: str) -> str:
    """``172.28.0.10`` → ``10.0.28.172.in-addr.arpa`` (no trailing dot, as the state stores names)."""
    return ipaddress.ip_address(address).reverse_pointer


def dns_networks(topology: Topology, host: str) -> list[str]:
    """The networks this host's resolver serves: present, bridged (a gateway on a bridge of this host) and with at
    least one present container of this host attached. Sorted by name."""
    used = {
        e.network for c in topology.containers_on(host) if c.state == "present" and c.own_namespace for e in c.endpoints
    }
    return sorted(n.name for n in topology.networks.values() if n.state == "present" and n.bridged and n.name in used)


def _members(topology: Topology, host: str, network: str) -> list[Container]:
    """Containers an asker on this host reaches on ``network``: local ones on a bridge, every host's on an
    overlay (a container without ``host`` lives everywhere and is counted once)."""
    overlay = topology.networks[network].driver == "overlay"
    return [
        c
        for c in topology.containers.values()
        if c.state == "present"
        and c.own_namespace
        and (overlay or c.lives_on(host))
        and any(e.network == network for e in c.endpoints)
    ]


def _build_view(topology: Topology, host: str, networks: tuple[str, ...]) -> _View:
    view = _View(networks)
    for network in networks:
        for container in _members(topology, host, network):
            endpoint = next(e for e in container.endpoints if e.network == network)
            address = str(endpoint.address)
            names = {container.name, *endpoint.aliases}
            if container.hostname:
                names.add(container.hostname)
            names |= {f"{name.rstrip('.')}.{network}" for name in names}
            for name in names:
                view.add(name, address)
            # NAME.NETWORK, as Docker answers (libnetwork's ResolveIP): it names the network the address is on,
            # and resolves back to the address from the same askers
            view.reverse.setdefault(reverse_name(address), f"{container.name.rstrip('.')}.{network}")
    return view


def _all_names(topology: Topology) -> set[str]:
    names: set[str] = set()
    for container in topology.containers.values():
        names.add(container.name.lower())
        if container.hostname:
            names.add(container.hostname.lower())
        for endpoint in container.endpoints:
            own = {container.name, *(alias.rstrip(".") for alias in endpoint.aliases)}
            if container.hostname:
                own.add(container.hostname)
            names.update(n.lower() for n in own)
            names.update(f"{n}.{endpoint.network}".lower() for n in own)
    return names


def resolver_state(topology: Topology, host: str, host_resolv: HostResolvConf) -> dict[str, Any]:
    """The resolver state of ``host`` as a JSON-ready dict; the same inputs always give the same dict.

    Keys: ``format``; ``address`` (where the resolver listens inside each container's namespace); ``listen``
    (the containers it listens for, sorted); ``ttl``; ``views`` (id → ``networks``, ``names`` name → sorted
    addresses, ``reverse`` PTR name → NAME.NETWORK); ``hidden`` (every topology name, sorted);
    ``hidden_subnets`` (every subnet of the topology: reverse names under them that no view answers get
    NXDOMAIN, never forwarded); ``clients`` (container → ``netns`` (its namespace file), ``view``, ``forward``
    (false when every network of the container is internal: nothing is ever sent upstream for it, as Docker's
    forwarding policy) and ``upstreams``). An empty ``listen`` means this host needs no resolver.
    """
    networks = dns_networks(topology, host)
    served = set(networks)
    host_upstreams = [s for s in host_resolv.nameservers if s not in _gateways(topology, served)]
    views: dict[str, _View] = {}
    clients: dict[str, Any] = {}

    def view_for(names: Iterable[str]) -> str:
        networks = tuple(sorted(set(names)))
        key = view_id(networks)
        if key not in views:
            views[key] = _build_view(topology, host, networks)
        return key

    for container in topology.containers_on(host):
        if container.state != "present" or not container.own_namespace or runs_own_dns_server(container):
            continue
        local = [e for e in container.endpoints if e.network in served]
        if not local:
            continue
        key = view_for(e.network for e in container.endpoints if topology.networks[e.network].bridged)
        clients[container.name] = {
            "netns": f"{NETNS_DIR}/{container.name}",
            "view": key,
            "forward": any(not topology.networks[e.network].internal for e in container.endpoints),
            "upstreams": list(container.dns) or host_upstreams,
        }
    return {
        "format": STATE_FORMAT,
        "address": RESOLVER_ADDRESS,
        "listen": sorted(clients),
        "ttl": RECORD_TTL,
        "views": {
            key: {
                "networks": list(view.networks),
                "names": {name: sorted(addrs, key=ipaddress.ip_address) for name, addrs in sorted(view.names.items())},
                "reverse": dict(sorted(view.reverse.items())),
            }
            for key, view in sorted(views.items())
        },
        "hidden": sorted(_all_names(topology)),
        "hidden_subnets": sorted(str(n.subnet) for n in topology.networks.values()),
        "clients": dict(sorted(clients.items())),
    }


def _gateways(topology: Topology, networks: set[str]) -> set[str]:
    return {str(topology.networks[n].gateway) for n in networks}
