# This file is private to the wharf.network collection: its API may change at any time.
"""Ports that host processes hold, so a publish never takes a port a service already listens on.

Read from /proc/net (this network namespace's sockets, no tool to run), once per run and only when a
publish is new: the parsers are pure and unit-tested, ``read_listeners`` and ``socket_owners`` read /proc.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from dataclasses import dataclass

from ansible_collections.wharf.network.plugins.module_utils._firewall.model import Publish

_TCP_LISTEN = "0A"
_UDP_UNCONNECTED = "07"  # TCP_CLOSE: bound and not connected, i.e. a server socket


@dataclass(frozen=True)
class Listener:
    """A socket of a host process that holds a port: a TCP listener, or a bound, unconnected UDP/SCTP one."""

    protocol: str
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int
    inode: int = 0

    def covers(self, publish: Publish) -> bool:
        if self.protocol != publish.protocol or publish.published is None:
            return False
        if not publish.published[0] <= self.port <= publish.published[1]:
            return False
        address = self.address
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address.is_unspecified or publish.host_ip is None or publish.host_ip.is_unspecified:
            return True  # "::" is conservative: a dual-stack listener takes the IPv4 port too
        return address == publish.host_ip

    def describe(self) -> str:
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{host}:{self.port}/{self.protocol}"


def parse_proc_net(text: str, protocol: str, version: int) -> list[Listener]:
    """Sockets that hold a port, from /proc/net/{tcp,tcp6,udp,udp6} (addresses are in host byte order
    per 32-bit word, as the kernel prints them)."""
    wanted = _TCP_LISTEN if protocol == "tcp" else _UDP_UNCONNECTED
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != wanted:
            continue
        address_hex, _sep, port_hex = fields[1].partition(":")
        raw = b"".join(int(address_hex[i : i + 8], 16).to_bytes(4, "little") for i in range(0, len(address_hex), 8))
        address = ipaddress.IPv4Address(raw) if version == 4 else ipaddress.IPv6Address(raw)
        found.append(Listener(protocol, address, int(port_hex, 16), int(fields[9])))
    return found


def parse_sctp_eps(text: str) -> list[Listener]:
    """SCTP endpoints from /proc/net/sctp/eps: ``... LPORT UID INODE LADDRS...``."""
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 9:
            continue
        for address in fields[8:]:
            try:
                found.append(Listener("sctp", ipaddress.ip_address(address), int(fields[5]), int(fields[7])))
            except ValueError:
                continue
    return found


def read_listeners() -> list[Listener]:
    """Every socket of this network namespace that holds a port."""
    listeners: list[Listener] = []
    for name, protocol, version in (("tcp", "tcp", 4), ("tcp6", "tcp", 6), ("udp", "udp", 4), ("udp6", "udp", 6)):
        text = read_proc_file(f"/proc/net/{name}")
        if text:
            listeners.extend(parse_proc_net(text, protocol, version))
    sctp = read_proc_file("/proc/net/sctp/eps")
    if sctp:
        listeners.extend(parse_sctp_eps(sctp))
    return listeners


def socket_owners(inodes: set[int]) -> dict[int, str]:
    """'pid 123 sshd' for each socket inode, from /proc/*/fd (only when a conflict is reported)."""
    owners: dict[int, str] = {}
    wanted = {f"socket:[{inode}]": inode for inode in inodes if inode}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    inode = wanted.get(os.readlink(f"/proc/{pid}/fd/{fd}"))
                    if inode is not None and inode not in owners:
                        comm = (read_proc_file(f"/proc/{pid}/comm") or "?").strip()
                        owners[inode] = f"pid {pid} {comm}"
    return owners


def read_proc_file(path: str) -> str | None:
    """A small file of /proc as text, or None when it is gone (a process that ended, a sysctl of a deleted link)."""
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None
