# This file is private to the wharf.network collection: its API may change at any time.
"""The topology model: parse, validate, default and allocate the YAML topology of DESIGN.md section 2.

Pure Python (the standard library and the collection's driver registry, itself pure): no Ansible import and no
kernel access, so every host, every run and every test computes the same model from the same document.

Entry point: :func:`parse_topology`. It returns a :class:`Topology` in which every field is filled in (Docker's
defaults applied, addresses allocated, kernel names derived), or raises :class:`TopologyError` whose ``errors``
lists every problem found, each naming its path in the document and the offending value.

Addresses (see :func:`allocate_addresses`)
    Deterministic: a function of the document alone (SHA-256, containers taken in sorted-name order), never of
    dict order, the machine or the run. A fixed ``ipv4_address`` always wins and is never handed to another
    container. Each network allocates on its own, and within it each subnet (one per address family, see
    :data:`FAMILIES`; IPv4 only until issue 13): editing one network never moves an address on another.

Kernel names (see :func:`bridge_name_for`, :func:`host_veth_name`; also ``docs/naming.md``)
    bridge ``br-<network>`` (``wharf0`` for the default network), host-side veth ``ve-<container[:5]>-<hex>``,
    container side ``eth0``, ``eth1``... in the order of the container's ``networks``; MAC ``02:42:`` + the four
    bytes of the endpoint's IPv4 address. All at most 15 characters and checked unique across the topology.

Where each part lives (this module is the entry point and the order of the steps; the names callers imported
from here before the split are still importable from here)
    ``types``: the frozen model and the address families · ``names``: derived kernel names, VNIs, MACs ·
    ``ipam``: address allocation · ``fields``: the generic field readers and how values read in messages ·
    ``networks``, ``containers`` (with endpoints and ``extra_hosts``), ``ports``: one section each ·
    ``dns_names``: the names the resolver serves. The kernel's fixed numbers are in ``_kernel/limits.py``.
"""

from __future__ import annotations

from collections.abc import Iterable

from ansible_collections.wharf.network.plugins.module_utils._model.containers import (
    MAX_CONTAINER_NAME,
    ContainerSpec,
    build_containers,
    check_endpoints,
    check_kernel_names,
    check_macs,
    check_shared_namespaces,
    read_container,
)
from ansible_collections.wharf.network.plugins.module_utils._model.dns_names import check_dns_names
from ansible_collections.wharf.network.plugins.module_utils._model.fields import Fields
from ansible_collections.wharf.network.plugins.module_utils._model.ipam import allocate_addresses, allocate_endpoints
from ansible_collections.wharf.network.plugins.module_utils._model.names import (
    DEFAULT_BRIDGE_NAME,
    DEFAULT_NETWORK,
    IFNAMSIZ,
    bridge_name_for,
    default_vni,
    host_veth_name,
    mac_for,
    vxlan_name_for,
)
from ansible_collections.wharf.network.plugins.module_utils._model.networks import (
    DEFAULT_MTU,
    DEFAULT_SUBNET,
    DRIVERS,
    OVERLAY_MTU,
    VXLAN_OVERHEAD,
    check_overlaps,
    default_network,
    read_network,
)
from ansible_collections.wharf.network.plugins.module_utils._model.ports import PROTOCOLS, check_ports
from ansible_collections.wharf.network.plugins.module_utils._model.types import (
    BRIDGED_DRIVERS,
    STATES,
    Container,
    Endpoint,
    Network,
    PortMapping,
    Topology,
)

# Everything callers imported from here before the model was split keeps working from here.
__all__ = [
    "BRIDGED_DRIVERS",
    "DEFAULT_BRIDGE_NAME",
    "DEFAULT_MTU",
    "DEFAULT_NETWORK",
    "DEFAULT_SUBNET",
    "DRIVERS",
    "IFNAMSIZ",
    "OVERLAY_MTU",
    "PROTOCOLS",
    "STATES",
    "VXLAN_OVERHEAD",
    "Container",
    "Endpoint",
    "Network",
    "PortMapping",
    "Topology",
    "TopologyError",
    "allocate_addresses",
    "bridge_name_for",
    "default_vni",
    "host_veth_name",
    "mac_for",
    "parse_topology",
    "topology_errors",
    "vxlan_name_for",
]

_TOP_KEYS = ("networks", "containers", "state", "prune")


class TopologyError(ValueError):
    """The topology is invalid. ``errors`` lists every problem found, one sentence each, in document order."""

    def __init__(self, errors: Iterable[str]):
        self.errors = list(errors)
        super().__init__("invalid topology:\n" + "\n".join(f"- {e}" for e in self.errors))


def parse_topology(data: object) -> Topology:
    """Validate ``data`` (the value of ``wharf_topology``) and return the complete model.

    Raises :class:`TopologyError` listing every problem at once; nothing is half-checked.
    """
    return _Parser().parse(data)


def topology_errors(data: object) -> list[str]:
    """Every problem in ``data``; empty when it is a valid topology."""
    try:
        parse_topology(data)
    except TopologyError as exc:
        return exc.errors
    return []


class _Parser(Fields):
    """One validation pass over a whole document: the sections in order, then the checks across them.

    Each check appends to ``errors`` and carries on, so all problems surface at once; a check that depends on a
    broken value (an address against an invalid subnet) is skipped, not guessed. The order of the steps is the
    order of the messages, which tests and users see.
    """

    def parse(self, data: object) -> Topology:
        top = self.mapping("wharf_topology", data, none_ok=False)
        if top is None:
            raise TopologyError(self.errors)
        self.unknown_keys("wharf_topology", top, _TOP_KEYS)
        state = self.choice("state", top.get("state", "present"), STATES) or "present"
        prune = top.get("prune", False)
        prune = bool(self.boolean("prune", prune)) if prune is not None else False

        networks_spec = self.mapping("networks", top.get("networks")) or {}
        containers_spec = self.mapping("containers", top.get("containers")) or {}

        networks: dict[str, Network] = {}
        known_networks: set[str] = set()  # declared, valid name, even when the body is broken
        for name, spec in networks_spec.items():
            path = f"networks.{name}"
            if not self.name(path, name, "network"):
                continue
            known_networks.add(name)
            network = read_network(self, path, name, spec, state)
            if network is not None:
                networks[name] = network

        containers: dict[str, ContainerSpec] = {}
        for name, spec in containers_spec.items():
            path = f"containers.{name}"
            if not self.name(path, name, "container", MAX_CONTAINER_NAME):
                continue
            container = read_container(self, path, name, spec, state)
            if container is not None:
                containers[name] = container

        # the default network exists when declared or when some container is on it
        uses_default = any(e.network == DEFAULT_NETWORK for c in containers.values() for e in c.endpoints)
        if DEFAULT_NETWORK not in known_networks and uses_default:
            networks[DEFAULT_NETWORK] = default_network(state)
            known_networks.add(DEFAULT_NETWORK)

        check_overlaps(self, networks)
        check_shared_namespaces(self, containers)
        check_endpoints(self, containers, networks, known_networks)
        check_dns_names(self, containers)
        addresses = allocate_endpoints(self, containers, networks)
        model = build_containers(containers, networks, addresses)
        check_kernel_names(self, networks, model)
        check_macs(self, model)
        check_ports(self, model)
        if self.errors:
            raise TopologyError(self.errors)
        return Topology(
            networks={n: networks[n] for n in sorted(networks)},
            containers={c: model[c] for c in sorted(model)},
            state=state,
            prune=prune,
        )
