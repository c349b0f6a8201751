# This file is private to the wharf.network collection: its API may change at any time.
"""The types of the topology model: what :func:`parse_topology` returns, and nothing that computes it.

They live apart from the parser so that the code reading the model (the drivers, the host plan, the firewall, the
resolver) can import them without importing the parser, which itself asks the driver registry which drivers exist:
one direction of imports, no cycle. Every type is frozen: a parsed topology is a value, the same on every host.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPv4Address = ipaddress.IPv4Address
IPv4Network = ipaddress.IPv4Network

STATES = ("present", "absent")
BRIDGED_DRIVERS = ("bridge", "overlay")  # drivers whose endpoints are veths on a Linux bridge


@dataclass(frozen=True)
class Network:
    """A network after defaults. Addresses are :mod:`ipaddress` objects.

    ``bridge_name`` is None for macvlan/ipvlan (no bridge), ``vni`` is set for overlay only, ``parent`` and
    ``mode`` for macvlan/ipvlan only. ``state`` is the effective state (absent when the whole topology is).
    ``declared`` is False for the default network ``bridge`` when the topology only uses it.
    ``masquerade`` is the effective value: never true on an internal network.
    """

    name: str
    driver: str
    subnet: IPv4Network
    gateway: IPv4Address
    ip_range: IPv4Network
    internal: bool
    icc: bool
    masquerade: bool
    mtu: int
    bridge_name: str | None
    vni: int | None
    parent: str | None
    mode: str | None
    state: str
    declared: bool

    @property
    def bridged(self) -> bool:
        """True when endpoints are veths on a Linux bridge of this host (drivers bridge and overlay)."""
        return self.driver in BRIDGED_DRIVERS

    @property
    def gateway_interface(self) -> str:
        """The gateway in CIDR form as it sits on the bridge, e.g. ``172.28.0.1/24``."""
        return f"{self.gateway}/{self.subnet.prefixlen}"


@dataclass(frozen=True)
class Endpoint:
    """A container's attachment to one network.

    ``interface`` is the name inside the container (``eth0``...), ``host_interface`` the host-side veth (None on
    macvlan/ipvlan networks, whose sub-interface has no host end). ``address_fixed`` tells whether the address
    came from the topology. ``default_route`` is True on the one endpoint that carries the container's default
    route (the first non-internal network, as in Docker).
    """

    container: str
    network: str
    interface: str
    host_interface: str | None
    address: IPv4Address
    prefixlen: int
    gateway: IPv4Address
    mac_address: str
    aliases: tuple[str, ...]
    address_fixed: bool
    default_route: bool

    @property
    def address_interface(self) -> str:
        """The address in CIDR form, e.g. ``172.28.0.10/24``."""
        return f"{self.address}/{self.prefixlen}"


@dataclass(frozen=True)
class PortMapping:
    """One published port range. ``published`` is None when Docker would pick an ephemeral host port.

    Ranges are inclusive ``(first, last)`` pairs of equal length. ``host_ip`` is None for every address (Docker's
    default). ``spec`` is the entry as written, for messages.
    """

    host_ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    published: tuple[int, int] | None
    target: tuple[int, int]
    protocol: str
    spec: str


@dataclass(frozen=True)
class Container:
    """A container (a network sandbox) after defaults.

    ``network_mode`` is as written (``bridge``, ``none``, ``host`` or ``container:OTHER``); ``shares_with`` is
    OTHER for ``container:OTHER``. ``namespace`` is the named netns the container's processes live in: its own
    name for bridge/none, the end of the ``container:`` chain for container mode, None for host (and for a
    chain ending at a host-mode container). ``hostname`` is None when the container has no UTS name of its own
    to set (host mode). ``host`` None means every host. ``state`` is the effective state.
    ``endpoints`` are in the order of the container's ``networks``, so ``endpoints[i].interface`` follows it.
    """

    name: str
    host: str | None
    hostname: str | None
    network_mode: str
    shares_with: str | None
    namespace: str | None
    endpoints: tuple[Endpoint, ...]
    ports: tuple[PortMapping, ...]
    extra_hosts: tuple[tuple[str, str], ...]
    dns: tuple[str, ...]
    dns_search: tuple[str, ...]
    dns_options: tuple[str, ...]
    state: str

    @property
    def own_namespace(self) -> bool:
        """True when the container has a netns of its own (network_mode bridge or none)."""
        return self.network_mode in ("bridge", "none")

    def lives_on(self, inventory_hostname: str) -> bool:
        """True when the container belongs on that inventory host (no ``host:`` means every host)."""
        return self.host is None or self.host == inventory_hostname


@dataclass(frozen=True)
class Topology:
    """A valid topology. ``networks`` and ``containers`` are keyed and ordered by name.

    ``networks`` holds every declared network plus the default network ``bridge`` when a container uses it.
    """

    networks: dict[str, Network]
    containers: dict[str, Container]
    state: str
    prune: bool

    def containers_on(self, inventory_hostname: str) -> list[Container]:
        """The containers that live on that host, by name."""
        return [c for c in self.containers.values() if c.lives_on(inventory_hostname)]
