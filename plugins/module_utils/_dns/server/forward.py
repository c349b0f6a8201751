# This file is private to the wharf.network collection: its API may change at any time.
"""Forwarding: the questions the topology does not answer go to the asker's upstream servers, one after the other.

Over UDP without blocking the loop: each forwarded query is a job with a socket of its own registered with the
loop's selector as ("up", (sock, job)), and a deadline in a heap. Jobs are bounded in total (MAX_IN_FLIGHT) and
shared fairly between containers: one container holds at most PER_CLIENT_IN_FLIGHT, and the last FAIR_RESERVE
slots of the pool go only to containers holding fewer than FAIR_FLOOR, so however many queries one container (or
a few) sends for names a slow upstream takes long to answer, every other container still has slots of its own.
Beyond its share a query gets SERVFAIL at once. Over TCP (the client came over TCP) in the client's own thread
(bounded per container by ``tcp.py``). Either way the asker gets SERVFAIL within FORWARD_BUDGET when no upstream
server answers, never silence. Local names never wait for any of this: they are answered from the tables.

Queries go upstream from the resolver's own namespace, the host's, as Docker does for an upstream on the host's
loopback (systemd-resolved's 127.0.0.53 is the common case): the host's servers work whatever they are, and a
container only on internal networks never forwards at all (``answer.py``), so nothing of it reaches outside.
"""

from __future__ import annotations

import heapq
import itertools
import random
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .listen import PORT
from .tcp import recv_exact
from .views import Client

FORWARD_ATTEMPT_TIMEOUT = 1.5  # seconds per upstream server
FORWARD_BUDGET = 3.5  # seconds for all attempts: below glibc's 5 s timeout, so the client gets SERVFAIL, not silence
MAX_IN_FLIGHT = 512  # forwarded queries waiting for an upstream; beyond that SERVFAIL at once
PER_CLIENT_IN_FLIGHT = 64  # of which one container may hold at most this many
FAIR_RESERVE = 128  # the last slots of the pool, only for containers holding fewer than FAIR_FLOOR
FAIR_FLOOR = 8


@dataclass
class _Forward:
    """A query waiting for an upstream answer."""

    servfail: bytes  # the answer when every upstream fails
    data: bytes
    reply_sock: socket.socket
    client_addr: Any
    upstreams: tuple[str, ...]
    owner: str  # the container that asked: its share of the pool
    started: float
    attempt: int = 0
    sock: socket.socket | None = None
    wire_id: bytes = b""
    done: bool = False


class Forwarder:
    """The forwarded queries in flight over UDP: ``pending`` is the heap of their deadlines."""

    def __init__(self, selector: selectors.BaseSelector, say: Callable[[str], None]):
        self.selector = selector
        self.say = say
        self.pending: list[tuple[float, int, _Forward, int]] = []  # heap: (deadline, seq, job, attempt)
        self.in_flight = 0
        self.by_owner: dict[str, int] = {}  # jobs in flight per container
        self.seq = itertools.count()

    def admits(self, owner: str) -> bool:
        """Whether the container ``owner`` may have one more query in flight (its fair share, see the module)."""
        held = self.by_owner.get(owner, 0)
        if held >= PER_CLIENT_IN_FLIGHT or self.in_flight >= MAX_IN_FLIGHT:
            return False
        return self.in_flight < MAX_IN_FLIGHT - FAIR_RESERVE or held < FAIR_FLOOR

    def forward(self, servfail: bytes, data: bytes, sock: socket.socket, addr: Any, client: Client) -> None:
        """Forward the query ``data`` that ``addr`` sent to ``sock`` (the socket of ``client``, a container);
        ``servfail`` is its answer if nothing else comes, or at once beyond the container's share."""
        owner = client.name
        if not self.admits(owner):
            sock.sendto(servfail, addr)
            return
        now = time.monotonic()
        job = _Forward(servfail, data, sock, addr, client.upstreams or (), owner, started=now)
        self.in_flight += 1
        self.by_owner[owner] = self.by_owner.get(owner, 0) + 1
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
        left = self.by_owner.get(job.owner, 1) - 1
        if left:
            self.by_owner[job.owner] = left
        else:
            self.by_owner.pop(job.owner, None)
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

    def next_deadline(self) -> float | None:
        """When the loop must wake up at the latest to give up an attempt (monotonic), None with nothing waiting."""
        return self.pending[0][0] if self.pending else None

    def expire(self) -> None:
        """Give up the attempts whose deadline has passed: their jobs go on to the next server."""
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

    def forward_tcp(self, data: bytes, upstreams: tuple[str, ...]) -> bytes | None:
        """Forward over TCP, blocking (the client came over TCP, usually after a truncated answer): the answer
        with the query's id, or None when no upstream server gave one."""
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
                    size = recv_exact(up, 2)
                    wire = recv_exact(up, int.from_bytes(size, "big")) if size else None
                if wire and len(wire) >= 12:
                    return data[:2] + wire[2:]
            except OSError:
                continue
        return None


def _upstream(server: str) -> tuple[int, tuple[str, int]]:
    """An upstream server as the state names it: an address, or ``ADDRESS#PORT`` (dnsmasq's notation, for a
    server on another port than 53); a scoped IPv6 address keeps its ``%zone``."""
    host, _sep, port = server.partition("#")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return family, (host, int(port) if port else PORT)
