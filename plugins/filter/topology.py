# Copyright: wharf.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters turning the topology (DESIGN.md section 2) into the item lists of the collection's modules.

``wharf_host_items`` and ``wharf_topology_errors`` are documented in the sidecar files beside this one
(``ansible-doc -t filter wharf.network.wharf_host_items``).
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.wharf.network.plugins.module_utils._model.host_plan import ITEM_LISTS, host_items
from ansible_collections.wharf.network.plugins.module_utils._model.topology import (
    TopologyError,
    parse_topology,
    topology_errors,
)

__all__ = ["ITEM_LISTS", "host_items", "wharf_host_items", "wharf_topology_errors", "wharf_underlay_peers"]


def wharf_host_items(topology: Any, inventory_hostname: str, peers: dict[str, str] | None = None) -> dict[str, Any]:
    """Filter: the module item lists for ``inventory_hostname`` (with ``peers``, the overlay's VXLAN items too);
    fails listing every error of the topology."""
    if not isinstance(inventory_hostname, str) or not inventory_hostname:
        raise AnsibleFilterError(f"wharf_host_items needs an inventory hostname, got {inventory_hostname!r}")
    try:
        model = parse_topology(topology)
    except TopologyError as exc:
        raise AnsibleFilterError(str(exc)) from None
    return host_items(model, inventory_hostname, peers)


def wharf_underlay_peers(hostvars: Any, hosts: Any) -> dict[str, str]:
    """Filter: ``{inventory hostname: wharf_underlay_address}`` for each of ``hosts`` that defines it."""
    if not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError(f"wharf_underlay_peers needs a list of inventory hostnames, got {hosts!r}")
    peers: dict[str, str] = {}
    for name in hosts:
        address = hostvars[name].get("wharf_underlay_address")
        if address:
            peers[str(name)] = str(address)
    return peers


def wharf_topology_errors(topology: Any) -> list[str]:
    """Filter: every problem of the topology, one sentence each; empty when it is valid."""
    return topology_errors(topology)


class FilterModule:
    """wharf.network topology filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "wharf_host_items": wharf_host_items,
            "wharf_topology_errors": wharf_topology_errors,
            "wharf_underlay_peers": wharf_underlay_peers,
        }
