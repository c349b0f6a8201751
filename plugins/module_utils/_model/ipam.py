# This file is private to the wharf.network collection: its API may change at any time.
"""Address management: which address each endpoint gets on its network.

A fixed address from the topology always wins; every other endpoint gets one chosen from the network's
``ip_range`` by a hash of its names, so the same topology gives the same addresses on every host and every run.
Each subnet (one per address family) allocates on its own, by the same rule: nothing here knows a family, only
:mod:`ipaddress` networks.
Kept apart from the parser so that the rule, which users rely on (an address never moves by itself), has one
home with its guarantee written next to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ansible_collections.wharf.network.plugins.module_utils._model.names import digest
from ansible_collections.wharf.network.plugins.module_utils._model.types import (
    IPAddress,
    IPInterface,
    IPNetwork,
    Network,
)

if TYPE_CHECKING:
    from ansible_collections.wharf.network.plugins.module_utils._model.containers import ContainerSpec
    from ansible_collections.wharf.network.plugins.module_utils._model.fields import Fields

HASHED_PROBES = 8


def allocate_addresses(
    network: str, pool: IPNetwork, reserved: Iterable[IPAddress], containers: Iterable[str]
) -> dict[str, IPAddress]:
    """Give each container an address of ``pool`` (a subnet's ip_range, of any family) outside ``reserved``.

    Rule: containers are taken in sorted-name order. A container's candidates are offsets into the pool from
    ``sha256("<network>/<container>/<i>")`` for i = 0..7, then the addresses after the first candidate, in turn
    (wrapping); it takes the first candidate that is neither reserved nor taken by an earlier container.

    Guarantee: the result depends only on the arguments (never on order of input, machine, or run). Adding a
    container X never moves a container whose name sorts before X; it moves a later one only when X lands on
    exactly the address that container had (chance about containers/pool size: pin with ``ipv4_address`` to
    rule it out). Removing X likewise leaves every earlier container where it was.

    The addresses are of the pool's family; ``reserved`` addresses of another family are ignored.
    Raises ValueError when the pool has fewer free addresses than containers.
    """
    first, size = pool.network_address, pool.num_addresses
    base = int(first)
    taken = {int(a) for a in reserved if a.version == pool.version and a in pool}
    names = sorted(set(containers))
    if len(names) > size - len(taken):
        raise ValueError(f"{len(names)} addresses are needed but only {size - len(taken)} are free")
    allocated: dict[str, IPAddress] = {}
    for name in names:
        offsets = [int.from_bytes(digest(f"{network}/{name}/{i}")[:8], "big") % size for i in range(HASHED_PROBES)]
        choice = next((o for o in offsets if base + o not in taken), None)
        if choice is None:
            choice = (offsets[0] + 1) % size
            while base + choice in taken:
                choice = (choice + 1) % size
        taken.add(base + choice)
        allocated[name] = first + choice
    return allocated


def allocate_endpoints(
    fields: Fields, containers: dict[str, ContainerSpec], networks: dict[str, Network]
) -> dict[tuple[str, str], tuple[IPInterface, ...]]:
    """Addresses for every endpoint, fixed or allocated, keyed by (container, network): one interface per subnet
    of the network, in the order of its ``subnets``.

    Absent containers keep their place, so marking one absent moves nobody. A subnet whose range is too small
    is reported on ``fields``; an endpoint that got no address on some subnet of its network (it wanted one from
    that range) gets none at all."""
    addresses: dict[tuple[str, str], tuple[IPInterface, ...]] = {}
    for network in networks.values():
        members = [(c, e) for c in containers.values() for e in c.endpoints if e.network == network.name]
        found: dict[str, list[IPInterface]] = {c.name: [] for c, _endpoint in members}
        for subnet in network.subnets:
            reserved = set(subnet.reserved)
            chosen: dict[str, IPAddress] = {}
            for container, endpoint in members:
                fixed = endpoint.fixed.get(subnet.version)
                if fixed is not None:
                    reserved.add(fixed)
                    chosen[container.name] = fixed
            wanting = [c.name for c, e in members if subnet.version not in e.fixed]
            try:
                chosen.update(allocate_addresses(network.name, subnet.ip_range, reserved, wanting))
            except ValueError as exc:
                key = subnet.family.range_key
                fields.error(f"networks.{network.name}.{key} {subnet.ip_range} is too small: {exc}")
            for name, address in chosen.items():
                found[name].append(subnet.interface(address))
        for name, interfaces in found.items():
            if len(interfaces) == len(network.subnets):
                addresses[(name, network.name)] = tuple(interfaces)
    return addresses
