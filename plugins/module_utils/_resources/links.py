# This file is private to the wharf.network collection: its API may change at any time.
"""What every link resource needs: a plain view of an interface and the ownership mark.

Links the collection creates carry the interface alias (IFLA_IFALIAS) `wharf.network`, so
removal and prune only ever touch links that carry it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OWNER_MARK = "wharf.network"
IFF_UP = 1


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

    @property
    def owned(self) -> bool:
        return bool(self.alias) and self.alias.startswith(OWNER_MARK)


def link_from_message(msg: Any) -> Link:
    linkinfo = msg.get("IFLA_LINKINFO")
    kind = linkinfo.get("IFLA_INFO_KIND") if linkinfo else None
    info: dict[str, Any] = {}
    if linkinfo is not None:
        data = linkinfo.get("IFLA_INFO_DATA")
        if data is not None and hasattr(data, "get") and kind == "bridge":
            info["stp"] = bool(data.get("IFLA_BR_STP_STATE"))
            info["vlan_filtering"] = bool(data.get("IFLA_BR_VLAN_FILTERING"))
    return Link(
        index=msg["index"],
        name=msg.get("IFLA_IFNAME"),
        kind=kind,
        mtu=msg.get("IFLA_MTU"),
        mac=msg.get("IFLA_ADDRESS"),
        up=bool(msg["flags"] & IFF_UP),
        master=msg.get("IFLA_MASTER"),
        alias=msg.get("IFLA_IFALIAS"),
        peer_index=msg.get("IFLA_LINK"),
        info=info,
    )


def dump_links(ipr: Any) -> dict[str, Link]:
    """All links of a namespace by name: one netlink dump."""
    return {link.name: link for link in (link_from_message(m) for m in ipr.get_links())}
