# This file is private to the wharf.network collection: its API may change at any time.
"""macvlan and ipvlan: each endpoint a child of a host interface (``parent``), placed straight into the container.

The topology accepts these networks and the `wharf_host_items` filter lists their endpoints as ``sub_interfaces``;
the converge does not make them yet (issue 12) and refuses them before any change, naming the containers.
"""

from __future__ import annotations

from ansible_collections.wharf.network.plugins.module_utils._drivers.base import Driver
from ansible_collections.wharf.network.plugins.module_utils._drivers.bridge import endpoint_interface
from ansible_collections.wharf.network.plugins.module_utils._model.items import PlanBuilder, SubInterfaceItem
from ansible_collections.wharf.network.plugins.module_utils._model.types import Container, Endpoint, Network


class SubInterfaceDriver(Driver):
    """A driver whose endpoints are sub-interfaces of a host interface; no bridge, no host-side objects."""

    converges = False

    def __init__(self, name: str) -> None:
        self.name = name

    def add_endpoint(self, plan: PlanBuilder, network: Network, container: Container, endpoint: Endpoint) -> None:
        if container.state != "present":
            return
        plan.add(
            "sub_interfaces",
            SubInterfaceItem(
                interface=endpoint_interface(container, endpoint),
                kind=network.driver,
                parent=network.parent,
                mode=network.mode,
                mtu=network.mtu,
                mac=endpoint.mac_address,
            ),
        )
