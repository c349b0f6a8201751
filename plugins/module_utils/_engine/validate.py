# This file is private to the wharf.network collection: its API may change at any time.
"""Checks on module input, run on every item before anything on the host changes.

Each check returns an error string naming the item path, the field and the value, or None.
Modules collect every error of every item and fail once with all of them.
"""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.wharf.network.plugins.module_utils._kernel.limits import IFNAMSIZ, is_mac_text

_IFNAME_FORBIDDEN = re.compile(r"[\s/:]")
_NETNS_NAME = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,254}$")


def interface_name(path: str, value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return f"{path}: interface name must be a non-empty string, got {value!r}"
    if len(value) > IFNAMSIZ:
        return f"{path}: interface name '{value}' is {len(value)} characters, the kernel allows at most {IFNAMSIZ}"
    if value in (".", "..") or _IFNAME_FORBIDDEN.search(value):
        return f"{path}: interface name '{value}' may not contain spaces, '/' or ':'"
    return None


def namespace_name(path: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _NETNS_NAME.match(value) or value in (".", ".."):
        return f"{path}: namespace name {value!r} is not a valid file name (letters, digits, '_', '.', '-')"
    return None


def mac_address(path: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not is_mac_text(value):
        return f"{path}: MAC address {value!r} is not of the form 02:42:ac:11:00:02"
    if int(value[:2], 16) & 1:
        return f"{path}: MAC address {value!r} is a multicast address (lowest bit of the first byte set)"
    return None


def mtu(path: str, value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 68 <= value <= 65535:
        return f"{path}: mtu {value!r} must be an integer between 68 and 65535"
    return None


def interface_cidr(path: str, value: object) -> str | None:
    """An address with its prefix length, as `ip addr add` takes it (192.0.2.10/24)."""
    if not isinstance(value, str) or "/" not in value:
        return f"{path}: address {value!r} must be in CIDR form, e.g. 192.0.2.10/24"
    try:
        ipaddress.ip_interface(value)
    except ValueError as exc:
        return f"{path}: address {value!r} is not a valid CIDR address ({exc})"
    return None


def route_destination(path: str, value: object) -> str | None:
    if value == "default":
        return None
    if not isinstance(value, str):
        return f"{path}: route destination {value!r} must be 'default' or a network in CIDR form"
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        return f"{path}: route destination {value!r} is not a valid network ({exc})"
    return None


def ip_address(path: str, value: object) -> str | None:
    if value is None:
        return None
    try:
        ipaddress.ip_address(value)  # type: ignore[arg-type]
    except ValueError:
        return f"{path}: {value!r} is not a valid IP address"
    return None


def duplicates(path: str, field: str, values: list[tuple[object, ...]]) -> list[str]:
    """Errors for keys listed twice: two items would fight over one kernel object."""
    seen: set[tuple[object, ...]] = set()
    errors = []
    for index, key in enumerate(values):
        if key in seen:
            errors.append(f"{path}[{index}]: {field} {key[-1]!r} is listed twice")
        seen.add(key)
    return errors
