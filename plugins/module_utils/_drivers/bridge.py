# This file is private to the wharf.network collection: its API may change at any time.
"""The bridge driver (Docker's default): a Linux bridge per network holding the gateway address, one veth pair per
endpoint (host end on the bridge, the other end inside the container), the firewall table governing the bridge."""

from __future__ import annotations

from ansible_collections.wharf.network.plugins.module_utils._drivers.base import Driver
from ansible_collections.wharf.network.plugins.module_utils._model.items import (
    BridgeItem,
    FirewallNetworkItem,
    InterfaceItem,
    PlanBuilder,
    Route,
    VethItem,
)
from ansible_collections.wharf.network.plugins.module_utils._model.names import mac_for
from ansible_collections.wharf.network.plugins.module_utils._model.types import Container, Endpoint, Network


class BridgeDriver(Driver):
    """Networks local to each host, on a Linux bridge."""

    name = "bridge"
    bridged = True

    def bridge_item(self, network: Network) -> BridgeItem:
        """The network's bridge: the host routes for its networks; what may pass is the firewall table's business
        (isolation, egress, publishes), so every bridge forwards. Its MAC is set, not left to the kernel: a bridge
        without one takes its lowest port's MAC, so the gateway's MAC would change as containers come and go and
        every container's ARP entry for the gateway would go stale (its DNS and egress lost for half a minute)."""
        return BridgeItem(
            name=str(network.bridge_name),  # bridged: always named
            mtu=network.mtu,
            forwarding=True,
            mac=gateway_mac(network),
        )

    def add_network(self, plan: PlanBuilder, network: Network) -> None:
        bridge = self.bridge_item(network)
        if network.state == "absent":
            plan.add("absent_bridges", bridge)
            return
        plan.add("bridges", bridge)
        gateways = tuple(str(subnet.gateway_interface) for subnet in network.subnets)  # one per family
        # the host's side of the network: IPv6 only where the network has it, router advertisements never taken
        plan.add("interfaces", InterfaceItem(name=bridge.name, addresses=gateways, ipv6=has_ipv6(network)))
        ipv4 = network.ipv4  # the firewall items have one subnet and one gateway, of IPv4 (IPv6: issue 13)
        plan.add(
            "firewall_networks",
            FirewallNetworkItem(
                bridge=bridge.name,
                subnet=str(ipv4.network),
                internal=network.internal,
                icc=network.icc,
                masquerade=network.masquerade,
                gateway=str(ipv4.gateway),
            ),
        )

    def add_endpoint(self, plan: PlanBuilder, network: Network, container: Container, endpoint: Endpoint) -> None:
        veth = VethItem(
            name=str(endpoint.host_interface),  # a bridged endpoint always has a host end
            peer=endpoint.interface,
            peer_namespace=container.name,
            master=str(network.bridge_name),
            mtu=network.mtu,
            peer_mac=endpoint.mac_address,
        )
        if container.state != "present":
            plan.add("absent_veths", veth)
            return
        plan.add("veths", veth)
        plan.add("interfaces", endpoint_interface(container, endpoint))


def endpoint_interface(container: Container, endpoint: Endpoint) -> InterfaceItem:
    """The addresses of an endpoint inside its container (one per family of its network), and a default route via
    the family's gateway for each family whose default route the endpoint carries. No IPv6 at all where the
    network has none (as Docker 26 and later): a container cannot then be given an IPv6 address or route by a
    forged router advertisement, and no IPv6 reaches what the topology gave only IPv4."""
    routes = tuple(
        Route(dest="default", gateway=str(gateway))
        for gateway in endpoint.gateways
        if gateway.version in endpoint.default_routes
    )
    addresses = tuple(str(address) for address in endpoint.addresses)
    return InterfaceItem(
        name=endpoint.interface,
        namespace=container.name,
        addresses=addresses,
        routes=routes,
        ipv6=any(address.version == 6 for address in endpoint.addresses),  # an endpoint has its network's families
    )


def gateway_mac(network: Network) -> str:
    """The MAC of a network's gateway (its bridge): derived from the IPv4 gateway address, as an endpoint's MAC from
    its IPv4 address, so it is the same after a re-creation and, for an overlay, on every host."""
    return mac_for(network.gateway)


def has_ipv6(network: Network) -> bool:
    """Whether the network has an IPv6 subnet (none before issue 13's family lands)."""
    return any(subnet.version == 6 for subnet in network.subnets)
