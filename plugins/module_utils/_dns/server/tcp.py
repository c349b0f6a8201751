# This file is private to the wharf.network collection: its API may change at any time.
"""TCP clients: a thread per connection (the slow transport, used after a truncated answer), bounded in total and
shared fairly between containers, each request due as a whole within TCP_REQUEST_TIMEOUT (slowloris: one
container must not deny TCP to the others).

A connection belongs to the container whose namespace it arrived in (the listening socket's), whatever source
address it comes from: a container holds at most MAX_TCP_PER_CLIENT connections, however many addresses it gives
itself, and the last TCP_RESERVE slots go only to containers holding fewer than TCP_FAIR_FLOOR, so a few
containers together cannot take every slot either."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from .views import Client, from_loopback

MAX_TCP_CLIENTS = 64
MAX_TCP_PER_CLIENT = 8  # one container cannot take every TCP slot
TCP_RESERVE = 16  # the last slots, only for containers holding fewer than TCP_FAIR_FLOOR connections
TCP_FAIR_FLOOR = 2
TCP_REQUEST_TIMEOUT = 3.0  # for a whole request (length and message), and for the wait before the next one


class TcpClients:
    """The connections being served. ``client_of`` gives the container a listening socket is for (None: not
    served any more); ``answer`` gives the reply to one request, or None to close the connection."""

    def __init__(
        self,
        client_of: Callable[[str], Client | None],
        answer: Callable[[bytes, Client], bytes | None],
        say: Callable[[str], None],
    ):
        self.client_of = client_of
        self.answer = answer
        self.say = say
        self.lock = threading.Lock()
        self.in_use = 0
        self.by_client: dict[str, int] = {}

    def admits(self, name: str) -> bool:
        """Whether container ``name`` may open one more connection (its fair share); call with the lock held."""
        held = self.by_client.get(name, 0)
        if held >= MAX_TCP_PER_CLIENT or self.in_use >= MAX_TCP_CLIENTS:
            return False
        return self.in_use < MAX_TCP_CLIENTS - TCP_RESERVE or held < TCP_FAIR_FLOOR

    def accept(self, pair: tuple[socket.socket, str]) -> None:
        """Accept connections on one container's listening socket, each closed before it costs a slot or a
        thread when it does not come from the container's loopback, the container is not served any more, or it
        has had its share of the slots."""
        listener, name = pair
        for _turn in range(MAX_TCP_CLIENTS):
            try:
                conn, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            client = self.client_of(name)
            with self.lock:
                if client is None or not from_loopback(addr[0]) or not self.admits(name):
                    conn.close()
                    continue
                self.in_use += 1
                self.by_client[name] = self.by_client.get(name, 0) + 1
            try:
                threading.Thread(target=self.serve, args=(conn, addr, client), daemon=True).start()
            except RuntimeError:
                self._done(conn, name)

    def _done(self, conn: socket.socket, name: str) -> None:
        conn.close()
        with self.lock:
            left = self.by_client.get(name, 1) - 1
            if left:
                self.by_client[name] = left
            else:
                self.by_client.pop(name, None)
            self.in_use -= 1

    def serve(self, conn: socket.socket, addr: Any, client: Client) -> None:
        """Answer the queries of one connection. Each request (its 2-byte length and its message, and the wait for
        it) must arrive within TCP_REQUEST_TIMEOUT as a whole: trickling a byte now and then does not keep a
        slot."""
        try:
            conn.setblocking(True)
            while True:
                deadline = time.monotonic() + TCP_REQUEST_TIMEOUT
                size = recv_exact(conn, 2, deadline)
                if size is None:
                    return
                data = recv_exact(conn, int.from_bytes(size, "big"), deadline)
                if data is None:
                    return
                wire = self.answer(data, client)
                if wire is None:
                    return
                conn.settimeout(TCP_REQUEST_TIMEOUT)
                conn.sendall(len(wire).to_bytes(2, "big") + wire)
        except OSError:
            return
        except Exception as exc:
            self.say(f"tcp client {client.name}: {type(exc).__name__}: {exc}")
        finally:
            self._done(conn, client.name)


def recv_exact(conn: socket.socket, size: int, deadline: float | None = None) -> bytes | None:
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
