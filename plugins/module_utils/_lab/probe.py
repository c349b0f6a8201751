# This file is private to the wharf.network collection: its API may change at any time.
"""Reachability measured with real packets: ICMP echo from inside one namespace to an address.

All probes run at once from one thread: a raw ICMP socket is opened inside each source namespace
(setns there and back), every echo request is sent, and replies are collected with select()
until each probe is answered or the deadline passes. A matrix of dozens of probes therefore
takes about one timeout in all, needs no `ping` binary and forks nothing.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from dataclasses import dataclass

from ansible_collections.wharf.network.plugins.module_utils._kernel import namespace as nl

ICMP_ECHO_REQUEST = 8
ICMP_ECHO_REPLY = 0


@dataclass
class Probe:
    source: str  # a named namespace
    destination: str  # an IPv4 address
    expected: bool | None = None
    label: str = ""
    reachable: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.expected is None or self.expected == self.reachable


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _echo_request(ident: int, seq: int) -> bytes:
    payload = b"wharf.network reachability"
    header = struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, 0, ident, seq)
    checksum = _checksum(header + payload)
    return struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, checksum, ident, seq) + payload


def run_probes(probes: list[Probe], timeout: float = 1.0, attempts: int = 2) -> list[Probe]:
    """Fill in `reachable` (and `error`) of every probe; returns the same list."""
    sockets: dict[str, socket.socket] = {}
    try:
        for probe in probes:
            if probe.source in sockets:
                continue
            if not nl.netns_exists(probe.source):
                continue
            with nl.entered(nl.netns_path(probe.source)):
                sockets[probe.source] = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        ident = os.getpid() & 0xFFFF
        pending: dict[tuple[str, str, int], Probe] = {}
        for seq, probe in enumerate(probes, start=1):
            sock = sockets.get(probe.source)
            if sock is None:
                probe.error = f"namespace '{probe.source}' does not exist"
                continue
            pending[(probe.source, probe.destination, seq)] = probe
        for attempt in range(attempts):
            waiting = {key: p for key, p in pending.items() if not p.reachable and p.error is None}
            if not waiting:
                break
            for (source, destination, seq), probe in waiting.items():
                try:
                    sockets[source].sendto(_echo_request(ident, seq + attempt * 0x4000), (destination, 0))
                except OSError as exc:  # e.g. ENETUNREACH: no route at all, which is an answer too
                    probe.error = os.strerror(exc.errno) if exc.errno else str(exc)
            deadline = time.monotonic() + timeout
            by_socket = {sock: name for name, sock in sockets.items()}
            while any(not p.reachable and p.error is None for p in waiting.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                ready, _writable, _failed = select.select(list(by_socket), [], [], left)
                for sock in ready:
                    packet, address = sock.recvfrom(2048)
                    sender = address[0]
                    header_length = (packet[0] & 0x0F) * 4
                    kind, _icmp_code, _icmp_sum, got_ident, got_seq = struct.unpack_from(
                        "!BBHHH", packet, header_length
                    )
                    if kind != ICMP_ECHO_REPLY or got_ident != ident:
                        continue
                    key = (by_socket[sock], sender, got_seq % 0x4000)
                    if key in waiting:
                        waiting[key].reachable = True
    finally:
        for sock in sockets.values():
            sock.close()
    for probe in probes:
        if probe.reachable:
            probe.error = None
    return probes
