# This file is private to the wharf.network collection: its API may change at any time.
"""The overlay driver: one L2 segment across hosts. On each host a bridge as for the bridge driver, with the same
gateway address and MAC everywhere (a distributed, anycast gateway; the MAC derived from the address), joined to the
other hosts by a VXLAN device with a static mesh from the inventory: a flood entry per peer, and per remote
container its MAC behind its host and a permanent neighbour entry."""

from __future__ import annotations

import dataclasses
import ipaddress

from ansible_collections.wharf.network.plugins.module_utils._drivers.bridge import BridgeDriver
from ansible_collections.wharf.network.plugins.module_utils._model.items import (
    ContainerSummary,
    PlanBuilder,
    RemoteEntry,
    VxlanItem,
    container_summary,
)
from ansible_collections.wharf.network.plugins.module_utils._model.names import vxlan_name_for
from ansible_collections.wharf.network.plugins.module_utils._model.types import Topology


class OverlayDriver(BridgeDriver):
    """Networks spanning the hosts of the inventory's underlay (``peers``)."""

    name = "overlay"

    def add_fabric(self, plan: PlanBuilder, topology: Topology, host: str, peers: dict[str, str]) -> None:
        """The VXLAN item of every overlay network this host carries, and the remote containers on them."""
        spans = overlay_spans(topology, peers)
        remote_summaries: dict[str, ContainerSummary] = {}
        for name, hosts in spans.items():
            if host not in hosts:
                continue
            network = topology.networks[name]
            if network.vni is None or network.bridge_name is None:  # the topology gives every overlay both
                continue
            remotes = []
            for container in topology.containers.values():
                if container.host is None or container.host == host or container.host not in peers:
                    continue
                if container.state != "present" or not container.own_namespace:
                    continue
                for endpoint in container.endpoints:
                    if endpoint.network == name:
                        # a neighbour entry per family, all for the endpoint's one MAC
                        remotes.extend(
                            RemoteEntry(mac=endpoint.mac_address, address=str(address.ip), peer=peers[container.host])
                            for address in endpoint.addresses
                        )
                        remote_summaries.setdefault(container.name, container_summary(container, topology))
            plan.add(
                "vxlans",
                VxlanItem(
                    name=vxlan_name_for(network.vni),
                    vni=network.vni,
                    local=peers[host],
                    master=network.bridge_name,
                    mtu=network.mtu,
                    peers=tuple(sorted({peers[h] for h in hosts if h != host})),
                    remotes=tuple(sorted(remotes, key=lambda r: (r.address, r.mac))),
                ),
            )
        carried = {name for name, hosts in spans.items() if host in hosts}
        for key in sorted(remote_summaries):
            summary = remote_summaries[key]
            endpoints = tuple(e for e in summary.endpoints if e.network in carried)
            plan.add("remote_containers", dataclasses.replace(summary, endpoints=endpoints))


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
    errors: list[str] = []
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


def has_overlay_container(topology: Topology, host: str) -> bool:
    """Whether a present container of this host (or of every host: no `host`) is on an overlay network."""
    for container in topology.containers.values():
        if container.state != "present" or container.host not in (None, host):
            continue
        if any(topology.networks[e.network].driver == "overlay" for e in container.endpoints):
            return True
    return False


def peer_errors(peers: dict[str, str]) -> list[str]:
    """Each peer's underlay address must be one IPv4 address, and no two hosts may share one."""
    errors = []
    seen: dict[str, str] = {}
    for name, address in sorted(peers.items()):
        try:
            text = str(ipaddress.IPv4Address(address))
        except (ValueError, TypeError):
            errors.append(f"peers.{name}: underlay address {address!r} is not an IPv4 address")
            continue
        if text in seen:
            errors.append(f"peers.{name}: underlay address {text} is also the address of {seen[text]}")
        seen[text] = name
    return errors
