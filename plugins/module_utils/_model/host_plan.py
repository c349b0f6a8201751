# This file is private to the wharf.network collection: its API may change at any time.
"""The topology model → the typed, frozen plan of one inventory host: every kernel object it must have.

Pure (no Ansible, no kernel): the converge steps read a `HostPlan`, and the `wharf_host_items` filter shows the same
plan as plain lists (`HostPlan.as_items()`, the shape of the per-resource modules' items), so what a playbook shows and
what the converge builds come from one function. What a network needs on the host and per endpoint is its driver's
business (`_drivers/`); this module walks the topology and asks the driver of each network.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.wharf.network.plugins.module_utils._drivers import driver_for, drivers_in_use
from ansible_collections.wharf.network.plugins.module_utils._model.items import (
    ITEM_LISTS,
    HostPlan,
    NamespaceItem,
    PlanBuilder,
    PublishItem,
    container_summary,
)
from ansible_collections.wharf.network.plugins.module_utils._model.ports import ports_text
from ansible_collections.wharf.network.plugins.module_utils._model.types import Container, Network, Topology

__all__ = ["ITEM_LISTS", "HostPlan", "container_summary", "host_items", "host_plan", "ports_text"]


def host_plan(topology: Topology, inventory_hostname: str, peers: dict[str, str] | None = None) -> HostPlan:
    """The plan of one host.

    Containers whose ``host`` is another inventory host are left out; a container without ``host`` is on every
    host. Declared networks are on every host; the default network only where a container uses it.

    ``peers`` maps inventory hostnames to their underlay addresses (this host's included). With it, drivers that
    span hosts (overlay) add what joins this host to the others: each overlay network with a container here gets a
    VXLAN item whose peers and remote entries are the other hosts of ``peers`` and their containers on that network;
    ``remote_containers`` summarises those containers (their overlay endpoints only). Without it (or without this
    host in it) overlay networks stay local bridges.
    """
    plan = PlanBuilder()
    containers = topology.containers_on(inventory_hostname)
    for network in topology.networks.values():
        if _network_on_host(network, containers):
            driver_for(network.driver).add_network(plan, network)
    for container in containers:
        present = container.state == "present"
        if container.shares_with is not None and container.namespace is not None:
            # container:OTHER gets its own name for OTHER's namespace, so `ip netns exec NAME` works too
            shared = NamespaceItem(name=container.name, share_with=container.namespace)
            plan.add("namespaces" if present else "absent_namespaces", shared)
        if container.own_namespace:
            namespace = NamespaceItem(name=container.name, hostname=container.hostname)
            plan.add("namespaces" if present else "absent_namespaces", namespace)
            for endpoint in container.endpoints:
                network = topology.networks[endpoint.network]
                driver_for(network.driver).add_endpoint(plan, network, container, endpoint)
        if present:
            plan.add("containers", container_summary(container, topology))
            for publish in _publishes(container):
                plan.add("publishes", publish)
    if peers and inventory_hostname in peers:
        for driver in drivers_in_use([n.driver for n in topology.networks.values()]):
            driver.add_fabric(plan, topology, inventory_hostname, peers)
    return plan.freeze(topology.prune)


def host_items(topology: Topology, inventory_hostname: str, peers: dict[str, str] | None = None) -> dict[str, Any]:
    """The plan of one host as plain item lists (the `wharf_host_items` filter)."""
    return host_plan(topology, inventory_hostname, peers).as_items()


def _publishes(container: Container) -> list[PublishItem]:
    """The container's ports as publish items (the long form of the firewall module), DNATed to its address on
    the network that carries its default route: its first non-internal network, as Docker's gateway endpoint."""
    target = next((e for e in container.endpoints if e.default_route and e.host_interface is not None), None)
    if target is None:
        return []  # no ingress network: the topology refused the ports already
    return [
        PublishItem(
            address=str(target.address),
            host_ip=str(mapping.host_ip) if mapping.host_ip is not None else None,
            published=ports_text(mapping.published) if mapping.published else None,
            target=ports_text(mapping.target),
            protocol=mapping.protocol,
            source=f"containers.{container.name}.ports[{index}]",
        )
        for index, mapping in enumerate(container.ports)
    ]


def _network_on_host(network: Network, containers: list[Container]) -> bool:
    """Declared networks exist on every host, as in Docker; the default network only where it is used (or, on
    teardown, was used)."""
    if network.declared:
        return True
    wanted = ("present", "absent") if network.state == "absent" else ("present",)
    return any(c.state in wanted and any(e.network == network.name for e in c.endpoints) for c in containers)
