# This file is private to the wharf.network collection: its API may change at any time.
"""Delete conntrack entries over ctnetlink (NETLINK_NETFILTER), without the `conntrack` program.

Why: a UDP "connection" lives as long as packets keep coming. A client that sent to a host port before it
was published (or while it pointed at another container) keeps its conntrack entry, with the old NAT
binding or none, and the new DNAT rule never sees its packets: they blackhole until the client goes
quiet for the UDP timeout. Docker deletes those entries when it maps a UDP port; so do we.

The kernel has no "delete by port", so this dumps the IPv4 entries of the namespace and deletes the
matching ones by their original tuple, echoed back byte for byte as the kernel dumped it.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

from ansible_collections.wharf.network.plugins.module_utils._kernel.rtnl import NetlinkError, Rtnl, attr, parse_attrs

NETLINK_NETFILTER = 12
NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_GET = 1
IPCTNL_MSG_CT_DELETE = 2
NFNETLINK_V0 = 0
NLA_F_NESTED = 0x8000

CTA_TUPLE_ORIG = 1
CTA_ZONE = 18
CTA_TUPLE_IP = 1
CTA_TUPLE_PROTO = 2
CTA_IP_V4_SRC = 1
CTA_IP_V4_DST = 2
CTA_PROTO_NUM = 1
CTA_PROTO_SRC_PORT = 2
CTA_PROTO_DST_PORT = 3

IPPROTO = {"tcp": 6, "udp": 17, "sctp": 132}


@dataclass(frozen=True)
class Entry:
    """One conntrack entry, by its original-direction tuple."""

    protocol: int
    source: ipaddress.IPv4Address
    destination: ipaddress.IPv4Address
    source_port: int
    destination_port: int
    raw_tuple: bytes
    raw_zone: bytes | None


class Conntrack(Rtnl):
    """A NETLINK_NETFILTER socket in the namespace the thread is in (netlink framing from Rtnl)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.bind((0, 0))
        self.seq = 0

    @staticmethod
    def _header() -> bytes:
        return struct.pack("=BBH", socket.AF_INET, NFNETLINK_V0, 0)

    def entries(self) -> list[Entry]:
        found = []
        for body in self.dump((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET, self._header()):
            entry = _parse(body)
            if entry is not None:
                found.append(entry)
        return found

    def delete(self, entry: Entry) -> bool:
        """Delete one entry; False when it was already gone (expired meanwhile)."""
        payload = self._header() + attr(CTA_TUPLE_ORIG | NLA_F_NESTED, entry.raw_tuple)
        if entry.raw_zone is not None:
            payload += attr(CTA_ZONE, entry.raw_zone)
        try:
            self.request((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE, 0, payload)
        except NetlinkError as exc:
            if exc.errno == errno.ENOENT:
                return False
            raise
        return True


def _parse(body: bytes) -> Entry | None:
    attrs = parse_attrs(body, 4)
    raw_tuple = attrs.get(CTA_TUPLE_ORIG)
    if raw_tuple is None:
        return None
    parts = parse_attrs(raw_tuple)
    addresses = parse_attrs(parts.get(CTA_TUPLE_IP, b""))
    proto = parse_attrs(parts.get(CTA_TUPLE_PROTO, b""))
    source, destination = addresses.get(CTA_IP_V4_SRC), addresses.get(CTA_IP_V4_DST)
    number = proto.get(CTA_PROTO_NUM)
    if source is None or destination is None or number is None:
        return None
    sport, dport = proto.get(CTA_PROTO_SRC_PORT), proto.get(CTA_PROTO_DST_PORT)
    return Entry(
        protocol=number[0],
        source=ipaddress.IPv4Address(source[:4]),
        destination=ipaddress.IPv4Address(destination[:4]),
        source_port=struct.unpack("!H", sport[:2])[0] if sport else 0,
        destination_port=struct.unpack("!H", dport[:2])[0] if dport else 0,
        raw_tuple=raw_tuple,
        raw_zone=attrs.get(CTA_ZONE),
    )


def delete_entries(matches: Callable[[Entry], bool]) -> int:
    """Delete every IPv4 entry of this namespace that `matches`; returns how many were deleted."""
    ctnl = Conntrack()
    try:
        return sum(1 for entry in ctnl.entries() if matches(entry) and ctnl.delete(entry))
    finally:
        ctnl.close()
