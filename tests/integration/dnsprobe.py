"""DNS traffic for the embedded DNS tests, from inside a namespace (run with `ip netns exec NAME python …`).

    python dnsprobe.py ask '[{"label": "x", "server": "10.81.0.1", "name": "web", "type": "A", "tcp": false}]'
    python dnsprobe.py upstream LOGFILE ADDRESS          a fake upstream server that logs every query it receives
    python dnsprobe.py load SERVER NAME SECONDS          queries in a loop; prints how many got no answer
    python dnsprobe.py raw SERVER HEX                    sends bytes as they are, prints the answer's hex or null

`ask` prints a JSON object label -> {rcode, answers (in order), tc, question, ms} (rcode "timeout" when
nothing came back, "error" with the reason when the connection failed). Options per query: "edns" (payload, or
null for none), "source" (the address to send from), "timeout" (seconds, default 6); "server": "resolv" asks the
first nameserver of /etc/resolv.conf (the container's own, under `ip netns exec`).
The upstream answers A 203.0.113.7 for any name under ext.test, 40 A records for big.ext.test (so UDP gets TC),
NXDOMAIN for the rest, over UDP and TCP, and appends "NAME TYPE" to LOGFILE for each query before answering.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset


def resolv_server() -> str:
    """The first nameserver of /etc/resolv.conf (under `ip netns exec NAME`, the container's own file)."""
    with open("/etc/resolv.conf", encoding="utf-8") as handle:
        for line in handle:
            words = line.split()
            if len(words) >= 2 and words[0] == "nameserver":
                return words[1]
    raise SystemExit("no nameserver in /etc/resolv.conf")


def ask(queries: list[dict]) -> dict:
    results = {}
    for spec in queries:
        server = resolv_server() if spec["server"] == "resolv" else spec["server"]
        timeout = spec.get("timeout", 6)
        source = spec.get("source")
        edns = spec.get("edns", None)
        query = dns.message.make_query(
            spec["name"], spec.get("type", "A"), use_edns=edns is not None, payload=edns or 1232
        )
        start = time.monotonic()
        try:
            if spec.get("tcp"):
                response = dns.query.tcp(query, server, timeout=timeout, source=source)
            else:
                response = dns.query.udp(query, server, timeout=timeout, source=source, ignore_unexpected=True)
        except dns.exception.Timeout:
            results[spec["label"]] = {"rcode": "timeout", "ms": (time.monotonic() - start) * 1000}
            continue
        except (OSError, EOFError, dns.exception.DNSException) as exc:
            results[spec["label"]] = {"rcode": "error", "error": f"{type(exc).__name__}: {exc}"}
            continue
        answers = [item.to_text() for rrset in response.answer for item in rrset]
        results[spec["label"]] = {
            "rcode": dns.rcode.to_text(response.rcode()),
            "answers": answers,
            "tc": bool(response.flags & dns.flags.TC),
            "question": response.question[0].name.to_text() if response.question else None,
            "ms": (time.monotonic() - start) * 1000,
        }
    return results


def _upstream_answer(wire: bytes, log, lock: threading.Lock, tcp: bool) -> bytes | None:
    try:
        query = dns.message.from_wire(wire)
    except Exception:
        return None
    question = query.question[0]
    name = question.name.to_text(omit_final_dot=True).lower()
    with lock:
        log.write(f"{name} {dns.rdatatype.to_text(question.rdtype)}\n")
        log.flush()
    response = dns.message.make_response(query)
    if name == "big.ext.test" and question.rdtype == dns.rdatatype.A:
        addresses = [f"203.0.113.{i}" for i in range(1, 41)]
        response.answer.append(dns.rrset.from_text_list(question.name, 60, "IN", "A", addresses))
    elif name.endswith(".ext.test") and question.rdtype == dns.rdatatype.A:
        response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", "203.0.113.7"))
    elif not name.endswith(".ext.test"):
        response.set_rcode(dns.rcode.NXDOMAIN)
    limit = 65535 if tcp else (query.payload if query.edns >= 0 else 512)
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        response.answer.clear()
        response.flags |= dns.flags.TC
        return response.to_wire()


def upstream(logfile: str, address: str) -> None:
    lock = threading.Lock()
    log = open(logfile, "a", encoding="utf-8")  # noqa: SIM115 - open for the server's life
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((address, 53))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((address, 53))
    tcp.listen(16)

    def serve_tcp() -> None:
        while True:
            conn, _addr = tcp.accept()
            with conn:
                size = conn.recv(2)
                data = b""
                while len(data) < int.from_bytes(size, "big"):
                    data += conn.recv(65535)
                answer = _upstream_answer(data, log, lock, True)
                if answer:
                    conn.sendall(len(answer).to_bytes(2, "big") + answer)

    threading.Thread(target=serve_tcp, daemon=True).start()
    print("ready", flush=True)
    while True:
        data, addr = udp.recvfrom(4096)
        answer = _upstream_answer(data, log, lock, False)
        if answer:
            udp.sendto(answer, addr)


def load(server: str, name: str, seconds: float) -> dict:
    query = dns.message.make_query(name, "A")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(1.0)
    sent = lost = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        query.id = (query.id + 1) & 0xFFFF
        sock.sendto(query.to_wire(), (server, 53))
        sent += 1
        try:
            while True:
                wire, _addr = sock.recvfrom(4096)
                if wire[:2] == query.id.to_bytes(2, "big"):
                    break
        except TimeoutError:
            lost += 1
    return {"sent": sent, "lost": lost}


def raw(server: str, payload: str) -> str | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(1.0)
    sock.sendto(bytes.fromhex(payload), (server, 53))
    try:
        return sock.recv(4096).hex()
    except TimeoutError:
        return None


def main() -> None:
    command = sys.argv[1]
    if command == "ask":
        print(json.dumps(ask(json.loads(sys.argv[2]))))
    elif command == "upstream":
        upstream(sys.argv[2], sys.argv[3])
    elif command == "load":
        print(json.dumps(load(sys.argv[2], sys.argv[3], float(sys.argv[4]))))
    elif command == "raw":
        print(json.dumps(raw(sys.argv[2], sys.argv[3])))


if __name__ == "__main__":
    main()
