"""Real traffic for the firewall tests, from one process inside a sandbox host.

    python netpeer.py serve '[["a1", "tcp", 80, "a1"], [null, "udp", 53, "host"]]'
    python netpeer.py probe '[{"label": "x", "netns": "outside", "proto": "tcp", "host": "203.0.113.1", "port": 8080}]'

`serve` opens every server socket in its namespace (setns on this thread and back) and answers each
client with "TAG CLIENT_ADDRESS", so a probe learns who answered and which source address it saw.
`probe` runs every probe at once, each in a thread inside its namespace, and prints a JSON object
label -> answer (null when there was none before the timeout), so a matrix of blocked paths costs one
timeout, not one per path. Standard library only.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import socket
import sys
import threading

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def netns(name):
    if not name:
        yield
        return
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {name}")
        yield
    finally:
        _libc.setns(home, CLONE_NEWNET)
        os.close(home)
        os.close(target)


def _socket(proto):
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return sock


def serve(specs):
    servers = {}
    for name, proto, port, tag in specs:
        with netns(name):
            sock = _socket(proto)
            sock.bind(("0.0.0.0", port))
            if proto == "tcp":
                sock.listen(64)
        servers[sock] = (proto, tag)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        readable = select.select(list(servers), [], [])[0]
        for sock in readable:
            proto, tag = servers[sock]
            with contextlib.suppress(OSError):
                if proto == "tcp":
                    conn, peer = sock.accept()
                    conn.sendall(f"{tag} {peer[0]}".encode())
                    conn.close()
                else:
                    data, peer = sock.recvfrom(512)
                    if data:
                        sock.sendto(f"{tag} {peer[0]}".encode(), peer)


def probe(spec, results):
    answer = None
    try:
        with netns(spec.get("netns")):
            sock = _socket(spec["proto"])
        with sock:
            sock.settimeout(spec.get("timeout", 1.0))
            if spec.get("sport"):
                sock.bind(("0.0.0.0", spec["sport"]))
            sock.connect((spec["host"], spec["port"]))
            if spec["proto"] == "udp":
                sock.send(b"hello")
            answer = sock.recv(512).decode() or None
    except OSError:
        answer = None
    results[spec["label"]] = answer


def main():
    mode, specs = sys.argv[1], json.loads(sys.argv[2])
    if mode == "serve":
        serve(specs)
        return
    results = {}
    threads = [threading.Thread(target=probe, args=(spec, results)) for spec in specs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sys.stdout.write(json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
