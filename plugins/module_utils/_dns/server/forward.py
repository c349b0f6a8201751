# This file is private to the wharf.network collection: its API may change at any time.
"""Forwarding: the questions the topology does not answer go to the asker's upstream servers, one after the other.

Over UDP without blocking the loop: each forwarded query is a job with a socket of its own registered with the
loop's selector as ("up", (sock, job)), and a deadline in a heap; at most MAX_IN_FLIGHT jobs at a time (beyond
that SERVFAIL at once). Over TCP (the client came over TCP) in the client's own thread. Either way the asker gets
SERVFAIL within FORWARD_BUDGET when no upstream server answers, never silence.
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

FORWARD_ATTEMPT_TIMEOUT = 1.5  # seconds per upstream server
FORWARD_BUDGET = 3.5  # seconds for all attempts: below glibc's 5 s timeout, so the client gets SERVFAIL, not silence
MAX_IN_FLIGHT = 512  # forwarded queries waiting for an upstream; beyond that SERVFAIL at once


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


class Forwarder:
    """The forwarded queries in flight over UDP: ``pending`` is the heap of their deadlines."""

    def __init__(self, selector: selectors.BaseSelector, say: Callable[[str], None]):
        self.selector = selector
        self.say = say
        self.pending: list[tuple[float, int, _Forward, int]] = []  # heap: (deadline, seq, job, attempt)
        self.in_flight = 0
        self.seq = itertools.count()

    def forward(self, servfail: bytes, data: bytes, sock: socket.socket, addr: Any, upstreams: tuple[str, ...]) -> None:
        """Forward the query ``data`` that ``addr`` sent to ``sock``; ``servfail`` is its answer if nothing else
        comes."""
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
