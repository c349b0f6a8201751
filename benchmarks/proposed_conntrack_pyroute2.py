# This file is private to the wharf.network collection: its API may change at any time.
"""Delete conntrack entries over ctnetlink (NETLINK_NETFILTER) through pyroute2, without the `conntrack` program.

A drop-in for plugins/module_utils/_kernel/conntrack.py (``_conntrack.py`` before the house move): the same
`IPPROTO`, `Entry` fields the callers read and `delete_entries(matches) -> int`. Kept here, next to
benchmarks/bench_conntrack.py, which measures it against ours; benchmarks/README.md says why ours stays.

Why: a UDP "connection" lives as long as packets keep coming. A client that sent to a host port before it
was published (or while it pointed at another container) keeps its conntrack entry, with the old NAT
binding or none, and the new DNAT rule never sees its packets: they blackhole until the client goes
quiet for the UDP timeout. Docker deletes those entries when it maps a UDP port; so do we.

The kernel has no "delete by port", so this dumps the IPv4 entries of the namespace and deletes the
matching ones by their original tuple (and zone). pyroute2 is imported on the first call only, i.e. in a
module process whose plan flushes a UDP port, never on a no-op: the import costs about 0.2 s.

Differences from ours: pyroute2 decodes ports for TCP and UDP only (an SCTP entry has ports 0 here, so an
SCTP matcher would never match; the one caller matches UDP); every request is a turn of pyroute2's asyncio loop
and every attribute read is decoded into Python objects, which is where the time goes (benchmarks/README.md).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

IPPROTO = {"tcp": 6, "udp": 17, "sctp": 132}

PYROUTE2_MISSING = (
    "deleting stale conntrack entries needs pyroute2 on the managed host: on Debian/Ubuntu "
    "`apt install python3-pyroute2`, elsewhere `pip install pyroute2`"
)


@dataclass(frozen=True)
class Entry:
    """One conntrack entry, by its original-direction tuple."""

    protocol: int
    source: ipaddress.IPv4Address
    destination: ipaddress.IPv4Address
    source_port: int
    destination_port: int
    zone: int | None = None
    tuple_orig: Any = field(default=None, compare=False, repr=False)  # pyroute2's NFCTAttrTuple, sent back to delete


def delete_entries(matches: Callable[[Entry], bool]) -> int:
    """Delete every IPv4 entry of this namespace that `matches`; returns how many were deleted."""
    try:
        from pyroute2 import Conntrack
        from pyroute2.netlink.exceptions import NetlinkError
        from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple
    except ImportError as exc:
        raise RuntimeError(PYROUTE2_MISSING) from exc
    with Conntrack() as ct:
        entries = []
        # the whole dump before the first delete (a delete while the dump is still being read would interleave);
        # only the original tuple and the zone are decoded (ConntrackEntry would decode the reply tuple too)
        for msg in ct.dump():
            orig = NFCTAttrTuple.from_netlink(socket.AF_INET, msg.get_attr("CTA_TUPLE_ORIG"))
            entries.append(
                Entry(
                    protocol=orig.proto,
                    source=ipaddress.IPv4Address(orig.saddr),
                    destination=ipaddress.IPv4Address(orig.daddr),
                    source_port=orig.sport or 0,
                    destination_port=orig.dport or 0,
                    zone=msg.get_attr("CTA_ZONE"),
                    tuple_orig=orig,
                )
            )
        deleted = 0
        for entry in entries:
            if not matches(entry):
                continue
            try:
                if entry.zone:
                    ct.entry("del", tuple_orig=entry.tuple_orig, zone=entry.zone)
                else:
                    ct.entry("del", tuple_orig=entry.tuple_orig)
            except NetlinkError as exc:
                if exc.code == errno.ENOENT:  # expired meanwhile
                    continue
                raise
            deleted += 1
    return deleted
