# This file is private to the wharf.network collection: its API may change at any time.
"""TCP clients: a thread per connection (the slow transport, used after a truncated answer), bounded in total and
per source address, each request due as a whole within TCP_REQUEST_TIMEOUT (slowloris: one container must not
deny TCP to the others)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from .views import Client

MAX_TCP_CLIENTS = 64
MAX_TCP_PER_SOURCE = 8  # one container cannot take every TCP slot
TCP_REQUEST_TIMEOUT = 3.0  # for a whole request (length and message), and for the wait before the next one


class TcpClients:
    """The connections being served. ``client_for`` says who asks (None: not a client of ours); ``answer`` gives
    the reply to one request, or None to close the connection."""

    def __init__(
        self,
        client_for: Callable[[str], Client | None],
        answer: Callable[[bytes, Client], bytes | None],
        say: Callable[[str], None],
    ):
        self.client_for = client_for
        self.answer = answer
        self.say = say
        self.slots = threading.BoundedSemaphore(MAX_TCP_CLIENTS)
        self.lock = threading.Lock()
        self.by_source: dict[str, int] = {}

    def accept(self, listener: socket.socket) -> None:
        """Accept a connection, refused before it costs a slot or a thread when the asker is not a client of ours,
        already holds MAX_TCP_PER_SOURCE connections, or every slot is taken."""
        try:
            conn, addr = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        source = addr[0]
        client = self.client_for(source)
        with self.lock:
            if client is None or self.by_source.get(source, 0) >= MAX_TCP_PER_SOURCE:
                conn.close()
                return
            if not self.slots.acquire(blocking=False):
                conn.close()
                return
            self.by_source[source] = self.by_source.get(source, 0) + 1
        try:
            threading.Thread(target=self.serve, args=(conn, addr, client), daemon=True).start()
        except RuntimeError:
            self._done(conn, source)

    def _done(self, conn: socket.socket, source: str) -> None:
        conn.close()
        with self.lock:
            left = self.by_source.get(source, 1) - 1
            if left:
                self.by_source[source] = left
            else:
                self.by_source.pop(source, None)
            self.slots.release()

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
            self.say(f"tcp client {addr[0]}: {type(exc).__name__}: {exc}")
        finally:
            self._done(conn, addr[0])


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
