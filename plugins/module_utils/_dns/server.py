# This file is private to the wharf.network collection: its API may change at any time.
"""wharf.network's embedded DNS resolver: the daemon, one per host namespace (also a program, see ``main``).

It answers on UDP and TCP port 53 of each network gateway listed in the state file that ``container_dns`` writes
(``_dns_state.resolver_state``), and chooses every answer by **who asks**: the source address gives the asker's
view (the names of the networks it is on). Names of the view are answered locally (A, PTR; NODATA for every other
type of a known name, never forwarded: moby#35118); topology names outside the view get NXDOMAIN; everything else
goes to the asker's upstream servers, unless the asker's address is on an ``internal`` network (REFUSED then,
nothing ever leaves: CVE-2024-29018).

Speed: at reload every answer of every view is rendered to wire format once (dnspython), per (lowercased
question name, type) with and without EDNS, split into header and body around the question. The per-query path is
a plain non-blocking socket loop (``selectors``): check the header bytes, look the question up, then send
``query id + precomputed header + the question as the client wrote it (its 0x20 case) + precomputed body``.
Several addresses for one name are precomputed in every rotation and handed out in turn (round robin). Everything
else (malformed or unusual queries, forwarding, TCP) takes the slow path, which uses dnspython.

Reload (SIGHUP, or a new state file under systemd's ExecReload) builds the new tables in a thread while the loop
keeps answering from the current ones, and the loop swaps them in with one assignment: no query is dropped. A
state file that does not load keeps the last good tables; the outcome goes to the status file (``loaded`` = sha256
of the state file loaded, ``error``), which the module reads to confirm a reload.

Standard library and dnspython only: the module copies this file to the host and runs it with its own Python.

    python server.py serve --state STATE.json --status STATUS.json
    python server.py supervise --state ... --status ... --pidfile PIDFILE --log LOG
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import heapq
import ipaddress
import itertools
import json
import os
import random
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

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
except ImportError:  # the module checks for dnspython before it starts the daemon and says how to get it
    dns = None

PORT = 53
OUR_PAYLOAD = 1232  # EDNS UDP payload we advertise (DNS flag day 2020)
PLAIN_UDP = 512
FORWARD_ATTEMPT_TIMEOUT = 1.5  # seconds per upstream server
FORWARD_BUDGET = 3.5  # seconds for all attempts: below glibc's 5 s timeout, so the client gets SERVFAIL, not silence
MAX_IN_FLIGHT = 512  # forwarded queries waiting for an upstream; beyond that SERVFAIL at once
MAX_TCP_CLIENTS = 64
MAX_TCP_PER_SOURCE = 8  # one container cannot take every TCP slot
TCP_REQUEST_TIMEOUT = 3.0  # for a whole request (length and message), and for the wait before the next one
RETRY_LISTEN = 5.0  # seconds between attempts to bind an address that failed
RECV_BUFFER = 4 << 20
PRECOMPUTED_TYPES = ("A", "AAAA", "HTTPS")  # HTTPS: asked by recent curl and browsers next to A and AAAA
MAX_ROTATIONS = 16
DRAIN = 256  # datagrams read per readiness event before the loop looks at other sockets
IP_FREEBIND = 15
CHILD_STOP_TIMEOUT = 3.0  # the supervisor's wait for its server after SIGTERM; the module waits longer
LOG_MAX = 1 << 20  # bytes: beyond that the log moves to LOG.1 (the one before is dropped)

_HDR_PLAIN = b"\x00\x01\x00\x00\x00\x00\x00"  # QDCOUNT=1, ANCOUNT=0, NSCOUNT=0, ARCOUNT high byte 0
_OPT = b"\x00\x00\x29" + OUR_PAYLOAD.to_bytes(2, "big") + b"\x00\x00\x00\x00\x00\x00"  # EDNS(0), no options


class StateError(ValueError):
    """The state file cannot be loaded; the message says why."""


@dataclass
class View:
    """One view: the precomputed answers and what the slow path needs to answer the rest."""

    answers: dict[bytes, tuple[Any, ...]]
    names: dict[str, list[str]]
    reverse: dict[str, str]
    known_wire: frozenset[bytes] = frozenset()  # every name of the view, lowercased wire format


@dataclass
class Client:
    """What one asker gets: its view, and where its other questions go (None: never forwarded)."""

    view: View
    upstreams: tuple[str, ...] | None


@dataclass
class Tables:
    """Everything a reload builds; swapped in with one assignment."""

    clients: dict[str, Client]
    subnets: list[tuple[ipaddress.IPv4Network, Client]]
    hidden: frozenset[str]
    hidden_wire: frozenset[bytes]
    hidden_subnets: tuple[ipaddress.IPv4Network, ...]
    listen: tuple[str, ...]
    ttl: int
    digest: str
    answers_count: int = 0


# --- precomputing answers ---------------------------------------------------------------------------------


def _entry(bodies: list[bytes], ancount: int, qlen: int, rcode: int) -> tuple[Any, ...]:
    """The table entry of one question, from the answer section's wire bytes (one per rotation).

    Layout (the hot path indexes it): 0/1 header without EDNS for RD=0/1, 2/3 header with EDNS, 4 a cycle of
    (body, body with OPT), 5/6 TC header with EDNS, 7 the OPT record alone. A header here is bytes 2..12 of the
    message (flags and counts): the hot path puts the query's id in front and its question behind.
    """
    flags3 = bytes((0x80 | rcode,))  # RA, rcode
    counts = b"\x00\x01" + ancount.to_bytes(2, "big") + b"\x00\x00\x00"
    pairs = [(body, body + _OPT) for body in bodies]
    if 12 + qlen + len(bodies[0]) <= PLAIN_UDP:
        h0, h1 = b"\x80" + flags3 + counts + b"\x00", b"\x81" + flags3 + counts + b"\x00"
    else:  # too big for 512 bytes without EDNS: TC, question only (the client retries over TCP)
        h0, h1 = b"\x82" + flags3 + _HDR_PLAIN + b"\x00", b"\x83" + flags3 + _HDR_PLAIN + b"\x00"
        pairs = [(b"", pair[1]) for pair in pairs]
    return (
        h0,
        h1,
        b"\x80" + flags3 + counts + b"\x01",
        b"\x81" + flags3 + counts + b"\x01",
        itertools.cycle(pairs),
        b"\x82" + flags3 + _HDR_PLAIN + b"\x01",
        b"\x83" + flags3 + _HDR_PLAIN + b"\x01",
        _OPT,
    )


def _a_records(addresses: list[str], ttl: int) -> bytes:
    """Answer records for the question's name (a compression pointer to offset 12), type A, class IN."""
    head = b"\xc0\x0c\x00\x01\x00\x01" + ttl.to_bytes(4, "big") + b"\x00\x04"
    return b"".join(head + ipaddress.IPv4Address(a).packed for a in addresses)


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
        if not isinstance(state, dict) or state.get("format") != 1:
            raise StateError("not a wharf.network resolver state of format 1")
        ttl = int(state.get("ttl", 600))
        hidden = frozenset(str(n).lower() for n in state.get("hidden", []))
        shared: dict[Any, Any] = {}
        views = {key: _build_view(spec, ttl, shared) for key, spec in state["views"].items()}

        def client(spec: dict[str, Any], upstreams: list[str]) -> Client:
            return Client(views[spec["view"]], tuple(upstreams) if spec.get("forward", True) else None)

        clients = {
            str(ipaddress.IPv4Address(addr)): client(spec, spec.get("upstreams", []))
            for addr, spec in state.get("clients", {}).items()
        }
        subnets = [
            (ipaddress.IPv4Network(net), client(spec, state.get("upstreams", [])))
            for net, spec in state.get("subnets", {}).items()
        ]
        return Tables(
            clients=clients,
            subnets=subnets,
            hidden=hidden,
            hidden_wire=frozenset(_wire_name(n) for n in hidden),
            hidden_subnets=tuple(ipaddress.ip_network(n) for n in state.get("hidden_subnets", [])),
            listen=tuple(str(ipaddress.IPv4Address(a)) for a in state.get("listen", [])),
            ttl=ttl,
            digest=hashlib.sha256(raw).hexdigest(),
            answers_count=len(shared),
        )
    except StateError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, dns.exception.DNSException) as exc:
        raise StateError(f"{type(exc).__name__}: {exc}") from None


# --- the server -------------------------------------------------------------------------------------------


@dataclass
class _Forward:
    """A query waiting for an upstream answer."""

    servfail: bytes  # the answer when every upstream fails
    data: bytes
    reply_sock: socket.socket
    client_addr: Any
    upstreams: tuple[str, ...]
    started: float
    attempt: int = 0
    sock: socket.socket | None = None
    wire_id: bytes = b""
    done: bool = False


class Server:
    """The resolver: listening sockets, the current tables, forwarded queries in flight."""

    def __init__(self, state_path: str, status_path: str, log: Any = sys.stderr, port: int = PORT):
        self.port = port  # to listen on; upstream servers are always asked on port 53
        self.state_path = state_path
        self.status_path = status_path
        self.log = log
        self.tables: Tables | None = None
        self.selector = selectors.DefaultSelector()
        self.udp: dict[str, socket.socket] = {}
        self.tcp: dict[str, socket.socket] = {}
        self.pending: list[tuple[float, int, _Forward, int]] = []  # heap: (deadline, seq, job, attempt)
        self.in_flight = 0
        self.seq = itertools.count()
        self.tcp_slots = threading.BoundedSemaphore(MAX_TCP_CLIENTS)
        self.tcp_lock = threading.Lock()
        self.tcp_by_source: dict[str, int] = {}
        self.reload_wanted = True
        self.building = False  # a reload's tables are being built in a thread
        self.built: tuple[Tables | None, str | None, float] | None = None  # what it built, for the loop to install
        self.running = True
        self.last_error: str | None = None
        self.listen_retry: float | None = None  # when to bind the addresses that failed again (monotonic)
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        self.selector.register(self.wake_r, selectors.EVENT_READ, ("wake", None))

    # --- state ---

    def say(self, message: str) -> None:
        print(f"wharf-dns[{os.getpid()}]: {message}", file=self.log, flush=True)

    def reload(self) -> None:
        """Load the state file: built in a thread while the loop keeps answering from the current tables (a big
        topology takes seconds), installed by the loop once built. The first load, with nothing to answer from
        yet, is built in place."""
        self.reload_wanted = False
        if self.tables is None:
            self.install(self.build())
            return
        self.building = True
        threading.Thread(target=self._build_aside, daemon=True).start()

    def build(self) -> tuple[Tables | None, str | None, float]:
        """(tables, None, seconds) or (None, why not, seconds)."""
        started = time.perf_counter()
        try:
            with open(self.state_path, "rb") as handle:
                raw = handle.read()
            tables = load_tables(raw)
        except (OSError, StateError) as exc:
            return None, f"state {self.state_path} not loaded, keeping the last good one: {exc}", 0.0
        return tables, None, time.perf_counter() - started

    def _build_aside(self) -> None:
        try:
            self.built = self.build()
        except Exception as exc:  # anything unforeseen still ends the reload, with its reason in the status
            self.built = (None, f"state {self.state_path} not loaded: {type(exc).__name__}: {exc}", 0.0)
        self._wake()

    def install(self, built: tuple[Tables | None, str | None, float]) -> None:
        """Swap in built tables (one assignment) and listen where they say; on failure keep the current ones and
        report the error."""
        tables, error, took = built
        if tables is None:
            self.last_error = error
            self.say(error or "state not loaded")
            self.write_status()
            return
        self.last_error = None
        self.tables = tables
        self.listen_on(tables.listen)
        self.say(
            f"loaded {tables.digest[:12]} in {took * 1000:.0f} ms: "
            f"{len(tables.clients)} clients, {tables.answers_count} answers"
        )
        self.write_status()

    def write_status(self) -> None:
        status = {
            "pid": os.getpid(),
            "loaded": self.tables.digest if self.tables else None,
            "error": self.last_error,
            "listen": sorted(self.udp),
            "time": time.time(),
        }
        tmp = f"{self.status_path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump(status, handle)
            os.replace(tmp, self.status_path)
        except OSError as exc:
            self.say(f"cannot write status {self.status_path}: {exc}")

    def listen_on(self, addresses: tuple[str, ...]) -> None:
        wanted = set(addresses)
        for address in sorted(set(self.udp) - wanted):
            for table in (self.udp, self.tcp):
                sock = table.pop(address, None)
                if sock is not None:
                    self.selector.unregister(sock)
                    sock.close()
        errors = []
        self.listen_retry = None
        for address in sorted(wanted - set(self.udp)):
            udp = tcp = None
            try:
                udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                udp.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
                udp.bind((address, self.port))
                udp.setblocking(False)
                tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
                tcp.bind((address, self.port))
                tcp.listen(128)
                tcp.setblocking(False)
            except OSError as exc:
                for sock in (udp, tcp):
                    if sock is not None:
                        sock.close()
                errors.append(f"cannot listen on {address}:{self.port}: {exc}")
                continue
            self.udp[address], self.tcp[address] = udp, tcp
            self.selector.register(udp, selectors.EVENT_READ, ("udp", udp))
            self.selector.register(tcp, selectors.EVENT_READ, ("tcp", tcp))
        if errors:
            self.last_error = "; ".join(errors)
            self.say(self.last_error)
            self.listen_retry = time.monotonic() + RETRY_LISTEN

    def retry_listen(self) -> None:
        """Try the addresses that failed to bind again (the port may have been freed since): the status file
        says whether every address listens now."""
        if self.tables is None:
            return
        self.last_error = None
        self.listen_on(self.tables.listen)
        if self.last_error is None:
            self.say(f"listening on every address now: {', '.join(sorted(self.udp))}")
        self.write_status()

    # --- main loop ---

    def run(self) -> None:
        """Serve until SIGTERM (or ``stop()``); SIGHUP reloads. Signals are only taken in the main thread."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGHUP, self._on_hup)
            signal.signal(signal.SIGTERM, self._on_term)
            signal.signal(signal.SIGINT, self._on_term)
        while self.running:
            built = self.built
            if built is not None:
                self.built, self.building = None, False
                self.install(built)
            if self.reload_wanted and not self.building:
                self.reload()
            if self.listen_retry is not None and time.monotonic() >= self.listen_retry:
                self.retry_listen()
            timeouts = [self.pending[0][0]] if self.pending else []
            if self.listen_retry is not None:
                timeouts.append(self.listen_retry)
            timeout = max(0.0, min(timeouts) - time.monotonic()) if timeouts else None
            for key, _mask in self.selector.select(timeout):
                kind, sock = key.data
                try:
                    if kind == "udp":
                        self.serve_udp(sock)
                    elif kind == "up":
                        self.upstream_answer(sock)
                    elif kind == "tcp":
                        self.accept_tcp(sock)
                    else:
                        self._drain_wake()
                except Exception as exc:
                    self.say(f"error serving {kind}: {type(exc).__name__}: {exc}")
            if self.pending:
                self.expire()

    def _on_hup(self, signum: int, frame: Any) -> None:
        self.request_reload()

    def _on_term(self, signum: int, frame: Any) -> None:
        self.stop()

    def request_reload(self) -> None:
        """Reload the state file at the next turn of the loop (what SIGHUP does)."""
        self.reload_wanted = True
        self._wake()

    def stop(self) -> None:
        self.running = False
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self.wake_w.send(b"x")

    def _drain_wake(self) -> None:
        try:
            while self.wake_r.recv(512):
                pass
        except OSError:
            pass

    def client_for(self, address: str) -> Client | None:
        tables = self.tables
        if tables is None:
            return None
        found = tables.clients.get(address)
        if found is not None:
            return found
        try:
            ip = ipaddress.IPv4Address(address)
        except ValueError:
            return None
        return next((c for net, c in tables.subnets if ip in net), None)

    def serve_udp(self, sock: socket.socket) -> None:
        """The hot path: read every waiting datagram and answer what the tables hold at once."""
        recv, send = sock.recvfrom, sock.sendto
        tables = self.tables
        clients = tables.clients if tables is not None else {}
        for _turn in range(DRAIN):
            try:
                data, addr = recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            try:
                client = clients.get(addr[0])
                if client is not None and data[4:11] == _HDR_PLAIN and data[2] < 2:
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
        self.forward(_raw_reply(data, qend, edns, dns.rcode.SERVFAIL), data, sock, addr, client.upstreams)
        return True

    # --- slow path ---

    def answer(self, data: bytes, client: Client | None, limit: int) -> tuple[bytes | None, Any]:
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
            return self.render(query, dns.rcode.NOTIMP, [], limit), None
        if len(query.question) != 1:
            return self.render(query, dns.rcode.FORMERR, [], limit), None
        if query.edns > 0:  # RFC 6891 6.1.3: we speak EDNS version 0 only (the answer carries version 0)
            return self.render(query, dns.rcode.BADVERS, [], limit), None
        if client is None:
            return self.render(query, dns.rcode.REFUSED, [], limit), None
        tables = self.tables
        question = query.question[0]
        text = question.name.to_text(omit_final_dot=True).lower()
        if question.rdclass == dns.rdataclass.IN:
            rrsets = _local_rrsets(client.view, text, question.rdtype, tables.ttl)
            if rrsets is not None:
                return self.render(query, dns.rcode.NOERROR, rrsets, limit), None
        if self.is_hidden(text):  # whatever the class: `c.back CH TXT` must not leave either
            return self.render(query, dns.rcode.NXDOMAIN, [], limit), None
        if question.rdclass != dns.rdataclass.IN:  # CHAOS, HESIOD...: nothing of ours, nothing to forward
            return self.render(query, dns.rcode.REFUSED, [], limit), None
        if client.upstreams is None:
            return self.render(query, dns.rcode.REFUSED, [], limit), None
        if not client.upstreams:
            return self.render(query, dns.rcode.SERVFAIL, [], limit), None
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

    def render(self, query: Any, rcode: int, rrsets: list[Any], limit: int) -> bytes:
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

    def slow_udp(self, sock: socket.socket, data: bytes, addr: Any, client: Client | None) -> None:
        if client is None:
            client = self.client_for(addr[0])
        wire, query = self.answer(data, client, PLAIN_UDP)
        if wire is not None:
            sock.sendto(wire, addr)
        elif query is not None:
            self.forward(self.render(query, dns.rcode.SERVFAIL, [], PLAIN_UDP), data, sock, addr, client.upstreams)

    # --- forwarding over UDP, non-blocking ---

    def forward(self, servfail: bytes, data: bytes, sock: socket.socket, addr: Any, upstreams: tuple[str, ...]) -> None:
        if self.in_flight >= MAX_IN_FLIGHT:
            sock.sendto(servfail, addr)
            return
        now = time.monotonic()
        job = _Forward(servfail, data, sock, addr, upstreams, started=now)
        self.in_flight += 1
        self.try_upstream(job, now)

    def try_upstream(self, job: _Forward, now: float) -> None:
        """Send the query to the next upstream server; when none is left (or none can be reached at all: no IPv6
        on this host, a malformed address), answer SERVFAIL. Whatever goes wrong, the job ends answered and
        counted out of ``in_flight``: a leak there would turn every later forward into SERVFAIL."""
        try:
            while job.attempt < len(job.upstreams) and now - job.started < FORWARD_BUDGET:
                server = job.upstreams[job.attempt]
                job.attempt += 1
                up = None
                try:
                    family, address = _upstream(server)
                    up = socket.socket(family, socket.SOCK_DGRAM)
                    up.setblocking(False)
                    up.connect(address)
                    job.wire_id = random.getrandbits(16).to_bytes(2, "big")
                    up.send(job.wire_id + job.data[2:])
                    deadline = min(now + FORWARD_ATTEMPT_TIMEOUT, job.started + FORWARD_BUDGET)
                    self.selector.register(up, selectors.EVENT_READ, ("up", (up, job)))
                except Exception as exc:
                    self.say(f"upstream {server}: {type(exc).__name__}: {exc}")
                    if up is not None:
                        up.close()
                    continue
                job.sock = up
                heapq.heappush(self.pending, (deadline, next(self.seq), job, job.attempt))
                return
        except Exception as exc:
            self.say(f"forwarding failed: {type(exc).__name__}: {exc}")
        self.finish(job, job.servfail)

    def finish(self, job: _Forward, wire: bytes) -> None:
        if job.done:
            return
        job.done = True
        self.in_flight -= 1
        try:
            job.reply_sock.sendto(wire, job.client_addr)
        except OSError as exc:
            self.say(f"cannot answer {job.client_addr[0]}: {exc}")

    def _close_upstream(self, job: _Forward) -> None:
        if job.sock is not None:
            self.selector.unregister(job.sock)
            job.sock.close()
            job.sock = None

    def upstream_answer(self, pair: tuple[socket.socket, _Forward]) -> None:
        up, job = pair
        if job.done or job.sock is not up:
            return  # an answer for an attempt already given up (its socket is closed)
        try:
            wire = up.recv(65535)
        except OSError:
            wire = b""  # e.g. ICMP port unreachable: try the next server at once
        if len(wire) >= 12 and wire[:2] == job.wire_id:
            self._close_upstream(job)
            self.finish(job, job.data[:2] + wire[2:])
        elif not wire:
            self._close_upstream(job)
            self.try_upstream(job, time.monotonic())

    def expire(self) -> None:
        now = time.monotonic()
        while self.pending:
            deadline, _seq, job, attempt = self.pending[0]
            stale = job.done or job.attempt != attempt
            if not stale and deadline > now:
                return
            heapq.heappop(self.pending)
            if not stale:
                self._close_upstream(job)
                self.try_upstream(job, now)

    # --- TCP: a thread per connection (the slow transport, used after TC) ---

    def accept_tcp(self, listener: socket.socket) -> None:
        """Accept a connection, refused before it costs a slot or a thread when the asker is not a client of ours,
        already holds MAX_TCP_PER_SOURCE connections, or every slot is taken (slowloris: one container must not
        deny TCP to the others)."""
        try:
            conn, addr = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        source = addr[0]
        client = self.client_for(source)
        with self.tcp_lock:
            if client is None or self.tcp_by_source.get(source, 0) >= MAX_TCP_PER_SOURCE:
                conn.close()
                return
            if not self.tcp_slots.acquire(blocking=False):
                conn.close()
                return
            self.tcp_by_source[source] = self.tcp_by_source.get(source, 0) + 1
        try:
            threading.Thread(target=self.serve_tcp, args=(conn, addr, client), daemon=True).start()
        except RuntimeError:
            self._tcp_done(conn, source)

    def _tcp_done(self, conn: socket.socket, source: str) -> None:
        conn.close()
        with self.tcp_lock:
            left = self.tcp_by_source.get(source, 1) - 1
            if left:
                self.tcp_by_source[source] = left
            else:
                self.tcp_by_source.pop(source, None)
            self.tcp_slots.release()

    def serve_tcp(self, conn: socket.socket, addr: Any, client: Client) -> None:
        """Answer the queries of one connection. Each request (its 2-byte length and its message, and the wait for
        it) must arrive within TCP_REQUEST_TIMEOUT as a whole: trickling a byte now and then does not keep a
        slot."""
        try:
            conn.setblocking(True)
            while True:
                deadline = time.monotonic() + TCP_REQUEST_TIMEOUT
                size = _recv_exact(conn, 2, deadline)
                if size is None:
                    return
                data = _recv_exact(conn, int.from_bytes(size, "big"), deadline)
                if data is None:
                    return
                wire, query = self.answer(data, client, 65535)
                if wire is None and query is not None:
                    wire = self.forward_blocking(query, data, client.upstreams)
                if wire is None:
                    return
                conn.settimeout(TCP_REQUEST_TIMEOUT)
                conn.sendall(len(wire).to_bytes(2, "big") + wire)
        except OSError:
            return
        except Exception as exc:
            self.say(f"tcp client {addr[0]}: {type(exc).__name__}: {exc}")
        finally:
            self._tcp_done(conn, addr[0])

    def forward_blocking(self, query: Any, data: bytes, upstreams: tuple[str, ...]) -> bytes:
        """Forward over TCP (the client came over TCP, usually after a truncated answer)."""
        started = time.monotonic()
        for server in upstreams:
            remaining = FORWARD_BUDGET - (time.monotonic() - started)
            if remaining <= 0:
                break
            try:
                family, address = _upstream(server)
                with socket.socket(family, socket.SOCK_STREAM) as up:
                    up.settimeout(min(FORWARD_ATTEMPT_TIMEOUT, remaining))
                    up.connect(address)
                    up.sendall(len(data).to_bytes(2, "big") + data)
                    size = _recv_exact(up, 2)
                    wire = _recv_exact(up, int.from_bytes(size, "big")) if size else None
                if wire and len(wire) >= 12:
                    return data[:2] + wire[2:]
            except OSError:
                continue
        return self.render(query, dns.rcode.SERVFAIL, [], 65535)


def _upstream(server: str) -> tuple[int, tuple[str, int]]:
    """An upstream server as the state names it: an address, or ``ADDRESS#PORT`` (dnsmasq's notation, for a
    server on another port than 53); a scoped IPv6 address keeps its ``%zone``."""
    host, _sep, port = server.partition("#")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return family, (host, int(port) if port else PORT)


def _recv_exact(conn: socket.socket, size: int, deadline: float | None = None) -> bytes | None:
    """``size`` bytes, or None when the peer closes first; with a deadline (monotonic) the bytes must all arrive
    before it (socket.timeout otherwise), however they are spread."""
    chunks = []
    while size:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("request not complete in time")
            conn.settimeout(remaining)
        chunk = conn.recv(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


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
    header = bytes((0x80 | (data[2] & 1), 0x80 | rcode)) + _HDR_PLAIN + (b"\x01" if edns else b"\x00")
    return data[:2] + header + data[12:qend] + (_OPT if edns else b"")


def _formerr(data: bytes) -> bytes:
    """FORMERR for a query whose header parses but whose body does not: the header alone, counts zero."""
    return data[:2] + bytes((0x80 | (data[2] & 0x79), 0x81)) + b"\x00" * 8


# --- running it ----------------------------------------------------------------------------------------------


def supervise(args: argparse.Namespace) -> int:
    """Run the server as a child and restart it when it dies; SIGHUP is passed on at once (reload), SIGTERM stops
    both. The pidfile holds the supervisor's pid."""
    stop = threading.Event()
    current: list[subprocess.Popen | None] = [None]

    def pass_hup(signum: int, frame: Any) -> None:
        child = current[0]
        if child is not None and child.returncode is None:
            os.kill(child.pid, signal.SIGHUP)

    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    signal.signal(signal.SIGHUP, pass_hup)
    argv = [sys.executable, os.path.abspath(__file__), "serve", "--state", args.state, "--status", args.status]
    backoff = 0.5
    tmp = f"{args.pidfile}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(f"{os.getpid()}\n")
    os.replace(tmp, args.pidfile)
    log = args.log if args.daemonize and args.log != os.devnull else None
    try:
        while not stop.is_set():
            child = current[0] = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
            started = time.monotonic()
            while not stop.is_set():
                try:
                    rc = child.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    if log:
                        _cap_log(log)
                    continue
                print(f"wharf-dns supervisor: server exited with {rc}, restarting", file=sys.stderr, flush=True)
                backoff = 0.5 if time.monotonic() - started > 10 else min(backoff * 2, 10.0)
                stop.wait(backoff)
                break
    finally:
        child = current[0]
        if child is not None and child.returncode is None:
            child.terminate()
            try:
                child.wait(timeout=CHILD_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                child.kill()
        with contextlib.suppress(OSError):
            with open(args.pidfile, encoding="utf-8") as handle:
                ours = handle.read().strip() == str(os.getpid())
            if ours:
                os.unlink(args.pidfile)
    return 0


def _cap_log(path: str, fd: int = 2) -> None:
    """Keep the daemon's log (stdout and stderr of the supervisor and its server, opened O_APPEND) under LOG_MAX:
    its content moves to PATH.1 and the file is emptied in place (the open descriptors keep writing to it).
    ``fd``: our descriptor of it (stderr once daemonized)."""
    try:
        if os.stat(path).st_size <= LOG_MAX or not os.path.samestat(os.stat(path), os.fstat(fd)):
            return
        with open(path, "rb") as current, open(f"{path}.1", "wb") as previous:
            previous.write(current.read(LOG_MAX * 2))
        os.ftruncate(fd, 0)
    except OSError:
        return


def _detach(args: argparse.Namespace) -> bool:
    """Fork into the background as a daemon does (new session, cwd /, stdin from /dev/null, output to the log).
    Returns True in the parent, once the supervisor has written its pidfile (or after 10 s), False in the child."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(args.pidfile)
    child = os.fork()
    if child:
        deadline = time.monotonic() + 10
        while not os.path.exists(args.pidfile) and time.monotonic() < deadline:
            if os.waitpid(child, os.WNOHANG) != (0, 0):
                break
            time.sleep(0.01)
        return True
    os.setsid()
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDONLY)
    log = os.open(args.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wharf-dns", description="wharf.network embedded DNS resolver")
    parser.add_argument("mode", choices=["serve", "supervise"])
    parser.add_argument("--state", required=True)
    parser.add_argument("--status", required=True)
    parser.add_argument("--pidfile")
    parser.add_argument("--daemonize", action="store_true", help="supervise: detach, return once running")
    parser.add_argument("--log", default=os.devnull, help="with --daemonize: where the output goes")
    args = parser.parse_args(argv)
    if dns is None:
        print("wharf-dns: dnspython is missing (Debian: apt install python3-dnspython)", file=sys.stderr)
        return 2
    if args.mode == "supervise":
        if not args.pidfile:
            parser.error("supervise needs --pidfile")
        if args.daemonize and _detach(args):
            return 0
        return supervise(args)
    Server(args.state, args.status).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
