# This file is private to the wharf.network collection: its API may change at any time.
"""Network drivers, looked up by name: what a network of each driver needs on a host and per endpoint.

A driver is one file here and a line in `REGISTRY`. It is pure (no kernel, no Ansible): it turns a network of the
model into items of the host's plan (`_model/items.py`), which the converge steps then make with the kernel link kind
the driver names (`_kernel/bridge.py`, `veth.py`, `vxlan.py`, …). The topology parser and the converge share this
registry, so a driver the registry does not know is refused in both the same way.
"""

from __future__ import annotations

from ansible_collections.wharf.network.plugins.module_utils._drivers.base import Driver
from ansible_collections.wharf.network.plugins.module_utils._drivers.bridge import BridgeDriver
from ansible_collections.wharf.network.plugins.module_utils._drivers.overlay import OverlayDriver
from ansible_collections.wharf.network.plugins.module_utils._drivers.sub_interface import SubInterfaceDriver

REGISTRY: dict[str, Driver] = {
    "bridge": BridgeDriver(),
    "overlay": OverlayDriver(),
    "macvlan": SubInterfaceDriver("macvlan"),
    "ipvlan": SubInterfaceDriver("ipvlan"),
}

DRIVER_NAMES = tuple(REGISTRY)


def driver_for(name: str) -> Driver:
    """The driver of that name (the topology only lets names of the registry through)."""
    return REGISTRY[name]


def drivers_in_use(names: list[str]) -> list[Driver]:
    """The drivers of these networks, each once, in registry order (so a plan is built in the same order always)."""
    wanted = set(names)
    return [driver for name, driver in REGISTRY.items() if name in wanted]
