# This file is private to the wharf.network collection: its API may change at any time.
"""Who asks: the socket a query arrives on gives the asker, a container, and so its view and upstream servers.

The resolver listens inside each container's own network namespace (``listen.py``), as Docker's embedded resolver
does: a query on the socket of container C comes from inside C's namespace, whatever source address it carries,
so C's view is its own. Nothing in the query (its source address least of all) chooses the view.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_ADDRESS = "127.0.0.11"  # Docker's: on each container's own loopback


@dataclass
class View:
    """One view: the precomputed answers and what the slow path needs to answer the rest."""

    answers: dict[bytes, tuple[Any, ...]]
    names: dict[str, list[str]]
    reverse: dict[str, str]
    known_wire: frozenset[bytes] = frozenset()  # every name of the view, lowercased wire format


@dataclass
class Client:
    """One container: its view, where its other questions go (None: never forwarded), and where the resolver
    listens for it (``netns``: the namespace file, None for the resolver's own namespace, as a test uses)."""

    name: str
    view: View
    upstreams: tuple[str, ...] | None
    netns: str | None
    address: str


def askers(state: Mapping[str, Any], views: Mapping[str, View]) -> dict[str, Client]:
    """The state's askers by container (namespace) name."""
    default_address = str(state.get("address", DEFAULT_ADDRESS))
    clients = {}
    for name, spec in state.get("clients", {}).items():
        upstreams = tuple(spec.get("upstreams", [])) if spec.get("forward", True) else None
        netns = spec.get("netns")
        clients[str(name)] = Client(
            str(name),
            views[spec["view"]],
            upstreams,
            None if netns is None else str(netns),
            str(spec.get("address", default_address)),
        )
    return clients


def from_loopback(address: str) -> bool:
    """A query comes from a container's own loopback. A packet from elsewhere (a neighbour sending to
    127.0.0.11 through a container that set route_localnet) is dropped unanswered: never answered to a
    source that did not ask from inside."""
    return address.startswith("127.")
