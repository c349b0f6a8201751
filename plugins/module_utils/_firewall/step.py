# This file is private to the wharf.network collection: its API may change at any time.
"""The firewall step of a converge: the host's table for its plan, or the table's removal when nothing is left."""

from __future__ import annotations

import os
from typing import Any

from ansible_collections.wharf.network.plugins.module_utils._firewall.nft import Runner
from ansible_collections.wharf.network.plugins.module_utils._firewall.record import RECORD_NAME, read_record
from ansible_collections.wharf.network.plugins.module_utils._firewall.resource import FirewallResource
from ansible_collections.wharf.network.plugins.module_utils._model.items import HostPlan


def firewall_for_host(
    plan: HostPlan,
    run: Runner | None,
    nft_binary: str,
    record_dir: str,
    vxlan_peers: list[str] | None,
    vxlan_local: str | None,
) -> FirewallResource | None:
    """The host's table for this plan; with no network left, its removal (only if wharf made one).
    With `vxlan_peers`, VXLAN to `vxlan_local` (this host's underlay address) is accepted from those only."""
    if run is None:
        return None
    networks = plan.items("firewall_networks") + kept_networks(plan, record_dir)
    if networks or plan.publishes:
        return FirewallResource(
            run,
            networks,
            plan.items("publishes"),
            "present",
            True,
            nft_binary,
            record_dir,
            vxlan_peers=vxlan_peers,
            vxlan_local=vxlan_local,
        )
    if os.path.exists(os.path.join(record_dir, RECORD_NAME)):
        return FirewallResource(run, None, None, "absent", False, nft_binary, record_dir)
    return None


def kept_networks(plan: HostPlan, record_dir: str) -> list[dict[str, Any]]:
    """Networks the table governed that the topology no longer names but that still exist (no `prune`, not
    `state: absent`): they stay isolated until they are removed, instead of falling out of the table open."""
    if plan.prune:
        return []
    record = read_record(record_dir)
    if record is None:
        return []
    named = {n.bridge for n in plan.firewall_networks} | {b.name for b in plan.absent_bridges}
    return [
        network.record()
        for network in record.networks
        if network.bridge not in named and os.path.isdir(f"/proc/sys/net/ipv4/conf/{network.bridge}")
    ]
