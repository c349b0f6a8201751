# This file is private to the wharf.network collection: its API may change at any time.
"""What the firewall is asked to do: wharf networks and published ports, parsed from module items.

The rest of the package works on these types: ``merge.py`` combines them with the recorded ones,
``ports.py`` gives every publish its host port and finds clashes, ``render.py`` turns them into the table
text, ``record.py`` keeps them on disk between runs, and ``resource.py`` swaps the table into the kernel.
The row form of each (``record()`` and ``from_record``: what the record file holds and the modules
return) is defined here, next to the type, so one file says what a network or a publish looks like in
every form. Pure Python, no kernel, no Ansible.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from ansible_collections.wharf.network.plugins.module_utils._engine import validate as check
from ansible_collections.wharf.network.plugins.module_utils._engine.errors import ValidationError
from ansible_collections.wharf.network.plugins.module_utils._model.fields import Fields
from ansible_collections.wharf.network.plugins.module_utils._model.ports import ports_text, read_port
from ansible_collections.wharf.network.plugins.module_utils._model.types import PortMapping

LOOPBACK = IPv4Network("127.0.0.0/8")
ANY = "0.0.0.0"
# the protocols a publish may use, with their IP protocol numbers (the rendered map elements sort by them)
PROTOCOL_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132}


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
        """The row form: what the record file holds and the modules return."""
        return {
            "bridge": self.bridge,
            "subnet": str(self.subnet),
            "internal": self.internal,
            "icc": self.icc,
            "masquerade": self.masquerade,
            "gateway": str(self.gateway) if self.gateway else None,
        }

    @classmethod
    def from_record(cls, row: Mapping[str, Any]) -> FirewallNetwork:
        """The network ``record()`` gave (read back from the record file)."""
        return cls(
            bridge=row["bridge"],
            subnet=IPv4Network(row["subnet"]),
            internal=bool(row["internal"]),
            icc=bool(row["icc"]),
            masquerade=bool(row["masquerade"]),
            gateway=IPv4Address(row["gateway"]) if row.get("gateway") else None,
        )


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
        ports = ports_text(self.published) if self.published else "(free port)"
        return f"{self.host_ip or ANY}:{ports}/{self.protocol}"

    def target_text(self) -> str:
        return f"{self.address}:{ports_text(self.target)}"

    def describe(self) -> str:
        return f"{self.host_text()} -> {self.target_text()}"

    def named(self) -> str:
        return f"{self.label} {self.describe()}" if self.label else self.describe()

    def record(self) -> dict[str, Any]:
        """The row form: what the record file holds and the modules return."""
        return {
            "host_ip": str(self.host_ip) if self.host_ip else None,
            "published": ports_text(self.published) if self.published else None,
            "address": str(self.address),
            "target": ports_text(self.target),
            "protocol": self.protocol,
            "auto": self.auto,
        }

    @classmethod
    def from_record(cls, row: Mapping[str, Any]) -> Publish:
        """The publish ``record()`` gave (read back from the record file), with its host port resolved."""
        return cls(
            host_ip=_ip_address(row["host_ip"]) if row.get("host_ip") else None,  # type: ignore[arg-type]
            published=_range(row["published"]) if row.get("published") else None,
            address=_ip_address(row["address"]),  # type: ignore[arg-type]
            target=_range(row["target"]),
            protocol=row["protocol"],
            auto=bool(row.get("auto")),
        )

    def ports(self) -> Iterable[tuple[int, int]]:
        """Every (host port, container port) pair of the range."""
        if self.published is None:
            raise AssertionError("an unresolved publish has no host ports")
        offset = self.target[0] - self.published[0]
        for port in range(self.published[0], self.published[1] + 1):
            yield port, port + offset


def _range(text: str | int) -> tuple[int, int]:
    first, _sep, last = str(text).partition("-")
    return int(first), int(last or first)


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
        fields = Fields()
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
            mapping = read_port(fields, where, spec)
            errors.extend(fields.errors)
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
        if protocol not in PROTOCOL_NUMBERS or not all(
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
