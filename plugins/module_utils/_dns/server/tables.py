# This file is private to the wharf.network collection: its API may change at any time.
"""The state file → the tables a reload builds: every answer of every view rendered to wire format once.

Per (lowercased question name, type), with and without EDNS, split into header and body around the question, so
that the hot path (``answer.py``) only joins bytes. Several addresses for one name are precomputed in every
rotation (up to MAX_ROTATIONS) and handed out in turn (round robin).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import itertools
import json
import random
from dataclasses import dataclass
from typing import Any

from .views import Client, View, askers

try:
    import dns.exception
    import dns.name
    import dns.rdatatype
except ImportError:  # the module checks for dnspython before it starts the daemon, program.main says how to get it
    dns = None

STATE_FORMAT = 2  # 2: the askers are containers (namespaces), no longer source addresses
OUR_PAYLOAD = 1232  # EDNS UDP payload we advertise (DNS flag day 2020)
PLAIN_UDP = 512
PRECOMPUTED_TYPES = ("A", "AAAA", "HTTPS")  # HTTPS: asked by recent curl and browsers next to A and AAAA
MAX_ROTATIONS = 16

HDR_PLAIN = b"\x00\x01\x00\x00\x00\x00\x00"  # QDCOUNT=1, ANCOUNT=0, NSCOUNT=0, ARCOUNT high byte 0
OPT = b"\x00\x00\x29" + OUR_PAYLOAD.to_bytes(2, "big") + b"\x00\x00\x00\x00\x00\x00"  # EDNS(0), no options


class StateError(ValueError):
    """The state file cannot be loaded; the message says why."""


@dataclass
class Tables:
    """Everything a reload builds; swapped in with one assignment."""

    clients: dict[str, Client]  # by container (namespace) name: where the resolver listens, and for whom
    hidden: frozenset[str]
    hidden_wire: frozenset[bytes]
    hidden_subnets: tuple[ipaddress.IPv4Network, ...]
    ttl: int
    digest: str
    answers_count: int = 0


def _entry(bodies: list[bytes], ancount: int, qlen: int, rcode: int) -> tuple[Any, ...]:
    """The table entry of one question, from the answer section's wire bytes (one per rotation).

    Layout (the hot path indexes it): 0/1 header without EDNS for RD=0/1, 2/3 header with EDNS, 4 a cycle of
    (body, body with OPT), 5/6 TC header with EDNS, 7 the OPT record alone. A header here is bytes 2..12 of the
    message (flags and counts): the hot path puts the query's id in front and its question behind.
    """
    flags3 = bytes((0x80 | rcode,))  # RA, rcode
    counts = b"\x00\x01" + ancount.to_bytes(2, "big") + b"\x00\x00\x00"
    pairs = [(body, body + OPT) for body in bodies]
    if 12 + qlen + len(bodies[0]) <= PLAIN_UDP:
        h0, h1 = b"\x80" + flags3 + counts + b"\x00", b"\x81" + flags3 + counts + b"\x00"
    else:  # too big for 512 bytes without EDNS: TC, question only (the client retries over TCP)
        h0, h1 = b"\x82" + flags3 + HDR_PLAIN + b"\x00", b"\x83" + flags3 + HDR_PLAIN + b"\x00"
        pairs = [(b"", pair[1]) for pair in pairs]
    return (
        h0,
        h1,
        b"\x80" + flags3 + counts + b"\x01",
        b"\x81" + flags3 + counts + b"\x01",
        itertools.cycle(pairs),
        b"\x82" + flags3 + HDR_PLAIN + b"\x01",
        b"\x83" + flags3 + HDR_PLAIN + b"\x01",
        OPT,
    )


def _a_records(addresses: list[str], ttl: int) -> bytes:
    """Answer records for the question's name (a compression pointer to offset 12), type A, class IN."""
    head = b"\xc0\x0c\x00\x01\x00\x01" + ttl.to_bytes(4, "big") + b"\x00\x04"
    return b"".join(head + ipaddress.IPv4Address(a).packed for a in addresses)


@functools.lru_cache(maxsize=1 << 16)
def _wire_name(text: str) -> bytes:
    """A name as the hot path sees it in a query: lowercased wire format without the final root label."""
    return dns.name.from_text(text.lower()).to_wire()[:-1]


def _build_view(spec: dict[str, Any], ttl: int, shared: dict[Any, Any]) -> View:
    """Precompute every answer of one view. ``shared`` holds entries that views can share (the same name with the
    same answer), so a topology with many views builds each distinct answer once. The view holds its own names
    only: the NXDOMAIN of a topology name outside it comes from the one ``hidden`` set of the tables (``miss``),
    so memory and reload time grow with the names of each view, not with views times all names."""
    names = {str(k).lower(): [str(a) for a in v] for k, v in spec["names"].items()}
    reverse = {str(k).lower(): str(v) for k, v in spec["reverse"].items()}
    view = View({}, names, reverse, frozenset(_wire_name(n) for n in [*names, *reverse]))
    empty_types = [dns.rdatatype.from_text(t).to_bytes(2, "big") for t in PRECOMPUTED_TYPES[1:]]

    def put(wire: bytes, rdtype: bytes, key: Any, bodies: list[bytes], ancount: int, rcode: int = 0) -> None:
        entry = shared.get(key)
        if entry is None:
            entry = shared[key] = _entry(bodies, ancount, len(wire) + 5, rcode)
        view.answers[wire + b"\x00" + rdtype + b"\x00\x01"] = entry

    for text, addresses in names.items():
        wire = _wire_name(text)
        order = sorted(addresses)
        random.shuffle(order)  # where the rotation starts differs between reloads, as Docker's shuffle does
        rotations = [order[i:] + order[:i] for i in range(min(len(order), MAX_ROTATIONS))]
        bodies = [_a_records(rotation, ttl) for rotation in rotations]
        put(wire, b"\x00\x01", (wire, "A", tuple(sorted(addresses))), bodies, len(order))
        for rdtype in empty_types:
            put(wire, rdtype, (wire, rdtype, "NODATA"), [b""], 0)
    for text, target in reverse.items():
        wire = _wire_name(text)
        target_wire = dns.name.from_text(target).to_wire()
        record = b"\xc0\x0c\x00\x0c\x00\x01" + ttl.to_bytes(4, "big") + len(target_wire).to_bytes(2, "big")
        put(wire, b"\x00\x0c", (wire, "PTR", target), [record + target_wire], 1)
    return view


def load_tables(raw: bytes) -> Tables:
    """Parse and precompute a state file's content. Raises StateError with the reason."""
    try:
        state = json.loads(raw)
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise StateError(f"not a wharf.network resolver state of format {STATE_FORMAT}")
        ttl = int(state.get("ttl", 600))
        hidden = frozenset(str(n).lower() for n in state.get("hidden", []))
        shared: dict[Any, Any] = {}
        views = {key: _build_view(spec, ttl, shared) for key, spec in state["views"].items()}
        return Tables(
            clients=askers(state, views),
            hidden=hidden,
            hidden_wire=frozenset(_wire_name(n) for n in hidden),
            hidden_subnets=tuple(ipaddress.ip_network(n) for n in state.get("hidden_subnets", [])),
            ttl=ttl,
            digest=hashlib.sha256(raw).hexdigest(),
            answers_count=len(shared),
        )
    except StateError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, dns.exception.DNSException) as exc:
        raise StateError(f"{type(exc).__name__}: {exc}") from None
