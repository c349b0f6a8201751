# This file is private to the wharf.network collection: its API may change at any time.
"""The topology model → the item lists of the collection's modules, for one inventory host.

Pure (no Ansible, no kernel): the `wharf_host_items` filter and the `converge` module both use it, so
what a playbook shows and what the module builds come from one function.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.wharf.network.plugins.module_utils._model.topology import (
    Container,
    Network,
    Topology,
    mac_for,
    vxlan_name_for,
)

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


def host_items(topology: Topology, inventory_hostname: str, peers: dict[str, str] | None = None) -> dict[str, Any]:
    """The item lists for one inventory host, every list sorted so the same topology gives the same output.

    Containers whose ``host`` is another inventory host are left out; a container without ``host`` is on every
    host. Declared bridge/overlay networks are on every host; the default network only where a container uses
    it. Things whose state is absent go to the ``absent_*`` lists, in the same shape as the present ones.

    ``peers`` maps inventory hostnames to their underlay addresses (this host's included). With it, each overlay
    network that has a container on this host gets a VXLAN item (``vxlans``) whose peers and remote entries are
    the other hosts of ``peers`` and their containers on that network; ``remote_containers`` summarises those
    containers (their overlay endpoints only). Without it (or without this host in it) overlay networks stay
    local bridges.
    """
    items: dict[str, Any] = {key: [] for key in ITEM_LISTS}
    items["prune"] = topology.prune
    containers = topology.containers_on(inventory_hostname)

    for network in topology.networks.values():
        if not network.bridged or not _network_on_host(network, containers):
            continue
        # the host routes for its networks; what may pass is the firewall's table (isolation, egress, publishes)
        bridge: dict[str, Any] = {"name": network.bridge_name, "mtu": network.mtu, "forwarding": True}
        if network.driver == "overlay":
            # a distributed gateway: the same address and the same MAC on every host, as EVPN's anycast gateway,
            # so whichever host answers an ARP for the gateway, the answer is the same
            bridge["mac"] = gateway_mac(network)
        if network.state == "absent":
            items["absent_bridges"].append(bridge)
        else:
            items["bridges"].append(bridge)
            items["interfaces"].append({"name": network.bridge_name, "addresses": [network.gateway_interface]})
            items["firewall_networks"].append(
                {
                    "bridge": network.bridge_name,
                    "subnet": str(network.subnet),
                    "internal": network.internal,
                    "icc": network.icc,
                    "masquerade": network.masquerade,
                    "gateway": str(network.gateway),
                }
            )

    for container in containers:
        present = container.state == "present"
        if container.shares_with is not None and container.namespace is not None:
            # container:OTHER gets its own name for OTHER's namespace, so `ip netns exec NAME` works too
            shared = {"name": container.name, "share_with": container.namespace}
            items["namespaces" if present else "absent_namespaces"].append(shared)
        if container.own_namespace:
            namespace = {"name": container.name, "hostname": container.hostname}
            items["namespaces" if present else "absent_namespaces"].append(namespace)
            for endpoint in container.endpoints:
                network = topology.networks[endpoint.network]
                interface: dict[str, Any] = {
                    "name": endpoint.interface,
                    "namespace": container.name,
                    "addresses": [endpoint.address_interface],
                }
                if endpoint.default_route:
                    interface["routes"] = [{"dest": "default", "gateway": str(endpoint.gateway)}]
                if endpoint.host_interface is None:
                    if present:
                        items["sub_interfaces"].append(
                            {
                                **interface,
                                "kind": network.driver,
                                "parent": network.parent,
                                "mode": network.mode,
                                "mtu": network.mtu,
                                "mac": endpoint.mac_address,
                            }
                        )
                    continue
                veth = {
                    "name": endpoint.host_interface,
                    "peer": endpoint.interface,
                    "peer_namespace": container.name,
                    "master": network.bridge_name,
                    "mtu": network.mtu,
                    "peer_mac": endpoint.mac_address,
                    # a container reaching its own published port through the host's address (hairpin NAT)
                    "hairpin": True,
                }
                items["veths" if present else "absent_veths"].append(veth)
                if present:
                    items["interfaces"].append(interface)
        if present:
            items["containers"].append(_summary(container, topology))
            items["publishes"].extend(_publishes(container))
    if peers and inventory_hostname in peers:
        _overlay_items(items, topology, inventory_hostname, peers)
    return items


def _publishes(container: Container) -> list[dict[str, Any]]:
    """The container's ports as publish items (the long form of the firewall module), DNATed to its address on
    the network that carries its default route: its first non-internal network, as Docker's gateway endpoint."""
    target = next((e for e in container.endpoints if e.default_route and e.host_interface is not None), None)
    if target is None:
        return []  # no ingress network: the topology refused the ports already
    publishes = []
    for index, mapping in enumerate(container.ports):
        publishes.append(
            {
                "address": str(target.address),
                "host_ip": str(mapping.host_ip) if mapping.host_ip is not None else None,
                "published": _ports_text(mapping.published) if mapping.published else None,
                "target": _ports_text(mapping.target),
                "protocol": mapping.protocol,
                "source": f"containers.{container.name}.ports[{index}]",
            }
        )
    return publishes


def _ports_text(ports: tuple[int, int]) -> str:
    return str(ports[0]) if ports[0] == ports[1] else f"{ports[0]}-{ports[1]}"


def gateway_mac(network: Network) -> str:
    """The MAC of an overlay network's gateway (its bridge) on every host: derived from the gateway address."""
    return mac_for(network.gateway)


def overlay_spans(topology: Topology, peers: dict[str, str]) -> dict[str, list[str]]:
    """Per present overlay network, the hosts of ``peers`` that have a present container on it (sorted)."""
    spans: dict[str, set[str]] = {}
    for container in topology.containers.values():
        if container.state != "present" or not container.own_namespace:
            continue
        hosts = [container.host] if container.host is not None else list(peers)
        for endpoint in container.endpoints:
            network = topology.networks[endpoint.network]
            if network.driver == "overlay" and network.state == "present":
                spans.setdefault(network.name, set()).update(h for h in hosts if h in peers)
    return {name: sorted(hosts) for name, hosts in sorted(spans.items())}


def overlay_errors(topology: Topology, peers: dict[str, str]) -> list[str]:
    """Containers that would be on several hosts of one overlay segment at once (no ``host``): the same address
    and MAC in several places of one L2 network."""
    errors = []
    if len(peers) < 2:
        return errors
    for container in topology.containers.values():
        if container.host is not None or container.state != "present" or not container.own_namespace:
            continue
        for endpoint in container.endpoints:
            if topology.networks[endpoint.network].driver == "overlay":
                errors.append(
                    f"containers.{container.name}.host is needed: it is on overlay network {endpoint.network},"
                    f" which spans the hosts {', '.join(sorted(peers))}, and without a host it would be on all of"
                    " them with one address"
                )
    return errors


def _overlay_items(items: dict[str, Any], topology: Topology, this_host: str, peers: dict[str, str]) -> None:
    """The VXLAN item of every overlay network this host carries, and the remote containers on them."""
    spans = overlay_spans(topology, peers)
    remote_summaries: dict[str, dict[str, Any]] = {}
    for name, hosts in spans.items():
        if this_host not in hosts:
            continue
        network = topology.networks[name]
        remotes = []
        for container in topology.containers.values():
            if container.host is None or container.host == this_host or container.host not in peers:
                continue
            if container.state != "present" or not container.own_namespace:
                continue
            for endpoint in container.endpoints:
                if endpoint.network == name:
                    remotes.append(
                        {"mac": endpoint.mac_address, "address": str(endpoint.address), "peer": peers[container.host]}
                    )
                    remote_summaries.setdefault(container.name, _summary(container, topology))
        items["vxlans"].append(
            {
                "name": vxlan_name_for(network.vni),
                "vni": network.vni,
                "local": peers[this_host],
                "master": network.bridge_name,
                "mtu": network.mtu,
                "peers": sorted({peers[h] for h in hosts if h != this_host}),
                "remotes": sorted(remotes, key=lambda r: (r["address"], r["mac"])),
            }
        )
    carried = {name for name, hosts in spans.items() if this_host in hosts}
    for summary in remote_summaries.values():
        summary["endpoints"] = [e for e in summary["endpoints"] if e["network"] in carried]
    items["remote_containers"] = [remote_summaries[k] for k in sorted(remote_summaries)]


def _network_on_host(network: Network, containers: list[Container]) -> bool:
    """Declared networks exist on every host, as in Docker; the default network only where it is used (or, on
    teardown, was used)."""
    if network.declared:
        return True
    wanted = ("present", "absent") if network.state == "absent" else ("present",)
    return any(c.state in wanted and any(e.network == network.name for e in c.endpoints) for c in containers)


def _summary(container: Container, topology: Topology) -> dict[str, Any]:
    return {
        "name": container.name,
        "namespace": container.namespace,
        "hostname": container.hostname,
        "network_mode": container.network_mode,
        "host": container.host,
        "endpoints": [
            {
                "network": e.network,
                "interface": e.interface,
                "host_interface": e.host_interface,
                "address": str(e.address),
                "prefixlen": e.prefixlen,
                "gateway": str(e.gateway),
                "mac": e.mac_address,
                "aliases": list(e.aliases),
                "internal": topology.networks[e.network].internal,
                "driver": topology.networks[e.network].driver,
                "icc": topology.networks[e.network].icc,
            }
            for e in container.endpoints
        ],
    }
