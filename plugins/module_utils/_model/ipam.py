# This file is private to the wharf.network collection: its API may change at any time.
"""Address management: which address each endpoint gets on its network.

A fixed address from the topology always wins; every other endpoint gets one chosen from the network's
``ip_range`` by a hash of its names, so the same topology gives the same addresses on every host and every run.
Kept apart from the parser so that the rule, which users rely on (an address never moves by itself), has one
home with its guarantee written next to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ansible_collections.wharf.network.plugins.module_utils._model.names import digest
from ansible_collections.wharf.network.plugins.module_utils._model.types import IPv4Address, IPv4Network, Network

if TYPE_CHECKING:
    from ansible_collections.wharf.network.plugins.module_utils._model.containers import ContainerSpec
    from ansible_collections.wharf.network.plugins.module_utils._model.fields import Fields

HASHED_PROBES = 8


def allocate_addresses(
    network: str, pool: IPv4Network, reserved: Iterable[IPv4Address], containers: Iterable[str]
) -> dict[str, IPv4Address]:
    """Give each container an address of ``pool`` (the network's ip_range) outside ``reserved``.

    Rule: containers are taken in sorted-name order. A container's candidates are offsets into the pool from
    ``sha256("<network>/<container>/<i>")`` for i = 0..7, then the addresses after the first candidate, in turn
    (wrapping); it takes the first candidate that is neither reserved nor taken by an earlier container.

    Guarantee: the result depends only on the arguments (never on order of input, machine, or run). Adding a
    container X never moves a container whose name sorts before X; it moves a later one only when X lands on
    exactly the address that container had (chance about containers/pool size: pin with ``ipv4_address`` to
    rule it out). Removing X likewise leaves every earlier container where it was.

    Raises ValueError when the pool has fewer free addresses than containers.
    """
    base, size = int(pool.network_address), pool.num_addresses
    taken = {int(a) for a in reserved if a in pool}
    names = sorted(set(containers))
    if len(names) > size - len(taken):
        raise ValueError(f"{len(names)} addresses are needed but only {size - len(taken)} are free")
    allocated: dict[str, IPv4Address] = {}
    for name in names:
        offsets = [int.from_bytes(digest(f"{network}/{name}/{i}")[:8], "big") % size for i in range(HASHED_PROBES)]
        choice = next((o for o in offsets if base + o not in taken), None)
        if choice is None:
            choice = (offsets[0] + 1) % size
            while base + choice in taken:
                choice = (choice + 1) % size
        taken.add(base + choice)
        allocated[name] = IPv4Address(base + choice)
    return allocated


def allocate_endpoints(
    fields: Fields, containers: dict[str, ContainerSpec], networks: dict[str, Network]
) -> dict[tuple[str, str], IPv4Address]:
    """Addresses for every endpoint, fixed or allocated, keyed by (container, network).

    Absent containers keep their place, so marking one absent moves nobody. A network whose range is too small
    is reported on ``fields`` and its endpoints get no address."""
    addresses: dict[tuple[str, str], IPv4Address] = {}
    for network in networks.values():
        members = [(c, e) for c in containers.values() for e in c.endpoints if e.network == network.name]
        reserved = {network.subnet.network_address, network.subnet.broadcast_address, network.gateway}
        for container, endpoint in members:
            if endpoint.address is not None:
                reserved.add(endpoint.address)
                addresses[(container.name, network.name)] = endpoint.address
        wanting = [c.name for c, e in members if e.address is None]
        try:
            allocated = allocate_addresses(network.name, network.ip_range, reserved, wanting)
        except ValueError as exc:
            fields.error(f"networks.{network.name}.ip_range {network.ip_range} is too small: {exc}")
            continue
        for container_name, address in allocated.items():
            addresses[(container_name, network.name)] = address
    return addresses
