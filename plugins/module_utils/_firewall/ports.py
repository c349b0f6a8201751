# This file is private to the wharf.network collection: its API may change at any time.
"""Host ports: which publishes claim the same one, which ones a host process holds, and the free port a
publish gets when it names none.

Every check runs before anything changes and reports every problem at once, worded with the publish as
the user wrote it: Docker users rely on a second ``-p`` of one port failing, not on the later one winning.
A free port is derived from a hash of the request, not taken from a counter, so it is the same on every
run and every host unless that port is taken.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import replace

from ansible_collections.wharf.network.plugins.module_utils._engine.errors import ValidationError
from ansible_collections.wharf.network.plugins.module_utils._firewall.listeners import Listener
from ansible_collections.wharf.network.plugins.module_utils._firewall.model import Publish

DEFAULT_PORT_RANGE = (32768, 60999)  # net.ipv4.ip_local_port_range on Linux, Docker's range for free ports


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return not (a[1] < b[0] or b[1] < a[0])


def clash(a: Publish, b: Publish) -> bool:
    """Two publishes claim one host port: same protocol, overlapping ports, and the same address or
    either on every address (0.0.0.0 clashes with every address, as bind(2) does)."""
    if a.protocol != b.protocol or a.published is None or b.published is None:
        return False
    if not _overlap(a.published, b.published):
        return False
    return a.host_ip is None or b.host_ip is None or a.host_ip == b.host_ip


class PortClaims:
    """Host ports claimed so far, by protocol and port: finding a clash costs one lookup per port, so a
    thousand publishes are checked in milliseconds, not in a million comparisons."""

    def __init__(self, publishes: Iterable[Publish] = ()):
        self._claims: dict[tuple[str, int], list[Publish]] = {}
        for publish in publishes:
            self.add(publish)

    def add(self, publish: Publish) -> None:
        for port, _target in publish.ports():
            self._claims.setdefault((publish.protocol, port), []).append(publish)

    def clash(self, publish: Publish) -> Publish | None:
        """The first claimed publish that `publish` clashes with."""
        for port, _target in publish.ports():
            for other in self._claims.get((publish.protocol, port), ()):
                if clash(publish, other):
                    return other
        return None


def clash_errors(publishes: list[Publish]) -> list[str]:
    errors = []
    claims = PortClaims()
    for publish in publishes:
        earlier = claims.clash(publish)
        if earlier is not None:
            errors.append(
                f"{publish.named()} clashes with {earlier.named()}: the same host port and protocol"
                + (" (0.0.0.0 is every address)" if publish.host_ip is None or earlier.host_ip is None else "")
            )
        claims.add(publish)
    return errors


def listener_errors(
    publishes: list[Publish], listeners: list[Listener], owners: Mapping[int, str] | None = None
) -> list[str]:
    """Publishes whose host port a host process already holds. ``owners`` maps socket inodes to a
    process description, for the message."""
    errors = []
    for publish in publishes:
        for listener in listeners:
            if listener.covers(publish):
                owner = (owners or {}).get(listener.inode)
                by = f" ({owner})" if owner else ""
                errors.append(f"{publish.named()}: a host process already listens on {listener.describe()}{by}")
                break
    return errors


def free_port(
    publish: Publish,
    claimed: PortClaims,
    listeners: list[Listener],
    port_range: tuple[int, int] = DEFAULT_PORT_RANGE,
) -> tuple[int, int] | None:
    """The host port(s) for a publish that named none: a hash of what it publishes picks the first
    candidate in ``port_range``, then the next free one, so the same request gets the same port on every
    run and every host unless that port is taken. None when the range has no room."""
    span = publish.target[1] - publish.target[0]
    low, high = port_range
    slots = high - low + 1 - span
    if slots <= 0:
        return None
    seed = "|".join(str(part) for part in publish.target_key)
    start = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big") % slots
    for step in range(slots):
        first = low + (start + step) % slots
        candidate = replace(publish, published=(first, first + span), auto=True)
        if claimed.clash(candidate) is not None:
            continue
        if any(listener.covers(candidate) for listener in listeners):
            continue
        return candidate.published
    return None


def resolve_publishes(
    publishes: list[Publish],
    previous: list[Publish],
    listeners: list[Listener],
    port_range: tuple[int, int] = DEFAULT_PORT_RANGE,
    owners: Mapping[int, str] | None = None,
) -> list[Publish]:
    """Give every publish its host port and check them all, before anything changes.

    Errors (ValidationError, all at once): two publishes of one host port, and a publish of a port a host
    process listens on. A publish that is already applied (``previous``: same host address, port and
    protocol) is not checked against listeners again: the port has been ours since, and a process that
    bound it later must not stop the firewall from being restored. A publish that asked for a free port
    keeps the port it got before while nothing else claims it.
    """
    explicit = [p for p in publishes if p.published is not None]
    errors = clash_errors(explicit)
    applied = {p.host_key for p in previous}
    errors.extend(listener_errors([p for p in explicit if p.host_key not in applied], listeners, owners))
    earlier = {p.target_key: p.published for p in previous if p.auto}
    claimed = PortClaims(explicit)
    resolved: list[Publish] = []
    for publish in publishes:
        if publish.published is not None:
            resolved.append(publish)
            continue
        ports = earlier.get(publish.target_key)
        sticky = replace(publish, published=ports, auto=True) if ports else None
        if sticky is not None and claimed.clash(sticky) is None:
            chosen = sticky
        else:
            ports = free_port(publish, claimed, listeners, port_range)
            if ports is None:
                errors.append(f"{publish.named()}: no free host port left in {port_range[0]}-{port_range[1]}")
                continue
            chosen = replace(publish, published=ports, auto=True)
        claimed.add(chosen)
        resolved.append(chosen)
    if errors:
        raise ValidationError(errors)
    return resolved
