# This file is private to the wharf.network collection: its API may change at any time.
"""The generic field readers of the topology parser, and how a value reads in an error message.

Every section of the topology (networks, containers, endpoints, ports) reads its fields through one
:class:`Fields`, which records each problem and carries on: the parser reports every error of a document at once,
and a value that failed its check comes back as None so that later checks skip it instead of guessing. The
wording here is shared by every message about a type or a shape, so that one mistake reads the same anywhere.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping

from ansible_collections.wharf.network.plugins.module_utils._model.names import IFNAMSIZ
from ansible_collections.wharf.network.plugins.module_utils._model.types import (
    IPV4,
    Family,
    IPAddress,
    IPNetwork,
    IPv4Address,
    IPv4Network,
)

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]*")  # network and container names
_IFNAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,15}")


def show(value: object, quoted: bool = False) -> str:
    """A value as it reads in an error: bare when it is a plain token, JSON otherwise (and always JSON for a
    string in a type error, so that ``"1500"`` reads as the string it is)."""
    if isinstance(value, str):
        return value if not quoted and re.fullmatch(r"[\w.:/@+\-\[\]]+", value) else json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    try:
        return json.dumps(value, default=str, sort_keys=False)
    except (TypeError, ValueError):
        return repr(value)


def type_name(value: object) -> str:
    """The kind of a YAML value in words (``a mapping``, ``an integer``...), for type errors."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def is_list(value: object) -> bool:
    """True for a YAML sequence (Ansible may hand over a tuple as well as a list)."""
    return isinstance(value, list | tuple)


class Fields:
    """The problems of one validation pass, and the readers that add to them.

    Each reader returns the value when it is valid, or None after recording one error naming ``path``.
    """

    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, message: str) -> None:
        """Record one problem (a sentence naming its path in the topology and the value)."""
        self.errors.append(message)

    def unknown_keys(self, path: str, spec: Mapping, allowed: Iterable[str]) -> None:
        allowed = tuple(allowed)
        for key in spec:
            if key not in allowed:
                hint = [a for a in allowed if a.startswith(str(key))] or difflib.get_close_matches(
                    str(key), allowed, n=1
                )
                suggestion = f" (did you mean {hint[0]}?)" if hint else f" (known keys: {', '.join(allowed)})"
                self.error(f"{path}.{key} is not a known key{suggestion}")

    def mapping(self, path: str, value: object, none_ok: bool = True) -> Mapping | None:
        if value is None and none_ok:
            return {}
        if not isinstance(value, Mapping):
            self.error(f"{path} {show(value, quoted=True)} must be a mapping, not {type_name(value)}")
            return None
        return value

    def string(self, path: str, value: object) -> str | None:
        if not isinstance(value, str):
            self.error(f"{path} {show(value, quoted=True)} must be a non-empty string, not {type_name(value)}")
            return None
        if not value:
            self.error(f"{path} must not be empty")
            return None
        return str(value)

    def boolean(self, path: str, value: object) -> bool | None:
        if not isinstance(value, bool):
            self.error(f"{path} {show(value, quoted=True)} must be true or false, not {type_name(value)}")
            return None
        return value

    def integer(self, path: str, value: object, low: int, high: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(f"{path} {show(value, quoted=True)} must be an integer, not {type_name(value)}")
            return None
        if not low <= value <= high:
            self.error(f"{path} {value} is out of range ({low}-{high})")
            return None
        return int(value)

    def choice(self, path: str, value: object, choices: Iterable[str]) -> str | None:
        choices = tuple(choices)
        if not isinstance(value, str) or value not in choices:
            self.error(f"{path} {show(value)} must be one of {', '.join(choices)}")
            return None
        return str(value)

    def string_list(self, path: str, value: object) -> list[str] | None:
        if value is None:
            return []
        if not is_list(value):
            self.error(f"{path} {show(value, quoted=True)} must be a list, not {type_name(value)}")
            return None
        result = []
        for index, item in enumerate(value):
            text = self.string(f"{path}[{index}]", item)
            if text is not None:
                result.append(text)
        return result

    def name(self, path: str, value: object, kind: str, max_length: int | None = None) -> bool:
        """True when ``value`` is a valid network or container name (``kind`` says which, for the message)."""
        if not isinstance(value, str) or not NAME_RE.fullmatch(value):
            self.error(
                f"{path} is not a valid {kind} name: {show(value)} must match [a-z0-9][a-z0-9_.-]* "
                "(lower-case letters, digits, '_', '.', '-')"
            )
            return False
        if max_length is not None and len(value) > max_length:
            self.error(f"{path} {kind} name {value} is {len(value)} characters, at most {max_length} are allowed")
            return False
        return True

    def interface_name(self, path: str, value: object) -> str | None:
        text = self.string(path, value)
        if text is None:
            return None
        if len(text) > IFNAMSIZ:
            self.error(f"{path} {show(text)} is {len(text)} characters, an interface name has at most {IFNAMSIZ}")
            return None
        if not _IFNAME_RE.fullmatch(text) or text in (".", ".."):
            self.error(f"{path} {show(text)} is not a valid interface name (letters, digits, '_', '.', '-')")
            return None
        return text

    def ipv4_address(self, path: str, value: object) -> IPv4Address | None:
        return self.family_address(path, value, IPV4)  # type: ignore[return-value]

    def family_address(self, path: str, value: object, family: Family) -> IPAddress | None:
        """An address of ``family`` (an address of another family is refused like any non-address)."""
        if not isinstance(value, str):
            self.error(
                f"{path} {show(value, quoted=True)} must be an {family.name} address string, not {type_name(value)}"
            )
            return None
        try:
            return family.address_type(value)
        except ValueError:
            self.error(f"{path} {show(value)} is not an {family.name} address")
            return None

    def ip_address(self, path: str, value: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        if not isinstance(value, str):
            self.error(f"{path} {show(value, quoted=True)} must be an IP address string, not {type_name(value)}")
            return None
        try:
            return ipaddress.ip_address(value)
        except ValueError:
            self.error(f"{path} {show(value)} is not an IP address")
            return None

    def ipv4_network(self, path: str, value: object) -> IPv4Network | None:
        return self.family_network(path, value, IPV4)  # type: ignore[return-value]

    def family_network(self, path: str, value: object, family: Family) -> IPNetwork | None:
        """A subnet of ``family`` in CIDR form, without host bits (the message suggests the subnet meant)."""
        if not isinstance(value, str):
            self.error(f"{path} {show(value, quoted=True)} must be a subnet in CIDR form, not {type_name(value)}")
            return None
        try:
            return family.network_type(value, strict=True)
        except ValueError:
            pass
        try:
            loose = family.network_type(value, strict=False)
        except ValueError:
            self.error(
                f"{path} {show(value)} is not an {family.name} subnet in CIDR form (e.g. {family.example_subnet})"
            )
        else:
            self.error(f"{path} {value} has host bits set (did you mean {loose}?)")
        return None
