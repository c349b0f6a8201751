"""Attacks on the embedded resolver, run inside a namespace (`ip netns exec NAME python dnsattack.py …`).

    python dnsattack.py slowupstream ADDRESS DELAY LOG   an upstream answering names under slow.ext.test DELAY s late
    python dnsattack.py flood SERVER SECONDS RATE OUT    UDP queries for distinct slow names at RATE per second
    python dnsattack.py tcphold SERVER SECONDS PER SOURCES_JSON OUT   keep PER connections from each source open
    python dnsattack.py garp IFACE ADDRESS SECONDS OUT    gratuitous ARP: ADDRESS is at IFACE's MAC
    python dnsattack.py capture SECONDS OUT              count the DNS answers and ICMP errors this namespace receives

SERVER "resolv" is the first nameserver of the namespace's /etc/resolv.conf. Each long-running command writes
"ready" as the first line of OUT once its attack (or capture) is under way, and its JSON result as the last line.
"""

from __future__ import annotations

import heapq
import json
import os
import select
import socket
import struct
import sys
import time

import dns.message
import dns.rcode
import dns.rrset
from dnsprobe import resolv_server


def _server(name: str) -> str:
    return resolv_server() if name == "resolv" else name


def _report(out: str, line: str) -> None:
    with open(out, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def slowupstream(address: str, delay: float, logfile: str) -> None:
    """A UDP upstream server in one thread: names under slow.ext.test are answered ``delay`` seconds late (held
    in a heap, never blocking the others), every other name under ext.test at once with A 203.0.113.7; the number
    of slow and other queries goes to ``logfile`` every 0.5 s."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((address, 53))
    sock.setblocking(False)
    late: list[tuple[float, int, bytes, tuple]] = []
    counts = {"slow": 0, "other": 0}
    seq = 0
    written = time.monotonic()
    print("ready", flush=True)
    while True:
        timeout = max(0.0, late[0][0] - time.monotonic()) if late else 0.5
        readable, _w, _x = select.select([sock], [], [], min(timeout, 0.5))
        now = time.monotonic()
        while late and late[0][0] <= now:
            _due, _seq, wire, addr = heapq.heappop(late)
            sock.sendto(wire, addr)
        if readable:
            for _turn in range(256):
                try:
                    data, addr = sock.recvfrom(4096)
                except BlockingIOError:
                    break
                try:
                    query = dns.message.from_wire(data)
                except Exception:
                    continue
                name = query.question[0].name.to_text(omit_final_dot=True).lower()
                response = dns.message.make_response(query)
                if name.endswith(".ext.test"):
                    response.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A", "203.0.113.7"))
                else:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                if name.endswith(".slow.ext.test"):
                    counts["slow"] += 1
                    seq += 1
                    heapq.heappush(late, (now + delay, seq, response.to_wire(), addr))
                else:
                    counts["other"] += 1
                    sock.sendto(response.to_wire(), addr)
        if now - written > 0.5:
            written = now
            with open(logfile + ".tmp", "w", encoding="utf-8") as handle:
                json.dump(counts, handle)
            os.replace(logfile + ".tmp", logfile)


def flood(server: str, seconds: float, rate: float, out: str) -> None:
    """Distinct names under slow.ext.test, ``rate`` queries a second (paced in 10 ms batches), replies drained
    as they come; the result counts what was sent and how the replies went."""
    address = (_server(server), 53)
    template = bytearray(dns.message.make_query("q0000000.slow.ext.test", "A").to_wire())
    label = template.index(b"q0000000")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.setblocking(False)
    sent = answered = servfail = 0
    batch = max(1, int(rate / 100))
    _report(out, "ready")
    start = time.monotonic()
    tick = start
    while time.monotonic() - start < seconds:
        for _turn in range(batch):
            template[0:2] = (sent & 0xFFFF).to_bytes(2, "big")
            template[label + 1 : label + 8] = b"%07d" % (sent % 10_000_000)
            try:
                sock.sendto(template, address)
                sent += 1
            except BlockingIOError:
                break
        while True:
            try:
                reply = sock.recv(4096)
            except BlockingIOError:
                break
            if (reply[3] & 0x0F) == dns.rcode.SERVFAIL:
                servfail += 1
            else:
                answered += 1
        tick += 0.01
        time.sleep(max(0.0, tick - time.monotonic()))
    _report(out, json.dumps({"sent": sent, "answered": answered, "servfail": servfail}))


def tcphold(server: str, seconds: float, per_source: int, sources: list[str | None], out: str) -> None:
    """Keep ``per_source`` TCP connections to the resolver open from each source address (None: the default),
    opening a new one whenever the resolver closes one; the result is how many were opened and the most held at
    once."""
    address = (_server(server), 53)
    held: dict[tuple[int, int], socket.socket] = {}
    opened = most = 0
    start = time.monotonic()
    first_round = True
    while time.monotonic() - start < seconds:
        for s_index, source in enumerate(sources):
            for slot in range(per_source):
                conn = held.get((s_index, slot))
                if conn is not None:
                    readable, _w, _x = select.select([conn], [], [], 0)
                    if not readable:
                        continue
                    try:
                        alive = conn.recv(1, socket.MSG_PEEK) != b""
                    except OSError:
                        alive = False
                    if alive:
                        continue
                    conn.close()
                    del held[(s_index, slot)]
                conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                conn.settimeout(1.0)
                try:
                    if source:
                        conn.bind((source, 0))
                    conn.connect(address)
                except OSError:
                    conn.close()
                    continue
                held[(s_index, slot)] = conn
                opened += 1
        most = max(most, len(held))
        if first_round:
            first_round = False
            _report(out, "ready")
        time.sleep(0.05)
    for conn in held.values():
        conn.close()
    _report(out, json.dumps({"opened": opened, "most_held": most}))


def garp(interface: str, address: str, seconds: float, out: str) -> None:
    """Claim ``address`` for this interface's MAC with a gratuitous ARP reply every 0.1 s (what a container
    that takes a neighbour's address sends so that the host sends it the neighbour's traffic)."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
    sock.bind((interface, 0))
    mac = sock.getsockname()[4]
    ip = socket.inet_aton(address)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + mac + ip + b"\xff" * 6 + ip
    frame = b"\xff" * 6 + mac + b"\x08\x06" + arp
    _report(out, "ready")
    deadline = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < deadline:
        sock.send(frame)
        sent += 1
        time.sleep(0.1)
    _report(out, json.dumps({"sent": sent}))


def capture(seconds: float, out: str) -> None:
    """Every IPv4 packet this namespace receives, for ``seconds``: UDP from port 53 (DNS answers) and ICMP."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
    sock.settimeout(0.2)
    seen = {"dns": 0, "icmp": 0, "sources": []}
    _report(out, "ready")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            packet, addr = sock.recvfrom(65535)
        except TimeoutError:
            continue
        if addr[2] == socket.PACKET_OUTGOING or len(packet) < 28:
            continue
        header = (packet[0] & 0x0F) * 4
        source = socket.inet_ntoa(packet[12:16])
        if packet[9] == 17 and struct.unpack("!H", packet[header : header + 2])[0] == 53:
            seen["dns"] += 1
            seen["sources"] = sorted(set(seen["sources"]) | {source})
        elif packet[9] == 1:
            seen["icmp"] += 1
    _report(out, json.dumps(seen))


def main() -> None:
    command, args = sys.argv[1], sys.argv[2:]
    if command == "slowupstream":
        slowupstream(args[0], float(args[1]), args[2])
    elif command == "flood":
        flood(args[0], float(args[1]), float(args[2]), args[3])
    elif command == "tcphold":
        tcphold(args[0], float(args[1]), int(args[2]), json.loads(args[3]), args[4])
    elif command == "garp":
        garp(args[0], args[1], float(args[2]), args[3])
    elif command == "capture":
        capture(float(args[0]), args[1])
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
