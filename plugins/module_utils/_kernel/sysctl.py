# This file is private to the wharf.network collection: its API may change at any time.
"""Per-namespace sysctls (``net.*``): read and written from inside the namespace they belong to.

A sysctl file under /proc/sys/net resolves in the namespace of the thread that opens it, so a named namespace is
entered for the reads or writes (once for all of them) and the module's own namespace (None) is used as it is.
Keys are dotted (``net.ipv4.ip_forward``) or, where a part holds a dot of its own (an interface name), slashed
(``net/ipv6/conf/eth0.5/accept_ra``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping
from typing import Any

from ansible_collections.wharf.network.plugins.module_utils._kernel import namespace as nl


def path(key: str) -> str:
    return "/proc/sys/" + (key if "/" in key else key.replace(".", "/"))


def normalise(value: object) -> str:
    """A sysctl value as the kernel prints it: booleans as 1/0, whitespace runs as one space."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return " ".join(str(value).split())


def inside(namespace: str | None) -> contextlib.AbstractContextManager[Any]:
    """Enter a named namespace for sysctl files; stay in the module's own for None."""
    return nl.entered(nl.netns_path(namespace)) if namespace else contextlib.nullcontext()


def read_here(keys: Collection[str]) -> dict[str, str | None]:
    """The values of ``keys`` in the namespace this thread is in; None for a key that does not exist there."""
    values: dict[str, str | None] = {}
    for key in keys:
        try:
            with open(path(key), encoding="ascii") as handle:
                values[key] = normalise(handle.read())
        except (OSError, UnicodeDecodeError):
            values[key] = None
    return values


def read(namespace: str | None, keys: Collection[str]) -> dict[str, str | None]:
    """The values of ``keys`` in ``namespace`` (one entry into it)."""
    if not keys:
        return {}
    with inside(namespace):
        return read_here(keys)


def write_here(values: Mapping[str, str]) -> None:
    """Write ``values`` in their order, in the namespace this thread is in."""
    for key, value in values.items():
        with open(path(key), "w", encoding="ascii") as handle:
            handle.write(value)


def write(namespace: str | None, values: Mapping[str, str]) -> None:
    with inside(namespace):
        write_here(values)
