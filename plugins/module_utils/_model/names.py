# This file is private to the wharf.network collection: its API may change at any time.
"""Kernel names and identifiers derived from the topology: bridges, host veths, VXLAN devices, VNIs and MACs.

Each is a pure function of a few names (or of an address), so every host and every run derives the same one and
a name never changes while the thing it names exists; ``docs/naming.md`` explains the choices to users. They
live apart from the parser because the drivers and the firewall derive the same names from the parsed model.
"""

from __future__ import annotations

import hashlib

from ansible_collections.wharf.network.plugins.module_utils._kernel.limits import IFNAMSIZ, VNI_MAX
from ansible_collections.wharf.network.plugins.module_utils._model.types import IPv4Address

DEFAULT_NETWORK = "bridge"
DEFAULT_BRIDGE_NAME = "wharf0"
HOST_VETH_PREFIX = "ve-"
HOST_VETH_NAME_CHARS = 5
VNI_MIN = 4096  # Docker's overlay VNIs start at 4096


def digest(text: str) -> bytes:
    """SHA-256 of ``text``: the source of every derived number (VNIs, address offsets), the same everywhere."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def _hex(text: str, length: int) -> str:
    # sha1 hex digits make the readable tails of long kernel names (bridges, veths); changing the hash renames links
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:length]


def bridge_name_for(network: str) -> str:
    """The bridge of a network when ``bridge_name`` is not set; at most 15 characters, stable.

    ``wharf0`` for the default network ``bridge``; ``br-<network>`` when that fits (network names up to 12
    characters); otherwise ``br-<first 5 characters>-<first 6 hex digits of sha1(network)>``.
    """
    if network == DEFAULT_NETWORK:
        return DEFAULT_BRIDGE_NAME
    name = f"br-{network}"
    if len(name) <= IFNAMSIZ:
        return name
    return f"br-{network[:5]}-{_hex(network, IFNAMSIZ - 9)}"


def host_veth_name(container: str, network: str) -> str:
    """The host end of the veth joining ``container`` to ``network``: always exactly 15 characters.

    ``ve-`` + the first 5 characters of the container name + ``-`` + the first hex digits of
    ``sha1("<container>/<network>")`` filling the name to 15 (at least 6 digits, 24 bits). It depends on
    nothing else in the topology, so it never changes while that endpoint exists. Short container names
    appear whole, so different short names never clash; long names sharing 5 characters are told apart by the
    hash (a clash is reported by :func:`parse_topology`, never silently accepted).
    """
    part = container[:HOST_VETH_NAME_CHARS]
    digits = IFNAMSIZ - len(HOST_VETH_PREFIX) - len(part) - 1
    return f"{HOST_VETH_PREFIX}{part}-{_hex(f'{container}/{network}', digits)}"


def default_vni(network: str) -> int:
    """The VXLAN id of an overlay network without ``vni``: stable, from the name, in Docker's range."""
    return VNI_MIN + int.from_bytes(digest(f"vni/{network}")[:8], "big") % (VNI_MAX - VNI_MIN + 1)


def vxlan_name_for(vni: int) -> str:
    """The VXLAN device of an overlay network on each host: ``vx-<vni>`` (at most 11 characters).

    Named by the VNI, which is unique per topology, so a device always says which segment it carries.
    """
    return f"vx-{vni}"


def mac_for(address: IPv4Address) -> str:
    """Docker's MAC for an IPv4 endpoint: ``02:42:`` (locally administered, unicast) + the 4 address bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in address.packed)
