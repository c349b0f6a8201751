# This file is private to the wharf.network collection: its API may change at any time.
"""Listening: a UDP and a TCP socket on port 53 of 127.0.0.11 inside each container's own network namespace.

Why inside (Docker's model): a socket stays in the namespace it was created in, so the socket a query arrives on
names the container that asked; no source address, forged or self-assigned, can choose another view. Nothing
listens on an address the host's networks reach, so a machine outside never gets an answer (nor does a container
that did not ask: no reflection), and an internal network needs nothing of the host.

The server thread enters the namespace (setns(2) through ctypes, as ``_kernel/namespace.py`` does: ``os.setns``
is Python 3.12 and later), opens its two sockets and comes back. A namespace that cannot be entered or bound
(a process inside holds the port, the pin is not a namespace) is reported and tried again RETRY_LISTEN later;
the others answer meanwhile. A container whose namespace does not exist (yet) is no error: nobody is there to
ask, and it is listened for as soon as its pin appears. Each pin is checked every PIN_CHECK: a container
removed (or replaced under the same name) has its sockets closed (or opened anew in the new namespace) without
waiting for a reload, because a socket holds its namespace, and a held namespace keeps its veths.
"""

from __future__ import annotations

import ctypes
import os
import selectors
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

PORT = 53  # where we listen (a test may choose another), and where upstream servers are asked unless told
RETRY_LISTEN = 5.0  # seconds between attempts to listen where it failed
PIN_CHECK = 2.0  # seconds between checks that each namespace's pin still names the namespace we listen in
RECV_BUFFER = 1 << 20
IP_FREEBIND = 15
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _identity(netns: str | None) -> tuple[int, int] | None:
    """What the pin names now (device and inode of the namespace), None when there is no pin."""
    if netns is None:
        return (0, 0)
    try:
        st = os.stat(netns)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def inside(netns: str | None, build: Callable[[], tuple[socket.socket, socket.socket]]):
    """Run ``build`` with this thread in the namespace ``netns`` (None: where it is) and come back."""
    if netns is None:
        return build()
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            return build()
        finally:
            try:
                _setns(home)
            except OSError as exc:  # never serve (or forward) from a container's namespace: the supervisor restarts us
                sys.stderr.write(f"wharf-dns: cannot return to the host namespace: {exc}\n")
                os._exit(70)
    finally:
        os.close(home)


def _sockets(address: str, port: int) -> tuple[socket.socket, socket.socket]:
    udp = tcp = None
    try:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)  # loopback may come up after us
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
        udp.bind((address, port))
        udp.setblocking(False)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart binds again at once (TIME_WAIT)
        tcp.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        tcp.bind((address, port))
        tcp.listen(64)
        tcp.setblocking(False)
    except OSError:
        for sock in (udp, tcp):
            if sock is not None:
                sock.close()
        raise
    return udp, tcp


@dataclass
class Endpoint:
    """Where one container is listened for, as the state says."""

    netns: str | None
    address: str


@dataclass
class _Open:
    endpoint: Endpoint
    identity: tuple[int, int]
    udp: socket.socket
    tcp: socket.socket


class Listener:
    """The listening sockets by container, registered with the loop's selector as ("udp", (sock, NAME)) and
    ("tcp", (sock, NAME))."""

    def __init__(self, selector: selectors.BaseSelector, port: int):
        self.selector = selector
        self.port = port
        self.open: dict[str, _Open] = {}
        self.wanted: dict[str, Endpoint] = {}
        self.failed: dict[str, str] = {}  # name -> why it does not listen
        self.missing: set[str] = set()  # names whose namespace does not exist (yet)
        self.retry_at: float | None = None  # when to try the failed ones again (monotonic)
        self.check_at: float | None = None  # when to check the pins (monotonic)

    @property
    def names(self) -> list[str]:
        return sorted(self.open)

    def _close(self, name: str) -> None:
        entry = self.open.pop(name, None)
        if entry is not None:
            for sock in (entry.udp, entry.tcp):
                self.selector.unregister(sock)
                sock.close()

    def close_all(self) -> None:
        for name in list(self.open):
            self._close(name)

    def listen_on(self, wanted: dict[str, Endpoint]) -> str | None:
        """Listen for exactly ``wanted``: close the others, open the new ones (and those whose namespace is not
        the one we listen in any more). Returns what could not be opened (tried again at ``retry_at``), or None
        when every container is listened for."""
        self.wanted = dict(wanted)
        for name in sorted(set(self.open)):
            entry = self.open[name]
            if wanted.get(name) != entry.endpoint or _identity(entry.endpoint.netns) != entry.identity:
                self._close(name)
        self.failed, self.missing = {}, set()
        for name in sorted(set(wanted) - set(self.open)):
            self._open(name, wanted[name])
        now = time.monotonic()
        self.retry_at = now + RETRY_LISTEN if self.failed else None
        self.check_at = now + PIN_CHECK if self.open or self.missing else None
        return self.error()

    def error(self) -> str | None:
        if not self.failed:
            return None
        return "; ".join(f"cannot listen for {name}: {why}" for name, why in sorted(self.failed.items()))

    def _open(self, name: str, endpoint: Endpoint) -> None:
        identity = _identity(endpoint.netns)
        if identity is None:
            self.missing.add(name)
            return
        try:
            udp, tcp = inside(endpoint.netns, lambda: _sockets(endpoint.address, self.port))
        except OSError as exc:
            where = f" in {endpoint.netns}" if endpoint.netns else ""
            self.failed[name] = f"{endpoint.address}:{self.port}{where}: {exc.strerror or exc}"
            return
        self.open[name] = _Open(endpoint, identity, udp, tcp)
        self.selector.register(udp, selectors.EVENT_READ, ("udp", (udp, name)))
        self.selector.register(tcp, selectors.EVENT_READ, ("tcp", (tcp, name)))

    def check_pins(self) -> bool:
        """Close what listens in a namespace that is gone or replaced and open it anew where it is, and open what
        waits for a namespace that exists now: True when something changed (the loop writes its status then)."""
        stale = [n for n, e in self.open.items() if _identity(e.endpoint.netns) != e.identity]
        born = [n for n in self.missing if _identity(self.wanted[n].netns) is not None]
        self.check_at = time.monotonic() + PIN_CHECK
        if not stale and not born:
            return False
        for name in stale:
            self._close(name)
        self.listen_on(self.wanted)
        return True

    def next_timer(self) -> float | None:
        timers = [t for t in (self.retry_at, self.check_at) if t is not None]
        return min(timers) if timers else None
