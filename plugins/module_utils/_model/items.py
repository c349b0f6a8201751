# This file is private to the wharf.network collection: its API may change at any time.
"""The typed, frozen plan of one host (`HostPlan`) and the items it is made of: what every converge step reads.

Each item knows its plain form (`as_item()`), the shape of the per-resource modules' items, which is what the
`wharf_host_items` filter shows; the drivers (`_drivers/`) add items to a `PlanBuilder` while `host_plan()` walks the
topology.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ansible_collections.wharf.network.plugins.module_utils._model.types import Container, Topology

ITEM_LISTS = (
    "namespaces",
    "bridges",
    "veths",
    "interfaces",
    "sub_interfaces",
    "containers",
    "absent_namespaces",
    "absent_bridges",
    "absent_veths",
    "vxlans",
    "remote_containers",
    "firewall_networks",
    "publishes",
)


@dataclass(frozen=True)
class NamespaceItem:
    """A container's named network namespace; ``share_with`` names another container's namespace to pin again
    under this name (``network_mode: container:OTHER``), and then there is no hostname of its own."""

    name: str
    hostname: str | None = None
    share_with: str | None = None

    def as_item(self) -> dict[str, Any]:
        if self.share_with is not None:
            return {"name": self.name, "share_with": self.share_with}
        return {"name": self.name, "hostname": self.hostname}


@dataclass(frozen=True)
class BridgeItem:
    """A network's Linux bridge. ``mac``: the gateway's MAC, derived by the driver (None: left to the kernel)."""

    name: str
    mtu: int
    forwarding: bool = True
    mac: str | None = None

    def as_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {"name": self.name, "mtu": self.mtu, "forwarding": self.forwarding}
        if self.mac is not None:
            item["mac"] = self.mac
        return item


@dataclass(frozen=True)
class Route:
    """A route of an interface: ``dest`` is ``default`` or a network in CIDR form."""

    dest: str
    gateway: str

    def as_item(self) -> dict[str, Any]:
        return {"dest": self.dest, "gateway": self.gateway}


@dataclass(frozen=True)
class InterfaceItem:
    """The addresses (CIDR form, every family) and routes of one interface; ``namespace`` None is the host's.
    ``ipv6``: whether the interface has IPv6 at all (off where its network has none; router advertisements are
    refused either way); None leaves it alone."""

    name: str
    addresses: tuple[str, ...]
    namespace: str | None = None
    routes: tuple[Route, ...] = ()
    ipv6: bool | None = None

    def as_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {"name": self.name}
        if self.namespace is not None:
            item["namespace"] = self.namespace
        item["addresses"] = list(self.addresses)
        if self.routes:
            item["routes"] = [route.as_item() for route in self.routes]
        if self.ipv6 is not None:
            item["ipv6"] = self.ipv6
        return item


@dataclass(frozen=True)
class VethItem:
    """An endpoint on a bridge: the host end ``name`` enslaved to ``master``, the peer inside the container."""

    name: str
    peer: str
    peer_namespace: str
    master: str
    mtu: int
    peer_mac: str
    hairpin: bool = True  # a container reaching its own published port through the host's address (hairpin NAT)

    def as_item(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "peer": self.peer,
            "peer_namespace": self.peer_namespace,
            "master": self.master,
            "mtu": self.mtu,
            "peer_mac": self.peer_mac,
            "hairpin": self.hairpin,
        }


@dataclass(frozen=True)
class SubInterfaceItem:
    """An endpoint that is a child of a host interface (macvlan/ipvlan), placed straight into the container."""

    interface: InterfaceItem
    kind: str
    parent: str | None
    mode: str | None
    mtu: int
    mac: str

    @property
    def namespace(self) -> str | None:
        return self.interface.namespace

    def as_item(self) -> dict[str, Any]:
        return {
            **self.interface.as_item(),
            "kind": self.kind,
            "parent": self.parent,
            "mode": self.mode,
            "mtu": self.mtu,
            "mac": self.mac,
        }


@dataclass(frozen=True)
class RemoteEntry:
    """A container of another host on an overlay network: its MAC and address behind that host's VTEP."""

    mac: str
    address: str
    peer: str

    def as_item(self) -> dict[str, Any]:
        return {"mac": self.mac, "address": self.address, "peer": self.peer}


@dataclass(frozen=True)
class VxlanItem:
    """An overlay network's VXLAN device on this host, with the static mesh: peers and remote entries."""

    name: str
    vni: int
    local: str
    master: str
    mtu: int
    peers: tuple[str, ...]
    remotes: tuple[RemoteEntry, ...]

    def as_item(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "vni": self.vni,
            "local": self.local,
            "master": self.master,
            "mtu": self.mtu,
            "peers": list(self.peers),
            "remotes": [remote.as_item() for remote in self.remotes],
        }


@dataclass(frozen=True)
class FirewallNetworkItem:
    """What the firewall table needs of a network: its bridge, subnet, gateway and policy."""

    bridge: str
    subnet: str
    internal: bool
    icc: bool
    masquerade: bool
    gateway: str

    def as_item(self) -> dict[str, Any]:
        return {
            "bridge": self.bridge,
            "subnet": self.subnet,
            "internal": self.internal,
            "icc": self.icc,
            "masquerade": self.masquerade,
            "gateway": self.gateway,
        }


@dataclass(frozen=True)
class PublishItem:
    """A published port as the firewall takes it (the long form); ``source`` is its path in the topology."""

    address: str
    host_ip: str | None
    published: str | None
    target: str
    protocol: str
    source: str

    def as_item(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "host_ip": self.host_ip,
            "published": self.published,
            "target": self.target,
            "protocol": self.protocol,
            "source": self.source,
        }


@dataclass(frozen=True)
class EndpointSummary:
    """One endpoint of a container as the report and the converge's return show it."""

    network: str
    interface: str
    host_interface: str | None
    address: str
    prefixlen: int
    gateway: str
    mac: str
    aliases: tuple[str, ...]
    internal: bool
    driver: str
    icc: bool

    def as_item(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "interface": self.interface,
            "host_interface": self.host_interface,
            "address": self.address,
            "prefixlen": self.prefixlen,
            "gateway": self.gateway,
            "mac": self.mac,
            "aliases": list(self.aliases),
            "internal": self.internal,
            "driver": self.driver,
            "icc": self.icc,
        }


@dataclass(frozen=True)
class ContainerSummary:
    """A container as the report and the converge's return show it."""

    name: str
    namespace: str | None
    hostname: str | None
    network_mode: str
    host: str | None
    endpoints: tuple[EndpointSummary, ...]

    def as_item(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "hostname": self.hostname,
            "network_mode": self.network_mode,
            "host": self.host,
            "endpoints": [endpoint.as_item() for endpoint in self.endpoints],
        }


@dataclass(frozen=True)
class HostPlan:
    """What one host must have, every list sorted or in topology order so the same topology gives the same plan.

    Things whose state is absent are in the ``absent_*`` lists, in the same shape as the present ones.
    """

    prune: bool
    namespaces: tuple[NamespaceItem, ...] = ()
    bridges: tuple[BridgeItem, ...] = ()
    veths: tuple[VethItem, ...] = ()
    interfaces: tuple[InterfaceItem, ...] = ()
    sub_interfaces: tuple[SubInterfaceItem, ...] = ()
    containers: tuple[ContainerSummary, ...] = ()
    absent_namespaces: tuple[NamespaceItem, ...] = ()
    absent_bridges: tuple[BridgeItem, ...] = ()
    absent_veths: tuple[VethItem, ...] = ()
    vxlans: tuple[VxlanItem, ...] = ()
    remote_containers: tuple[ContainerSummary, ...] = ()
    firewall_networks: tuple[FirewallNetworkItem, ...] = ()
    publishes: tuple[PublishItem, ...] = ()

    def items(self, key: str) -> list[dict[str, Any]]:
        """One list in the shape of the per-resource modules' items."""
        return [item.as_item() for item in getattr(self, key)]

    def as_items(self) -> dict[str, Any]:
        """The whole plan as the `wharf_host_items` filter shows it."""
        shown: dict[str, Any] = {key: self.items(key) for key in ITEM_LISTS}
        shown["prune"] = self.prune
        return shown

    def with_interface_names(self, actual: dict[tuple[str | None, str], str]) -> HostPlan:
        """The plan pointing at the interface names the endpoints really have (a container keeps an interface
        under the name it got when it was connected, e.g. after an earlier network was disconnected)."""

        def renamed(interface: InterfaceItem) -> InterfaceItem:
            name = actual.get((interface.namespace, interface.name))
            return interface if name is None else dataclasses.replace(interface, name=name)

        def summary(container: ContainerSummary) -> ContainerSummary:
            endpoints = tuple(
                dataclasses.replace(e, interface=actual.get((container.namespace, e.interface), e.interface))
                for e in container.endpoints
            )
            return dataclasses.replace(container, endpoints=endpoints)

        return dataclasses.replace(
            self,
            interfaces=tuple(renamed(i) for i in self.interfaces),
            containers=tuple(summary(c) for c in self.containers),
        )


class PlanBuilder:
    """Collects one host's items while the topology is walked; `freeze()` gives the HostPlan."""

    def __init__(self) -> None:
        self.lists: dict[str, list[Any]] = {key: [] for key in ITEM_LISTS}

    def add(self, key: str, item: Any) -> None:
        self.lists[key].append(item)

    def freeze(self, prune: bool) -> HostPlan:
        return HostPlan(prune=prune, **{key: tuple(items) for key, items in self.lists.items()})


def container_summary(container: Container, topology: Topology) -> ContainerSummary:
    """A container as the report shows it: each endpoint with its network's policy."""
    return ContainerSummary(
        name=container.name,
        namespace=container.namespace,
        hostname=container.hostname,
        network_mode=container.network_mode,
        host=container.host,
        endpoints=tuple(
            EndpointSummary(
                network=e.network,
                interface=e.interface,
                host_interface=e.host_interface,
                address=str(e.address),
                prefixlen=e.prefixlen,
                gateway=str(e.gateway),
                mac=e.mac_address,
                aliases=tuple(e.aliases),
                internal=topology.networks[e.network].internal,
                driver=topology.networks[e.network].driver,
                icc=topology.networks[e.network].icc,
            )
            for e in container.endpoints
        ),
    )
