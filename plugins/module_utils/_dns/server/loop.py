# This file is private to the wharf.network collection: its API may change at any time.
"""The server: one selector loop over the listening sockets (two in each container's namespace), the upstream
answers and a wake-up socket pair; the current tables and their reload; the status file and the log.

Reload (SIGHUP, or a new state file under systemd's ExecReload) builds the new tables in a thread while the loop
keeps answering from the current ones, and the loop swaps them in with one assignment: no query is dropped. A
state file that does not load keeps the last good tables; the outcome goes to the status file (``loaded`` = sha256
of the state file loaded, ``error``, ``listen``: the containers listened for), which the module reads to confirm a
reload. A reload opens sockets in the namespaces of new containers and closes those of removed ones; the others keep
theirs (and their queries) untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import sys
import threading
import time
from typing import Any

from .answer import Answerer
from .forward import Forwarder
from .listen import PORT, Endpoint, Listener
from .tables import StateError, Tables, load_tables
from .tcp import TcpClients


class Server:
    """The resolver of one host namespace: ``run`` serves until ``stop`` (or SIGTERM)."""

    def __init__(self, state_path: str, status_path: str, log: Any = sys.stderr, port: int = PORT):
        self.state_path = state_path
        self.status_path = status_path
        self.log = log
        self.selector = selectors.DefaultSelector()
        self.listener = Listener(self.selector, port)
        self.forwarder = Forwarder(self.selector, self.say)
        self.answerer = Answerer(self.forwarder, self.say)
        self.tcp_clients = TcpClients(self.answerer.client_of, self.answerer.answer_tcp, self.say)
        self.reload_wanted = True
        self.building = False  # a reload's tables are being built in a thread
        self.built: tuple[Tables | None, str | None, float] | None = None  # what it built, for the loop to install
        self.running = True
        self.last_error: str | None = None
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        self.selector.register(self.wake_r, selectors.EVENT_READ, ("wake", None))

    # --- the log and the status file ---

    def say(self, message: str) -> None:
        self.log.write(f"wharf-dns[{os.getpid()}]: {message}\n")
        self.log.flush()

    def write_status(self) -> None:
        tables = self.answerer.tables
        status = {
            "pid": os.getpid(),
            "loaded": tables.digest if tables else None,
            "error": self.last_error,
            "listen": self.listener.names,
            "time": time.time(),
        }
        tmp = f"{self.status_path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump(status, handle)
            os.replace(tmp, self.status_path)
        except OSError as exc:
            self.say(f"cannot write status {self.status_path}: {exc}")

    # --- the state ---

    def reload(self) -> None:
        """Load the state file: built in a thread while the loop keeps answering from the current tables (a big
        topology takes seconds), installed by the loop once built. The first load, with nothing to answer from
        yet, is built in place."""
        self.reload_wanted = False
        if self.answerer.tables is None:
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
        self.answerer.tables = tables
        self.listen_on(tables)
        self.say(
            f"loaded {tables.digest[:12]} in {took * 1000:.0f} ms: "
            f"{len(tables.clients)} clients, {tables.answers_count} answers"
        )
        self.write_status()

    def listen_on(self, tables: Tables) -> None:
        wanted = {name: Endpoint(c.netns, c.address) for name, c in tables.clients.items()}
        error = self.listener.listen_on(wanted)
        if error:
            self.last_error = error
            self.say(error)

    def retry_listen(self) -> None:
        """Try the containers that failed again (the port may have been freed since, the namespace pinned): the
        status file says whether every container is listened for now."""
        tables = self.answerer.tables
        if tables is None:
            return
        self.last_error = None
        self.listen_on(tables)
        if self.last_error is None:
            self.say(f"listening for every container now ({len(self.listener.open)})")
        self.write_status()

    def check_pins(self) -> None:
        """A container's namespace gone or replaced: its sockets closed (or opened in the new namespace)."""
        if self.listener.check_pins():
            self.last_error = self.listener.error()
            if self.last_error:
                self.say(self.last_error)
            self.write_status()

    # --- the loop ---

    def run(self) -> None:
        """Serve until SIGTERM (or ``stop()``); SIGHUP reloads. Signals are only taken in the main thread."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGHUP, self._on_hup)
            signal.signal(signal.SIGTERM, self._on_term)
            signal.signal(signal.SIGINT, self._on_term)
        handlers: dict[str, Any] = {
            "udp": self.answerer.serve_udp,
            "up": self.forwarder.upstream_answer,
            "tcp": self.tcp_clients.accept,
        }
        while self.running:
            built = self.built
            if built is not None:
                self.built, self.building = None, False
                self.install(built)
            if self.reload_wanted and not self.building:
                self.reload()
            now = time.monotonic()
            retry_at, check_at = self.listener.retry_at, self.listener.check_at
            if retry_at is not None and now >= retry_at:
                self.retry_listen()
            elif check_at is not None and now >= check_at:
                self.check_pins()
            timeouts = [t for t in (self.forwarder.next_deadline(), self.listener.next_timer()) if t is not None]
            timeout = max(0.0, min(timeouts) - time.monotonic()) if timeouts else None
            for key, _mask in self.selector.select(timeout):
                kind, sock = key.data
                try:
                    handler = handlers.get(kind)
                    if handler is not None:
                        handler(sock)
                    else:
                        self._drain_wake()
                except Exception as exc:
                    self.say(f"error serving {kind}: {type(exc).__name__}: {exc}")
            if self.forwarder.pending:
                self.forwarder.expire()

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
