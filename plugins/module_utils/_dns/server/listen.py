# This file is private to the wharf.network collection: its API may change at any time.
"""Listening: a UDP and a TCP socket on port 53 of each address the state names (the network gateways).

An address that cannot be bound (another program holds the port) is reported and tried again RETRY_LISTEN later;
the addresses that did bind answer meanwhile.
"""

from __future__ import annotations

import selectors
import socket
import time

PORT = 53  # where we listen (a test may choose another), and where upstream servers are asked unless told
RETRY_LISTEN = 5.0  # seconds between attempts to bind an address that failed
RECV_BUFFER = 4 << 20
IP_FREEBIND = 15


class Listener:
    """The listening sockets by address, registered with the loop's selector as ("udp", sock) and ("tcp", sock)."""

    def __init__(self, selector: selectors.BaseSelector, port: int):
        self.selector = selector
        self.port = port
        self.udp: dict[str, socket.socket] = {}
        self.tcp: dict[str, socket.socket] = {}
        self.retry_at: float | None = None  # when to bind the addresses that failed again (monotonic)

    def listen_on(self, addresses: tuple[str, ...]) -> str | None:
        """Listen on exactly ``addresses``: close the others, bind the new ones. Returns what could not be bound
        (tried again at ``retry_at``), or None when every address listens."""
        wanted = set(addresses)
        for address in sorted(set(self.udp) - wanted):
            for table in (self.udp, self.tcp):
                sock = table.pop(address, None)
                if sock is not None:
                    self.selector.unregister(sock)
                    sock.close()
        errors = []
        self.retry_at = None
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
            self.retry_at = time.monotonic() + RETRY_LISTEN
            return "; ".join(errors)
        return None
