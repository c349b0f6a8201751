# This file is private to the wharf.network collection: its API may change at any time.
"""Answering: every answer is chosen by who asks (``views.py``: the container whose namespace the query arrived
in) from the current tables (``tables.py``).

Names of the asker's view are answered locally (A, PTR; NODATA for every other type of a known name, never
forwarded: moby#35118); topology names outside the view get NXDOMAIN; everything else goes to the asker's
upstream servers (``forward.py``), unless every network of the asker is ``internal`` (REFUSED then, nothing ever
leaves: CVE-2024-29018, as Docker's forwarding policy per sandbox). A query that does not come from the
container's own loopback, or arrives for a container no longer served, is dropped without an answer.

The hot path is a plain loop over the datagrams waiting on a socket: check the header bytes, look the question
up, then send ``query id + precomputed header + the question as the client wrote it (its 0x20 case) +
precomputed body``. Everything else (malformed or unusual queries, forwarding, TCP) takes the slow path, which
uses dnspython.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any

from .forward import Forwarder
from .tables import HDR_PLAIN, OPT, OUR_PAYLOAD, PLAIN_UDP, Tables
from .views import Client, View

try:
    import dns.exception
    import dns.flags
    import dns.message
    import dns.name
    import dns.opcode
    import dns.rcode
    import dns.rdataclass
    import dns.rdatatype
    import dns.reversename
    import dns.rrset
except ImportError:  # the module checks for dnspython before it starts the daemon, program.main says how to get it
    dns = None

DNSPYTHON = dns is not None
DRAIN = 256  # datagrams read per readiness event before the loop looks at other sockets


class Answerer:
    """Answers queries from ``tables``, which the loop swaps in with one assignment (None until the first load);
    what only an upstream server can answer goes to ``forwarder``."""

    def __init__(self, forwarder: Forwarder, say: Callable[[str], None]):
        self.tables: Tables | None = None
        self.forwarder = forwarder
        self.say = say

    def client_of(self, name: str) -> Client | None:
        """The container ``name`` as the current tables know it (None: not served, or not yet)."""
        tables = self.tables
        return None if tables is None else tables.clients.get(name)

    def serve_udp(self, pair: tuple[socket.socket, str]) -> None:
        """The hot path: read every datagram waiting on one container's socket and answer what the tables hold
        at once."""
        sock, name = pair
        recv, send = sock.recvfrom, sock.sendto
        client = self.client_of(name)
        for _turn in range(DRAIN):
            try:
                data, addr = recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            if client is None or addr[0][:4] != "127.":  # views.from_loopback, inlined on the hot path
                continue  # not asked from inside a container we serve: no answer at all
            try:
                if data[4:11] == HDR_PLAIN and data[2] < 2:
                    end = data.find(b"\x00", 12)
                    qend = end + 5
                    wire_name = data[12:end].lower()
                    entry = client.view.answers.get(wire_name + data[end:qend]) if end > 12 else None
                    n = len(data)
                    if entry is None:
                        if end > 12 and self.miss(sock, data, addr, client, wire_name, end, qend, n):
                            continue
                    elif data[11] == 0 and n == qend:
                        send(data[:2] + entry[data[2]] + data[12:qend] + next(entry[4])[0], addr)
                        continue
                    elif _edns_ok(data, qend, n):
                        body = next(entry[4])[1]
                        payload = (data[qend + 3] << 8) | data[qend + 4]
                        if qend + len(body) <= max(payload, PLAIN_UDP):
                            send(data[:2] + entry[2 + data[2]] + data[12:qend] + body, addr)
                        else:
                            send(data[:2] + entry[5 + data[2]] + data[12:qend] + entry[7], addr)
                        continue
                self.slow_udp(sock, data, addr, client)
            except Exception as exc:
                self.say(f"dropped a query from {addr[0]}: {type(exc).__name__}: {exc}")

    def miss(
        self, sock: socket.socket, data: bytes, addr: Any, client: Client, wire_name: bytes, end: int, qend: int, n: int
    ) -> bool:
        """A well-formed question the tables do not hold: NXDOMAIN for a topology name outside the asker's view,
        forward an ordinary name, both without parsing the message. False: leave it to the slow path (other types
        of the view's names, reverse names, other classes, askers that do not forward)."""
        if data[11] == 0 and n == qend:
            edns = False
        elif _edns_ok(data, qend, n):
            edns = True
        else:
            return False
        if wire_name in client.view.known_wire:
            return False  # NODATA for a type the tables do not hold
        if wire_name in self.tables.hidden_wire:  # a topology name outside the asker's view: any type, any class
            sock.sendto(_raw_reply(data, qend, edns, dns.rcode.NXDOMAIN), addr)
            return True
        if not client.upstreams or data[qend - 2 : qend] != b"\x00\x01" or wire_name.endswith(b"\x04arpa"):
            return False
        self.forwarder.forward(_raw_reply(data, qend, edns, dns.rcode.SERVFAIL), data, sock, addr, client)
        return True

    # --- slow path ---

    def answer(self, data: bytes, client: Client, limit: int) -> tuple[bytes | None, Any]:
        """Answer a query the hot path did not: (wire, None) to send, (None, query) to forward, (None, None) to
        drop. ``limit`` is the transport's size (65535 over TCP)."""
        if len(data) < 12 or data[2] & 0x80:
            return None, None  # not even a header, or a response: nothing to answer
        try:
            query = dns.message.from_wire(data)
        except dns.message.ShortHeader:
            return None, None
        except dns.exception.DNSException:
            return _formerr(data), None
        if query.opcode() != dns.opcode.QUERY:
            return render(query, dns.rcode.NOTIMP, [], limit), None
        if len(query.question) != 1:
            return render(query, dns.rcode.FORMERR, [], limit), None
        if query.edns > 0:  # RFC 6891 6.1.3: we speak EDNS version 0 only (the answer carries version 0)
            return render(query, dns.rcode.BADVERS, [], limit), None
        tables = self.tables
        question = query.question[0]
        text = question.name.to_text(omit_final_dot=True).lower()
        if question.rdclass == dns.rdataclass.IN:
            rrsets = _local_rrsets(client.view, text, question.rdtype, tables.ttl)
            if rrsets is not None:
                return render(query, dns.rcode.NOERROR, rrsets, limit), None
        if self.is_hidden(text):  # whatever the class: `c.back CH TXT` must not leave either
            return render(query, dns.rcode.NXDOMAIN, [], limit), None
        if question.rdclass != dns.rdataclass.IN:  # CHAOS, HESIOD...: nothing of ours, nothing to forward
            return render(query, dns.rcode.REFUSED, [], limit), None
        if client.upstreams is None:
            return render(query, dns.rcode.REFUSED, [], limit), None
        if not client.upstreams:
            return render(query, dns.rcode.SERVFAIL, [], limit), None
        return None, query

    def is_hidden(self, text: str) -> bool:
        """Names that must never reach an upstream server: the topology's and its reverse names. Other single
        labels (``com``, a search-less short name) are forwarded as Docker does: a validating resolver in a
        container asks ``com DS``."""
        tables = self.tables
        if text in tables.hidden:
            return True
        if text.endswith(".in-addr.arpa"):
            try:
                address = ipaddress.ip_address(dns.reversename.to_address(dns.name.from_text(text)))
            except (dns.exception.DNSException, ValueError):
                return False
            return any(address in net for net in tables.hidden_subnets)
        return False

    def slow_udp(self, sock: socket.socket, data: bytes, addr: Any, client: Client) -> None:
        wire, query = self.answer(data, client, PLAIN_UDP)
        if wire is not None:
            sock.sendto(wire, addr)
        elif query is not None:
            servfail = render(query, dns.rcode.SERVFAIL, [], PLAIN_UDP)
            self.forwarder.forward(servfail, data, sock, addr, client)

    def answer_tcp(self, data: bytes, client: Client) -> bytes | None:
        """The reply to a request over TCP (forwarded over TCP if need be), or None to close the connection."""
        wire, query = self.answer(data, client, 65535)
        if wire is None and query is not None:
            wire = self.forwarder.forward_tcp(data, client.upstreams)
            if wire is None:
                wire = render(query, dns.rcode.SERVFAIL, [], 65535)
        return wire


def render(query: Any, rcode: int, rrsets: list[Any], limit: int) -> bytes:
    """A response to ``query`` that fits ``limit`` bytes (and the asker's EDNS payload): TC with no answers when
    the records do not fit."""
    response = dns.message.make_response(query, our_payload=OUR_PAYLOAD)
    response.flags |= dns.flags.RA
    response.flags &= ~dns.flags.AA
    response.set_rcode(rcode)
    response.answer.extend(rrsets)
    if query.edns >= 0:
        limit = min(limit, max(PLAIN_UDP, query.payload))
    elif limit < 65535:
        limit = PLAIN_UDP
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        response.answer.clear()
        response.flags |= dns.flags.TC
        return response.to_wire(max_size=limit)


def _local_rrsets(view: View, text: str, rdtype: int, ttl: int) -> list[dns.rrset.RRset] | None:
    """Answers of the view for a name (None when the view does not know the name); [] is NODATA."""
    addresses = view.names.get(text)
    if addresses is not None:
        if rdtype in (dns.rdatatype.A, dns.rdatatype.ANY):
            return [dns.rrset.from_text_list(text + ".", ttl, "IN", "A", addresses)]
        return []
    target = view.reverse.get(text)
    if target is not None:
        if rdtype in (dns.rdatatype.PTR, dns.rdatatype.ANY):
            return [dns.rrset.from_text(text + ".", ttl, "IN", "PTR", target + ".")]
        return []
    return None


def _edns_ok(data: bytes, qend: int, n: int) -> bool:
    """The query's additional section is exactly one EDNS(0) OPT record (the only form the fast path takes)."""
    return (
        data[11] == 1
        and n >= qend + 11
        and data[qend : qend + 3] == b"\x00\x00\x29"
        and data[qend + 6] == 0
        and n == qend + 11 + ((data[qend + 9] << 8) | data[qend + 10])
    )


def _raw_reply(data: bytes, qend: int, edns: bool, rcode: int) -> bytes:
    """A reply without records (NXDOMAIN, SERVFAIL) built from the query's own bytes."""
    header = bytes((0x80 | (data[2] & 1), 0x80 | rcode)) + HDR_PLAIN + (b"\x01" if edns else b"\x00")
    return data[:2] + header + data[12:qend] + (OPT if edns else b"")


def _formerr(data: bytes) -> bytes:
    """FORMERR for a query whose header parses but whose body does not: the header alone, counts zero."""
    return data[:2] + bytes((0x80 | (data[2] & 0x79), 0x81)) + b"\x00" * 8
