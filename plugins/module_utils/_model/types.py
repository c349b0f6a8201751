# This file is private to the wharf.network collection: its API may change at any time.
"""The types of the topology model: what :func:`parse_topology` returns, and nothing that computes it.

They live apart from the parser so that the code reading the model (the drivers, the host plan, the firewall, the
resolver) can import them without importing the parser, which itself asks the driver registry which drivers exist:
one direction of imports, no cycle. Every type is frozen: a parsed topology is a value, the same on every host.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Union

IPv4Address = ipaddress.IPv4Address
IPv4Network = ipaddress.IPv4Network
IPv4Interface = ipaddress.IPv4Interface
# an address, network or interface of any family (Union: pylint in ansible-test misreads ``|`` between classes)
IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]  # noqa: UP007
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]  # noqa: UP007
IPInterface = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]  # noqa: UP007

STATES = ("present", "absent")
BRIDGED_DRIVERS = ("bridge", "overlay")  # drivers whose endpoints are veths on a Linux bridge


@dataclass(frozen=True)
class Family:
    """An address family as the topology knows it: its :mod:`ipaddress` version and types, the keys that set it.

    What differs between families is here, so that parsing, allocation, gateways and routes loop over
    :data:`FAMILIES` instead of branching. ``broadcast`` tells whether the last address of a subnet is its
    broadcast address, never a host's; ``max_prefixlen`` is the longest prefix a network may have (room for a
    gateway and endpoints).
    """

    version: int
    name: str
    subnet_key: str
    gateway_key: str
    range_key: str
    address_key: str
    broadcast: bool
    max_prefixlen: int
    address_type: type[IPAddress]
    network_type: type[IPNetwork]
    example_subnet: str


IPV4 = Family(
    version=4,
    name="IPv4",
    subnet_key="subnet",
    gateway_key="gateway",
    range_key="ip_range",
    address_key="ipv4_address",
    broadcast=True,
    max_prefixlen=30,
    address_type=IPv4Address,
    network_type=IPv4Network,
    example_subnet="172.28.0.0/24",
)
# The families a network may have, in the order a network lists its subnets. IPv6 (issue 13) is one more entry.
FAMILIES: tuple[Family, ...] = (IPV4,)


def family_of(version: int) -> Family:
    """The family of an :mod:`ipaddress` version (``4``); KeyError for one the topology does not know yet."""
    for family in FAMILIES:
        if family.version == version:
            return family
    raise KeyError(f"no address family IPv{version}")


@dataclass(frozen=True)
class Subnet:
    """One address family of a network: its subnet, gateway and the pool automatic addresses come from.

    The three are of one family (ValueError otherwise); the gateway lies in ``network`` and ``ip_range`` within it
    (the parser checks both, with messages naming the topology path).
    """

    network: IPNetwork
    gateway: IPAddress
    ip_range: IPNetwork

    def __post_init__(self) -> None:
        if not self.network.version == self.gateway.version == self.ip_range.version:
            raise ValueError(f"subnet {self.network}, gateway {self.gateway} and range {self.ip_range} mix families")

    @property
    def version(self) -> int:
        """The :mod:`ipaddress` version: 4 for IPv4."""
        return self.network.version

    @property
    def family(self) -> Family:
        return family_of(self.version)

    @property
    def prefixlen(self) -> int:
        return self.network.prefixlen

    @property
    def gateway_interface(self) -> IPInterface:
        """The gateway with the subnet's prefix, as it sits on the bridge (``172.28.0.1/24``)."""
        return ipaddress.ip_interface((self.gateway, self.prefixlen))

    @property
    def reserved(self) -> frozenset[IPAddress]:
        """The addresses of the subnet never given to an endpoint: the network address, the gateway, and the
        broadcast address where the family has one."""
        reserved = {self.network.network_address, self.gateway}
        if self.family.broadcast:
            reserved.add(self.network.broadcast_address)
        return frozenset(reserved)

    def interface(self, address: IPAddress) -> IPInterface:
        """``address`` with this subnet's prefix (``172.28.0.10/24``)."""
        return ipaddress.ip_interface((address, self.prefixlen))


@dataclass(frozen=True)
class Network:
    """A network after defaults. Addresses are :mod:`ipaddress` objects.

    ``bridge_name`` is None for macvlan/ipvlan (no bridge), ``vni`` is set for overlay only, ``parent`` and
    ``mode`` for macvlan/ipvlan only. ``state`` is the effective state (absent when the whole topology is).
    ``declared`` is False for the default network ``bridge`` when the topology only uses it.
    ``masquerade`` is the effective value: never true on an internal network.
    ``subnets`` holds one :class:`Subnet` per address family, in the order of :data:`FAMILIES` (IPv4 only today);
    ``subnet``, ``gateway`` and ``ip_range`` are the IPv4 subnet's, as before there were families.
    """

    name: str
    driver: str
    subnets: tuple[Subnet, ...]
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

    def subnet_for(self, version: int) -> Subnet | None:
        """The subnet of that family (``4``), None when the network has none."""
        return next((s for s in self.subnets if s.version == version), None)

    @property
    def ipv4(self) -> Subnet:
        """The IPv4 subnet; every network has one until IPv6-only networks exist (issue 13)."""
        subnet = self.subnet_for(4)
        if subnet is None:
            raise AttributeError(f"network {self.name} has no IPv4 subnet")
        return subnet

    @property
    def subnet(self) -> IPv4Network:
        """The IPv4 subnet (compatibility: callers that predate :attr:`subnets`)."""
        return self.ipv4.network  # type: ignore[return-value]

    @property
    def gateway(self) -> IPv4Address:
        """The IPv4 gateway (compatibility)."""
        return self.ipv4.gateway  # type: ignore[return-value]

    @property
    def ip_range(self) -> IPv4Network:
        """The IPv4 pool of automatic addresses (compatibility)."""
        return self.ipv4.ip_range  # type: ignore[return-value]

    @property
    def gateway_interface(self) -> str:
        """The IPv4 gateway in CIDR form as it sits on the bridge, e.g. ``172.28.0.1/24`` (compatibility)."""
        return str(self.ipv4.gateway_interface)


@dataclass(frozen=True)
class Endpoint:
    """A container's attachment to one network.

    ``interface`` is the name inside the container (``eth0``...), ``host_interface`` the host-side veth (None on
    macvlan/ipvlan networks, whose sub-interface has no host end). ``address_fixed`` tells whether the address
    came from the topology. ``default_route`` is True on the one endpoint that carries the container's default
    route (the first non-internal network, as in Docker).

    ``addresses`` holds one interface (address and prefix) per subnet of the network and ``gateways`` that subnet's
    gateway, both in the order of the network's ``subnets``; ``default_routes`` lists the families (``4``) this
    endpoint carries the container's default route for. ``address``, ``prefixlen``, ``gateway`` and
    ``default_route`` are the IPv4 values, as before there were families.
    """

    container: str
    network: str
    interface: str
    host_interface: str | None
    addresses: tuple[IPInterface, ...]
    gateways: tuple[IPAddress, ...]
    mac_address: str
    aliases: tuple[str, ...]
    address_fixed: bool
    default_routes: tuple[int, ...]

    def __post_init__(self) -> None:
        if [a.version for a in self.addresses] != [g.version for g in self.gateways]:
            raise ValueError(f"endpoint {self.container}/{self.network}: addresses and gateways differ in families")

    def address_for(self, version: int) -> IPInterface | None:
        """The endpoint's interface address of that family, None when its network has none."""
        return next((a for a in self.addresses if a.version == version), None)

    def gateway_for(self, version: int) -> IPAddress | None:
        """The gateway of that family, None when the network has none."""
        return next((g for g in self.gateways if g.version == version), None)

    @property
    def ipv4_interface(self) -> IPv4Interface:
        interface = self.address_for(4)
        if interface is None:
            raise AttributeError(f"endpoint {self.container}/{self.network} has no IPv4 address")
        return interface  # type: ignore[return-value]

    @property
    def address(self) -> IPv4Address:
        """The IPv4 address (compatibility)."""
        return self.ipv4_interface.ip

    @property
    def prefixlen(self) -> int:
        """The prefix length of the IPv4 subnet (compatibility)."""
        return self.ipv4_interface.network.prefixlen

    @property
    def gateway(self) -> IPv4Address:
        """The IPv4 gateway (compatibility)."""
        gateway = self.gateway_for(4)
        if gateway is None:
            raise AttributeError(f"endpoint {self.container}/{self.network} has no IPv4 gateway")
        return gateway  # type: ignore[return-value]

    @property
    def default_route(self) -> bool:
        """True when the endpoint carries the container's IPv4 default route (compatibility)."""
        return 4 in self.default_routes

    @property
    def address_interface(self) -> str:
        """The IPv4 address in CIDR form, e.g. ``172.28.0.10/24`` (compatibility)."""
        return str(self.ipv4_interface)


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
