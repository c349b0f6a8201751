# This file is private to the wharf.network collection: its API may change at any time.
"""What every link resource needs: a plain view of an interface and the ownership mark.

Links the collection creates carry the interface alias (IFLA_IFALIAS) `wharf.network`, so
removal and prune only ever touch links that carry it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ansible_collections.wharf.network.plugins.module_utils._kernel.rtnl import IFF_UP, LinkMessage, Rtnl

OWNER_MARK = "wharf.network"


@dataclass
class Link:
    """An interface as the kernel reports it, reduced to the fields we manage."""

    index: int
    name: str
    kind: str | None
    mtu: int
    mac: str
    up: bool
    master: int | None
    alias: str | None
    peer_index: int | None
    info: dict[str, Any]
    link_netnsid: int | None = None

    @property
    def owned(self) -> bool:
        return bool(self.alias) and self.alias.startswith(OWNER_MARK)


def link_from_message(msg: LinkMessage) -> Link:
    return Link(
        index=msg.index,
        name=msg.name,
        kind=msg.kind,
        mtu=msg.mtu or 0,
        mac=msg.mac or "",
        up=bool(msg.flags & IFF_UP),
        master=msg.master,
        alias=msg.alias,
        peer_index=msg.peer_index,
        info=msg.info,
        link_netnsid=msg.link_netnsid,
    )


def dump_links(rtnl: Rtnl) -> dict[str, Link]:
    """All links of a namespace by name: one netlink dump."""
    return {link.name: link for link in (link_from_message(m) for m in rtnl.links())}
