# This file is private to the wharf.network collection: its API may change at any time.
"""What a call makes of the recorded networks and publishes: the listed items replace, join or leave them
(``state`` and ``exclusive``), so a module call that names one publish does not drop the others."""

from __future__ import annotations

from dataclasses import replace

from ansible_collections.wharf.network.plugins.module_utils._firewall.model import FirewallNetwork, Publish


def merge_publishes(previous: list[Publish], listed: list[Publish], state: str, exclusive: bool) -> list[Publish]:
    """What the publishes become: ``exclusive`` replaces them all with ``listed``; ``present`` adds or
    replaces the listed ones (same host port, or for a free-port request the same target); ``absent``
    removes them. Kept publishes are labelled as applied earlier, for messages."""
    if state == "present" and exclusive:
        return list(listed)
    keys = {p.key for p in listed}
    host_keys = {p.host_key for p in listed if p.published is not None}

    def replaced(old: Publish) -> bool:
        if ("auto", *old.target_key) in keys:
            return True
        return not old.auto and old.host_key in host_keys

    kept = [replace(p, label="(published earlier)") for p in previous if not replaced(p)]
    return kept + list(listed) if state == "present" else kept


def merge_networks(
    previous: list[FirewallNetwork], listed: list[FirewallNetwork], state: str, exclusive: bool
) -> list[FirewallNetwork]:
    if state == "present" and exclusive:
        return list(listed)
    bridges = {n.bridge for n in listed}
    kept = [n for n in previous if n.bridge not in bridges]
    return kept + list(listed) if state == "present" else kept
