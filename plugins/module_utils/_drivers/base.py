# This file is private to the wharf.network collection: its API may change at any time.
"""What every network driver answers; the defaults suit a driver whose networks are local to one host."""

from __future__ import annotations

from ansible_collections.wharf.network.plugins.module_utils._model.items import PlanBuilder
from ansible_collections.wharf.network.plugins.module_utils._model.types import (
    Container,
    Endpoint,
    Network,
    Topology,
)


class Driver:
    """A network driver. Subclasses add the items their networks need to the host's plan."""

    name: str = ""
    # endpoints are veth pairs on a Linux bridge of the host (the firewall governs that bridge)
    bridged: bool = False
    # the converge makes networks of this driver; False: the model accepts them, the converge refuses them
    # before any change, naming the containers that use one
    converges: bool = True

    def add_network(self, plan: PlanBuilder, network: Network) -> None:
        """The host-side objects of one network on a host that carries it."""

    def add_endpoint(self, plan: PlanBuilder, network: Network, container: Container, endpoint: Endpoint) -> None:
        """The objects of one endpoint of a container of this host."""

    def add_fabric(self, plan: PlanBuilder, topology: Topology, host: str, peers: dict[str, str]) -> None:
        """What joins this host to the other hosts of ``peers`` for this driver's networks (nothing: host-local)."""

    def __repr__(self) -> str:
        return f"<driver {self.name}>"
