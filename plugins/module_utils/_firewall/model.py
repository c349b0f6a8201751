# This file is private to the wharf.network collection: its API may change at any time.
"""The collection's nftables firewall, as pure functions: desired state in, nftables text out.

Input is a list of networks (bridge, subnet, internal, icc, masquerade) and a list of publishes (host
address or every address, host port or range, protocol, container address and port or range). Out come
the checks Docker users rely on (two publishes of one host port, a port a host process listens on: errors
naming the publish, found before any change), the host ports of publishes that named none (derived from
a hash, so they stay the same across runs), and the text of the whole table ``inet wharf`` for ``nft -f``.
No kernel and no Ansible here, so every rule the collection writes is unit-tested; the resource that
observes the kernel and swaps the table in is ``_firewall/resource.py``.

Table layout (``render``), one ``table inet wharf`` (inet: one table for both families; nat in inet
tables works since Linux 5.2):

- set ``bridges``: every wharf bridge; maps ``from-network`` / ``to-network``: bridge → per-network chain.
- maps ``publish-any`` (protocol . port → address . port) and ``publish-addr`` (host address . protocol .
  port → address . port): one element per published port, so a thousand publishes are a thousand map
  elements under four constant rules, not a thousand rules (Docker's per-port rules are linear).
- chain ``guard`` (prerouting, priority raw): packets for 127.0.0.0/8 arriving on a wharf bridge (where
  route_localnet is on) and packets for a loopback publish arriving on any interface but ``lo`` are dropped
  before NAT can make them routable (moby#45610, CVE-2020-8558; Docker 28's raw-table guard); so is a packet
  arriving on a wharf bridge with a source outside that network's subnet (a forged source address: the
  resolver and the firewall decide by source address, whatever rp_filter says).
- chains ``prerouting`` (dstnat) and ``output`` (-100): DNAT through the maps, for local destinations only
  (``fib daddr type local``); prerouting never DNATs 127.0.0.0/8 (only the host's own traffic may use a
  loopback publish), output does, so ``127.0.0.1:PORT`` works from the host.
- chain ``postrouting`` (srcnat): host→container over a loopback publish (source 127.0.0.1 cannot leave
  on a bridge), hairpin (a container reaching a publish of its own network through the host's address:
  without SNAT the reply would skip the host), and egress masquerade of non-internal networks leaving
  through an interface that is not a wharf bridge.
- chain ``forward`` (filter): ``iifname vmap @from-network``, ``oifname vmap @to-network``. ``from-BRIDGE``
  decides everything a network sends: within the network accept (icc false: only published ports),
  published ports of other networks accept, other wharf bridges drop, the outside accept (internal: drop).
  ``to-BRIDGE`` decides what comes in from elsewhere: replies and DNATed (published) connections accept,
  anything else drop: no direct routing to container addresses (moby#48724). Internal networks: drop.

The user hook is a second table, ``inet wharf-user``, with a forward base chain at priority -10 (before
ours). The collection creates it when it is missing and never replaces, flushes or compares it, so user
rules survive every swap of ``inet wharf``. Netfilter semantics: a ``drop`` there is final; an ``accept``
only ends that chain and our table still decides, so a user rule can narrow what wharf allows (who may
reach a published port: match ``ct original proto-dst``) but cannot open isolation by accident. Why not a
chain inside our table jumped to first, as DOCKER-USER is: the table is replaced whole on every change, so
its rules would have to be read back and re-sent each time, and a rule nft cannot re-parse from its own
listing would break our transaction.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ansible_collections.wharf.network.plugins.module_utils._engine import validate as check
from ansible_collections.wharf.network.plugins.module_utils._engine.errors import ValidationError
from ansible_collections.wharf.network.plugins.module_utils._model.topology import PortMapping, _Parser

TABLE = "wharf"
USER_TABLE = "wharf-user"
FAMILY = "inet"
LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
ANY = "0.0.0.0"
DEFAULT_PORT_RANGE = (32768, 60999)  # net.ipv4.ip_local_port_range on Linux, Docker's range for free ports
USER_HOOK_PRIORITY = -10
VXLAN_PORT = 4789
_PROTOCOL_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132}

IPv4Address = ipaddress.IPv4Address
IPv4Network = ipaddress.IPv4Network


@dataclass(frozen=True)
class FirewallNetwork:
    """One wharf network as the firewall sees it: the bridge is its identity. ``gateway`` (optional) is where
    the embedded resolver answers the network: DNS from the network to it is never taken by a publish."""

    bridge: str
    subnet: IPv4Network
    internal: bool = False
    icc: bool = True
    masquerade: bool = True
    gateway: IPv4Address | None = None

    def record(self) -> dict[str, Any]:
        return {
            "bridge": self.bridge,
            "subnet": str(self.subnet),
            "internal": self.internal,
            "icc": self.icc,
            "masquerade": self.masquerade,
            "gateway": str(self.gateway) if self.gateway else None,
        }


@dataclass(frozen=True)
class Publish:
    """One published port or range. ``host_ip`` None is every local address; ``published`` None (only
    before ``resolve_publishes``) asks for a free port; ``auto`` tells that the port was derived.

    ``label`` names the publish in messages (``publishes[2]``, or where it came from) and takes no part
    in comparisons.
    """

    host_ip: IPv4Address | None
    published: tuple[int, int] | None
    address: IPv4Address
    target: tuple[int, int]
    protocol: str
    auto: bool = False
    label: str = field(default="", compare=False)

    @property
    def host_key(self) -> tuple[str, str, tuple[int, int] | None]:
        """What two publishes may not share: host address, protocol and port(s)."""
        return (str(self.host_ip or ANY), self.protocol, self.published)

    @property
    def target_key(self) -> tuple[str, str, str, tuple[int, int]]:
        """What identifies a publish that asked for a free port: the same request gets the same port."""
        return (str(self.host_ip or ANY), self.protocol, str(self.address), self.target)

    @property
    def key(self) -> tuple[Any, ...]:
        return ("auto", *self.target_key) if self.auto or self.published is None else ("port", *self.host_key)

    @property
    def loopback(self) -> bool:
        return self.host_ip is not None and self.host_ip in LOOPBACK

    def host_text(self) -> str:
        ports = _ports_text(self.published) if self.published else "(free port)"
        return f"{self.host_ip or ANY}:{ports}/{self.protocol}"

    def target_text(self) -> str:
        return f"{self.address}:{_ports_text(self.target)}"

    def describe(self) -> str:
        return f"{self.host_text()} -> {self.target_text()}"

    def named(self) -> str:
        return f"{self.label} {self.describe()}" if self.label else self.describe()

    def record(self) -> dict[str, Any]:
        return {
            "host_ip": str(self.host_ip) if self.host_ip else None,
            "published": _ports_text(self.published) if self.published else None,
            "address": str(self.address),
            "target": _ports_text(self.target),
            "protocol": self.protocol,
            "auto": self.auto,
        }

    def ports(self) -> Iterable[tuple[int, int]]:
        """Every (host port, container port) pair of the range."""
        if self.published is None:
            raise AssertionError("an unresolved publish has no host ports")
        offset = self.target[0] - self.published[0]
        for port in range(self.published[0], self.published[1] + 1):
            yield port, port + offset


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


def _ports_text(ports: tuple[int, int]) -> str:
    return str(ports[0]) if ports[0] == ports[1] else f"{ports[0]}-{ports[1]}"


# --- input -------------------------------------------------------------------------------------------


def parse_networks(items: list[Mapping[str, Any]], path: str = "networks") -> list[FirewallNetwork]:
    """Module items → networks; raises ValidationError with every problem at once."""
    errors: list[str] = []
    networks: list[FirewallNetwork] = []
    for index, item in enumerate(items):
        where = f"{path}[{index}]"
        bridge = item.get("bridge")
        problem = check.interface_name(f"{where}.bridge", bridge)
        if problem:
            errors.append(problem)
        try:
            subnet = ipaddress.ip_network(str(item.get("subnet")), strict=True)
        except ValueError as exc:
            errors.append(f"{where}.subnet {item.get('subnet')!r} is not a network address: {exc}")
            continue
        if not isinstance(subnet, IPv4Network):
            errors.append(f"{where}.subnet {subnet} is not IPv4; wharf networks are IPv4")
            continue
        if problem:
            continue
        internal = bool(item.get("internal", False))
        masquerade = item.get("masquerade")
        gateway = None
        if item.get("gateway") not in (None, ""):
            try:
                gateway = IPv4Address(str(item["gateway"]))
            except ValueError:
                errors.append(f"{where}.gateway {item['gateway']!r} is not an IPv4 address")
                continue
            if gateway not in subnet:
                errors.append(f"{where}.gateway {gateway} is not in {where}.subnet {subnet}")
                continue
        networks.append(
            FirewallNetwork(
                bridge=str(bridge),
                subnet=subnet,
                internal=internal,
                icc=bool(item.get("icc", True) if item.get("icc") is not None else True),
                masquerade=(masquerade is not False) and not internal,
                gateway=gateway,
            )
        )
    seen: dict[str, int] = {}
    for index, network in enumerate(networks):
        if network.bridge in seen:
            errors.append(f"{path}[{index}].bridge {network.bridge} is also {path}[{seen[network.bridge]}]")
        seen.setdefault(network.bridge, index)
    for index, network in enumerate(networks):
        for other in networks[index + 1 :]:
            if network.subnet.overlaps(other.subnet):
                errors.append(
                    f"{path}: subnet {other.subnet} of bridge {other.bridge} overlaps {network.subnet} "
                    f"of bridge {network.bridge}"
                )
    if errors:
        raise ValidationError(errors)
    return networks


def parse_publishes(items: list[Mapping[str, Any]], path: str = "publishes") -> list[Publish]:
    """Module items → publishes (``published`` None where a free port is wanted).

    An item is the container ``address`` plus either ``port`` in docker ``-p`` syntax
    (``[IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]``, ranges allowed) or the long form ``host_ip``,
    ``published``, ``target``, ``protocol``; both are parsed by the topology model, so they mean the same
    there and here.
    """
    errors: list[str] = []
    publishes: list[Publish] = []
    for index, item in enumerate(items):
        where = str(item.get("source") or f"{path}[{index}]")
        parser = _Parser()
        spec: object
        if item.get("port") not in (None, ""):
            long_form = [k for k in ("host_ip", "published", "target", "protocol") if item.get(k) not in (None, "")]
            if long_form:
                errors.append(f"{where}: give either port or {', '.join(long_form)}, not both")
                continue
            spec = item["port"]
        else:
            spec = {k: item[k] for k in ("host_ip", "published", "target", "protocol") if item.get(k) not in (None, "")}
        mapping = _simple_port(spec)
        if mapping is None:
            mapping = parser.port(where, spec)
            errors.extend(parser.errors)
        try:
            address = _ip_address(str(item.get("address")))
        except ValueError:
            errors.append(f"{where}.address {item.get('address')!r} is not an IP address")
            continue
        if not isinstance(address, IPv4Address):
            errors.append(f"{where}.address {address} is not IPv4; wharf containers have IPv4 addresses")
            continue
        if mapping is None:
            continue
        host_ip = mapping.host_ip
        if host_ip is not None and not isinstance(host_ip, IPv4Address):
            if host_ip.is_unspecified:
                host_ip = None  # "::" as "every address": the IPv4 side is what reaches an IPv4 container
            else:
                errors.append(f"{where} {mapping.spec!r}: host address {host_ip} is IPv6; publish on IPv4")
                continue
        if host_ip is not None and host_ip.is_unspecified:
            host_ip = None
        publishes.append(
            Publish(
                host_ip=host_ip,
                published=mapping.published,
                address=address,
                target=mapping.target,
                protocol=mapping.protocol,
                label=where,
            )
        )
    if errors:
        raise ValidationError(errors)
    return publishes


_SIMPLE_PORT_RE = re.compile(r"([1-9][0-9]{0,4}):([1-9][0-9]{0,4})(?:/(tcp|udp|sctp))?")
_PORT_NUMBER_RE = re.compile(r"[1-9][0-9]{0,4}")


def _simple_port(spec: object) -> PortMapping | None:
    """The common shapes ("8080:80/udp", or the long form with plain numbers and no host address) without
    the general parser: a thousand publishes are parsed on every run, no-op included. None: not one of
    those shapes (or out of range), so the general parser decides and words any error."""
    if isinstance(spec, str):
        match = _SIMPLE_PORT_RE.fullmatch(spec)
        if match is None:
            return None
        host, target, protocol = int(match.group(1)), int(match.group(2)), match.group(3) or "tcp"
        text = spec
    elif isinstance(spec, Mapping) and spec.keys() <= {"published", "target", "protocol"}:
        published, target_text, protocol = spec.get("published"), spec.get("target"), spec.get("protocol", "tcp")
        if protocol not in _PROTOCOL_NUMBERS or not all(
            isinstance(v, str | int) and not isinstance(v, bool) and _PORT_NUMBER_RE.fullmatch(str(v))
            for v in (published, target_text)
        ):
            return None
        host, target = int(published), int(target_text)  # type: ignore[arg-type]
        text = ", ".join(f"{k}={v}" for k, v in spec.items())
    else:
        return None
    if host > 65535 or target > 65535:
        return None
    return PortMapping(host_ip=None, published=(host, host), target=(target, target), protocol=protocol, spec=text)


@functools.lru_cache(maxsize=4096)
def _ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """ipaddress.ip_address, remembered: a thousand publishes name a few hundred container addresses."""
    return ipaddress.ip_address(text)


def network_of(networks: Iterable[FirewallNetwork], address: IPv4Address) -> FirewallNetwork | None:
    return next((n for n in networks if address in n.subnet), None)


def target_errors(networks: list[FirewallNetwork], publishes: list[Publish]) -> list[str]:
    """Publishes that can never work: the target sits on an internal network (no ingress at all)."""
    errors = []
    for publish in publishes:
        network = network_of(networks, publish.address)
        if network is not None and network.internal:
            errors.append(
                f"{publish.named()}: {publish.address} is on internal network {network.bridge} ({network.subnet}), "
                "which nothing outside it can reach"
            )
    return errors


# --- conflicts and free ports ------------------------------------------------------------------------


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


def merge_publishes(previous: list[Publish], listed: list[Publish], state: str, exclusive: bool) -> list[Publish]:
    """What the publishes become: ``exclusive`` replaces them all with ``listed``; ``present`` adds or
    replaces the listed ones (same host port, or for a free-port request the same target); ``absent``
    removes them. Kept publishes are labelled as applied earlier, for messages."""
    if state == "present" and exclusive:
        return list(listed)
    keys = {p.key for p in listed}
    host_keys = {p.host_key for p in listed if p.published is not None}

    def replaced(old: Publish) -> bool:
        if ("auto", *old.target_key) in keys:
            return True
        return not old.auto and old.host_key in host_keys

    kept = [replace(p, label="(published earlier)") for p in previous if not replaced(p)]
    return kept + list(listed) if state == "present" else kept


def merge_networks(
    previous: list[FirewallNetwork], listed: list[FirewallNetwork], state: str, exclusive: bool
) -> list[FirewallNetwork]:
    if state == "present" and exclusive:
        return list(listed)
    bridges = {n.bridge for n in listed}
    kept = [n for n in previous if n.bridge not in bridges]
    return kept + list(listed) if state == "present" else kept


# --- listeners ---------------------------------------------------------------------------------------

_TCP_LISTEN = "0A"
_UDP_UNCONNECTED = "07"  # TCP_CLOSE: bound and not connected, i.e. a server socket


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


# --- rendering ---------------------------------------------------------------------------------------


def chain_names(network: FirewallNetwork) -> tuple[str, str]:
    return f"from-{network.bridge}", f"to-{network.bridge}"


def _elements(lines: list[str]) -> list[str]:
    if not lines:
        return []
    body = ",\n".join(f"\t\t\t{line}" for line in lines)
    return ["\t\telements = {", body, "\t\t}"]


def _map(name: str, key_type: str, value_type: str | None, elements: list[str]) -> list[str]:
    kind = "map" if value_type else "set"
    type_line = f"\t\ttype {key_type} : {value_type}" if value_type else f"\t\ttype {key_type}"
    return [f"\t{kind} {name} {{", type_line, *_elements(elements), "\t}"]


def _chain(name: str, hook: str | None, rules: list[str]) -> list[str]:
    head = [f"\t\t{hook}"] if hook else []
    return [f"\tchain {name} {{", *head, *(f"\t\t{rule}" for rule in rules), "\t}"]


def _publish_elements(publishes: list[Publish]) -> tuple[list[str], list[str], list[str]]:
    any_rows: list[tuple[int, int, str]] = []
    addr_rows: list[tuple[int, int, int, str]] = []
    loop_rows: list[tuple[int, int, int, str]] = []
    for publish in publishes:
        number = _PROTOCOL_NUMBERS[publish.protocol]
        for port, target in publish.ports():
            value = f"{publish.address} . {target}"
            if publish.host_ip is None:
                any_rows.append((number, port, f"{publish.protocol} . {port} : {value}"))
                continue
            key = f"{publish.host_ip} . {publish.protocol} . {port}"
            addr_rows.append((int(publish.host_ip), number, port, f"{key} : {value}"))
            if publish.loopback:
                loop_rows.append((int(publish.host_ip), number, port, key))
    return (
        [row[-1] for row in sorted(any_rows)],
        [row[-1] for row in sorted(addr_rows)],
        [row[-1] for row in sorted(loop_rows)],
    )


def _network_chains(network: FirewallNetwork) -> list[str]:
    source, destination = chain_names(network)
    own = f'oifname "{network.bridge}"'
    # icc false: containers of the network reach each other only through a published port. Bridged traffic
    # reaches this hook only with br_netfilter (bridge-nf-call-iptables), as with Docker.
    within = [f"{own} accept"] if network.icc else [f"{own} ct status dnat accept", f"{own} drop"]
    if network.internal:
        sends = [*within, "drop"]
        receives = ["drop"]
    else:
        sends = [*within, "ct status dnat accept", "oifname @bridges drop", "accept"]
        receives = ["ct state established,related accept", "ct status dnat accept", "drop"]
    return [*_chain(source, None, sends), "", *_chain(destination, None, receives)]


def render(
    networks: list[FirewallNetwork],
    publishes: list[Publish],
    vxlan_peers: list[str] | None = None,
    vxlan_local: str | None = None,
) -> str:
    """The whole ``table inet wharf`` for ``nft -f``. Canonical: the same networks and publishes, in any
    order, give the same text (networks by bridge name, elements sorted), so its digest says whether the
    desired state changed.

    ``vxlan_peers`` with ``vxlan_local`` (a host on an overlay underlay, and its underlay address): set
    ``vxlan-peers`` and chain ``input`` (filter) that drops VXLAN (UDP 4789) addressed to the underlay address
    from any address that is not a peer, so nobody else can inject frames into an overlay network (the device
    itself would decapsulate any packet with a known VNI). Only that address: VXLAN to the host's other
    addresses (devices wharf does not own, bound elsewhere) is not wharf's to filter, and IPv6 is left alone
    (wharf's devices are IPv4 only, they never receive it). None: neither.
    """
    networks = sorted(networks, key=lambda n: n.bridge)
    any_elements, addr_elements, loopback_elements = _publish_elements(publishes)
    bridges = [f'"{n.bridge}"' for n in networks]
    from_elements = [f'"{n.bridge}" : jump {chain_names(n)[0]}' for n in networks]
    to_elements = [f'"{n.bridge}" : jump {chain_names(n)[1]}' for n in networks]

    guard = []
    if networks:
        guard.append("iifname @bridges ip daddr 127.0.0.0/8 drop")
    # a container sends only from its network's subnet: a forged source (a raw socket, IP_TRANSPARENT) could
    # otherwise pose as a container of another network, e.g. to have the resolver forward for an internal one
    guard += [f'iifname "{n.bridge}" ip saddr != {n.subnet} drop' for n in networks]
    guard.append('iifname != "lo" ip daddr . meta l4proto . th dport @loopback-publishes drop')
    lookup_any = "dnat ip to meta l4proto . th dport map @publish-any"
    lookup_addr = "dnat ip to ip daddr . meta l4proto . th dport map @publish-addr"
    resolvers = sorted(f'"{n.bridge}" . {n.gateway}' for n in networks if n.gateway is not None)
    # a container's DNS query to its gateway is the embedded resolver's, even when a container publishes port 53
    # on every address (a DNS server such as pi-hole): no DNAT for it
    prerouting = ["meta l4proto { tcp, udp } th dport 53 iifname . ip daddr @resolvers return"] if resolvers else []
    prerouting += [
        f"fib daddr type local ip daddr != 127.0.0.0/8 {lookup_any}",
        f"fib daddr type local ip daddr != 127.0.0.0/8 {lookup_addr}",
    ]
    output = [f"fib daddr type local {lookup_any}", f"fib daddr type local {lookup_addr}"]
    postrouting = []
    if networks:
        postrouting.append("oifname @bridges ip saddr 127.0.0.0/8 masquerade")
    for network in networks:
        if not network.internal:
            postrouting.append(f'oifname "{network.bridge}" ip saddr {network.subnet} ct status dnat masquerade')
    for network in networks:
        if network.masquerade and not network.internal:
            postrouting.append(f"ip saddr {network.subnet} oifname != @bridges masquerade")
    forward = ["iifname vmap @from-network", "oifname vmap @to-network"] if networks else []
    overlay: list[str] = []
    if vxlan_peers is not None and vxlan_local is not None:
        peers = [str(a) for a in sorted({IPv4Address(p) for p in vxlan_peers})]
        vxlan_input = [f"ip daddr {IPv4Address(vxlan_local)} udp dport {VXLAN_PORT} ip saddr != @vxlan-peers drop"]
        overlay = [
            "",
            *_map("vxlan-peers", "ipv4_addr", None, peers),
            "",
            *_chain("input", "type filter hook input priority filter; policy accept;", vxlan_input),
        ]

    lines = [
        f"table {FAMILY} {TABLE} {{",
        f'\tcomment "wharf.network: replaced whole on every change; put your rules in table {FAMILY} {USER_TABLE}"',
        *_map("bridges", "ifname", None, bridges),
        "",
        *_map("from-network", "ifname", "verdict", from_elements),
        "",
        *_map("to-network", "ifname", "verdict", to_elements),
        "",
        *_map("publish-any", "inet_proto . inet_service", "ipv4_addr . inet_service", any_elements),
        "",
        *_map("publish-addr", "ipv4_addr . inet_proto . inet_service", "ipv4_addr . inet_service", addr_elements),
        "",
        *_map("loopback-publishes", "ipv4_addr . inet_proto . inet_service", None, loopback_elements),
        "",
        *_map("resolvers", "ifname . ipv4_addr", None, resolvers),
        "",
        *_chain("guard", "type filter hook prerouting priority raw; policy accept;", guard),
        "",
        *_chain("prerouting", "type nat hook prerouting priority dstnat; policy accept;", prerouting),
        "",
        *_chain("output", "type nat hook output priority -100; policy accept;", output),
        "",
        *_chain("postrouting", "type nat hook postrouting priority srcnat; policy accept;", postrouting),
        "",
        *_chain("forward", "type filter hook forward priority filter; policy accept;", forward),
        *overlay,
    ]
    for network in networks:
        lines.extend(["", *_network_chains(network)])
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_user_table() -> str:
    """The user hook table, created once when missing and never touched again."""
    return "\n".join(
        [
            f"table {FAMILY} {USER_TABLE} {{",
            '\tcomment "your rules, evaluated before table inet wharf; wharf.network creates this table only"',
            "\tchain forward {",
            f"\t\ttype filter hook forward priority filter {USER_HOOK_PRIORITY}; policy accept;",
            "\t}",
            "}",
            "",
        ]
    )


def transaction(table: str | None, replace: bool = True, user_table: str | None = None) -> str:
    """One ``nft -f`` input, committed by the kernel whole or not at all.

    ``replace``: swap our table for ``table`` (None: remove it). ``table inet wharf`` first makes the
    ``delete`` valid when the table is missing (nft 1.0.6 has no ``destroy``), so a flushed ruleset is
    restored by the same text. ``user_table``: ``create`` the user table, or ``delete`` it.
    """
    parts = []
    if replace:
        parts.extend([f"table {FAMILY} {TABLE}", f"delete table {FAMILY} {TABLE}"])
        if table is not None:
            parts.append(table.rstrip("\n"))
    if user_table == "create":
        parts.append(render_user_table().rstrip("\n"))
    elif user_table == "delete":
        parts.append(f"delete table {FAMILY} {USER_TABLE}")
    return "\n".join(parts) + "\n"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def canonical_listing(listing_json: str) -> str:
    """``nft -j list table`` output made comparable across listings of one table: handles and the
    version banner dropped, set and map elements sorted (the kernel dumps hash sets in bucket order,
    which a resize may change); rule order, which matters, is kept."""
    document = json.loads(listing_json)
    objects = []
    for entry in document.get("nftables", []):
        if "metainfo" in entry:
            continue
        objects.append(_strip(entry))
    return json.dumps(objects, sort_keys=True, separators=(",", ":"))


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        cleaned = {k: _strip(v) for k, v in value.items() if k != "handle"}
        if isinstance(cleaned.get("elem"), list):
            cleaned["elem"] = sorted(cleaned["elem"], key=lambda e: json.dumps(e, sort_keys=True))
        return cleaned
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def listing_tables(text: str) -> set[tuple[str, str]]:
    """(family, name) of every table in ``nft list tables`` output."""
    tables = set()
    for line in text.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "table":
            tables.add((words[1], words[2]))
    return tables


def has_rules(listing_json: str) -> bool:
    return any("rule" in entry for entry in json.loads(listing_json).get("nftables", []))


# --- the record of what was applied ------------------------------------------------------------------


def publishes_from_record(rows: list[Mapping[str, Any]]) -> list[Publish]:
    publishes = []
    for row in rows:
        published = _range(row["published"]) if row.get("published") else None
        publishes.append(
            Publish(
                host_ip=_ip_address(row["host_ip"]) if row.get("host_ip") else None,  # type: ignore[arg-type]
                published=published,
                address=_ip_address(row["address"]),  # type: ignore[arg-type]
                target=_range(row["target"]),
                protocol=row["protocol"],
                auto=bool(row.get("auto")),
            )
        )
    return publishes


def networks_from_record(rows: list[Mapping[str, Any]]) -> list[FirewallNetwork]:
    return [
        FirewallNetwork(
            bridge=row["bridge"],
            subnet=IPv4Network(row["subnet"]),
            internal=bool(row["internal"]),
            icc=bool(row["icc"]),
            masquerade=bool(row["masquerade"]),
            gateway=IPv4Address(row["gateway"]) if row.get("gateway") else None,
        )
        for row in rows
    ]


def _range(text: str | int) -> tuple[int, int]:
    first, _sep, last = str(text).partition("-")
    return int(first), int(last or first)


def needs_route_localnet(networks: list[FirewallNetwork], publishes: list[Publish]) -> set[str]:
    """Bridges that carry host→container traffic sourced from 127.0.0.1 (a loopback publish, or a publish
    on every address reached as 127.0.0.1:PORT from the host): the kernel routes a loopback source out of
    a non-loopback interface only with route_localnet on it."""
    bridges = set()
    for publish in publishes:
        if publish.host_ip is None or publish.loopback:
            network = network_of(networks, publish.address)
            if network is not None:
                bridges.add(network.bridge)
    return bridges
