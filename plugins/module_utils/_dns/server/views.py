# This file is private to the wharf.network collection: its API may change at any time.
"""Who asks: the source address of a query gives the asker's view and where its other questions go.

The resolver never trusts anything else in the query: a container's view is its own, whatever it claims.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass
class View:
    """One view: the precomputed answers and what the slow path needs to answer the rest."""

    answers: dict[bytes, tuple[Any, ...]]
    names: dict[str, list[str]]
    reverse: dict[str, str]
    known_wire: frozenset[bytes] = frozenset()  # every name of the view, lowercased wire format


@dataclass
class Client:
    """What one asker gets: its view, and where its other questions go (None: never forwarded)."""

    view: View
    upstreams: tuple[str, ...] | None


def askers(
    state: Mapping[str, Any], views: Mapping[str, View]
) -> tuple[dict[str, Client], list[tuple[ipaddress.IPv4Network, Client]]]:
    """The state's askers: by address (a container's endpoint, with its own upstream servers), and by subnet (an
    address the topology does not name: the view of that network alone, the host's upstream servers)."""

    def client(spec: dict[str, Any], upstreams: list[str]) -> Client:
        return Client(views[spec["view"]], tuple(upstreams) if spec.get("forward", True) else None)

    clients = {
        str(ipaddress.IPv4Address(addr)): client(spec, spec.get("upstreams", []))
        for addr, spec in state.get("clients", {}).items()
    }
    subnets = [
        (ipaddress.IPv4Network(net), client(spec, state.get("upstreams", [])))
        for net, spec in state.get("subnets", {}).items()
    ]
    return clients, subnets


def client_for(
    clients: Mapping[str, Client], subnets: list[tuple[ipaddress.IPv4Network, Client]], address: str
) -> Client | None:
    """The asker at ``address``: its own entry, else the first subnet holding it, else None (not ours to answer)."""
    found = clients.get(address)
    if found is not None:
        return found
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        return None
    return next((c for net, c in subnets if ip in net), None)
