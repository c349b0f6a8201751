# This file is private to the wharf.network collection: its API may change at any time.
"""Published ports: docker ``-p`` syntax and the compose long form, and the check that two never clash.

The firewall module reads its ``publishes`` items with the same :func:`read_port`, so a port spec means the
same in the topology and in a module's arguments.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

from ansible_collections.wharf.network.plugins.module_utils._model.fields import Fields, is_list, show, type_name
from ansible_collections.wharf.network.plugins.module_utils._model.types import Container, PortMapping

PROTOCOLS = ("tcp", "udp", "sctp")
PORT_KEYS = ("host_ip", "published", "target", "protocol")
_PORT_RANGE_RE = re.compile(r"([0-9]+)(?:-([0-9]+))?")
_BAD_SPEC = "is not a port spec [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]"


def ports_text(ports: tuple[int, int]) -> str:
    """A port range as `-p` writes it: ``80`` or ``9000-9002``."""
    return str(ports[0]) if ports[0] == ports[1] else f"{ports[0]}-{ports[1]}"


def read_port_range(fields: Fields, path: str, text: str, what: str) -> tuple[int, int] | None:
    """``80`` or ``9000-9002`` as an inclusive ``(first, last)``; ``what`` says which side, for the message."""
    match = _PORT_RANGE_RE.fullmatch(text)
    if not match:
        fields.error(f"{path} {what} {show(text)} is not a port or a range like 9000-9002")
        return None
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) else first
    if not (1 <= first <= 65535 and 1 <= last <= 65535):
        fields.error(f"{path} {what} {text} is out of range (1-65535)")
        return None
    if last < first:
        fields.error(f"{path} {what} {text} is a range that ends before it starts")
        return None
    return first, last


def read_port_value(fields: Fields, path: str, value: object, what: str) -> tuple[int, int] | None:
    """A port or range in the long form: an integer or a string such as "9000-9002"."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        fields.error(f"{path} {show(value, quoted=True)} must be a port or a range, not {type_name(value)}")
        return None
    return read_port_range(fields, path, str(value), what)


def read_ports(fields: Fields, path: str, value: object) -> list[PortMapping]:
    """A container's ``ports`` list; entries with errors are left out (and reported)."""
    if not is_list(value):
        fields.error(f"{path} {show(value, quoted=True)} must be a list, not {type_name(value)}")
        return []
    result = []
    for index, item in enumerate(value):
        mapping = read_port(fields, f"{path}[{index}]", item)
        if mapping is not None:
            result.append(mapping)
    return result


def read_port(fields: Fields, path: str, item: object) -> PortMapping | None:
    """One entry: ``[IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]`` (``[IPv6]:`` in brackets), or a long-form mapping."""
    before = len(fields.errors)
    host_ip_text: str | None = None
    published: tuple[int, int] | None = None
    target: tuple[int, int] | None = None
    protocol = "tcp"
    if isinstance(item, int) and not isinstance(item, bool):
        item = str(item)
    if isinstance(item, str):
        spec = item
        body, slash, proto = item.partition("/")
        if slash:
            protocol = proto.lower()
        if body.startswith("["):  # [IPv6]:hport:cport
            address, bracket, rest = body[1:].partition("]")
            if not bracket or not rest.startswith(":"):
                fields.error(f"{path} {show(item)} {_BAD_SPEC}")
                return None
            host_ip_text, parts = address, rest[1:].split(":")
            if len(parts) != 2:
                fields.error(f"{path} {show(item)} {_BAD_SPEC}")
                return None
            host_part, container_part = parts
        else:
            parts = body.split(":")
            if len(parts) == 1:
                host_part, container_part = "", parts[0]
            elif len(parts) == 2:
                host_part, container_part = parts
                if not host_part:
                    fields.error(f"{path} {show(item)} has an empty host port")
            elif len(parts) == 3:
                host_ip_text, host_part, container_part = parts
            else:
                fields.error(f"{path} {show(item)} {_BAD_SPEC}")
                return None
        if host_part:
            published = read_port_range(fields, path, host_part, "host port")
        target = read_port_range(fields, path, container_part, "container port")
    elif isinstance(item, Mapping):
        spec = ", ".join(f"{k}={v}" for k, v in item.items())
        fields.unknown_keys(path, item, PORT_KEYS)
        if "target" not in item:
            fields.error(f"{path}.target is required")
        else:
            target = read_port_value(fields, f"{path}.target", item["target"], "container port")
        if item.get("published") not in (None, ""):
            published = read_port_value(fields, f"{path}.published", item["published"], "host port")
        if item.get("host_ip") is not None:
            host_ip_text = item["host_ip"] if isinstance(item["host_ip"], str) else None
            if host_ip_text is None:
                fields.error(f"{path}.host_ip {show(item['host_ip'])} must be an IP address string")
        proto = item.get("protocol", "tcp")
        protocol = proto.lower() if isinstance(proto, str) else proto
    else:
        fields.error(f"{path} {show(item, quoted=True)} must be a port spec string or a mapping, not {type_name(item)}")
        return None

    if protocol not in PROTOCOLS:
        fields.error(f"{path} {show(spec)}: protocol {show(protocol)} must be one of {', '.join(PROTOCOLS)}")
    host_ip = None
    if host_ip_text:
        try:
            host_ip = ipaddress.ip_address(host_ip_text)
        except ValueError:
            fields.error(f"{path} {show(spec)}: host address {show(host_ip_text)} is not an IP address")
    if published and target and published[1] - published[0] != target[1] - target[0]:
        fields.error(f"{path} {show(spec)}: host ports and container ports must be ranges of the same length")
    if len(fields.errors) > before or target is None:
        return None
    return PortMapping(host_ip=host_ip, published=published, target=target, protocol=protocol, spec=spec)


def check_ports(fields: Fields, model: dict[str, Container]) -> None:
    """Publishing needs a network with ingress; two present containers that may share a host never publish the
    same host address, port and protocol (a wildcard address clashes with every address)."""
    claimed: list[tuple[Container, PortMapping]] = []
    for container in model.values():
        if container.state != "present":
            continue
        if container.ports and not any(e.default_route for e in container.endpoints):
            networks = ", ".join(e.network for e in container.endpoints) or "none"
            fields.error(
                f"containers.{container.name}.ports: publishing needs a network with ingress, and every network "
                f"of this container is internal ({networks})"
            )
        for index, mapping in enumerate(container.ports):
            if mapping.published is None:
                continue
            for other, taken in claimed:
                if not _same_host(container, other) or not _ports_clash(mapping, taken):
                    continue
                fields.error(
                    f"containers.{container.name}.ports[{index}] {show(mapping.spec)} publishes "
                    f"{_describe(mapping)}, already published by containers.{other.name} "
                    f"({show(taken.spec)})"
                )
                break
            claimed.append((container, mapping))


def _same_host(a: Container, b: Container) -> bool:
    return a.host is None or b.host is None or a.host == b.host


def _ports_clash(a: PortMapping, b: PortMapping) -> bool:
    if a.protocol != b.protocol or a.published is None or b.published is None:
        return False
    if a.published[1] < b.published[0] or b.published[1] < a.published[0]:
        return False
    wildcard = a.host_ip is None or b.host_ip is None or a.host_ip.is_unspecified or b.host_ip.is_unspecified
    return wildcard or a.host_ip == b.host_ip


def _describe(mapping: PortMapping) -> str:
    if mapping.published is None:
        raise AssertionError("an ephemeral port has no published range to describe")
    first, last = mapping.published
    ports = str(first) if first == last else f"{first}-{last}"
    return f"{mapping.host_ip or '0.0.0.0'}:{ports}/{mapping.protocol}"
