# This file is private to the wharf.network collection: its API may change at any time.
"""The ``networks`` section of the topology: one network's fields, its defaults, and the checks between networks.

The drivers a network may name are those of the driver registry (``_drivers``), so the parser and the converge
can never disagree about which drivers exist; their order there is the order the error message lists them in.
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible_collections.wharf.network.plugins.module_utils._drivers import DRIVER_NAMES
from ansible_collections.wharf.network.plugins.module_utils._kernel.limits import VXLAN_OVERHEAD
from ansible_collections.wharf.network.plugins.module_utils._model.fields import Fields
from ansible_collections.wharf.network.plugins.module_utils._model.names import (
    DEFAULT_BRIDGE_NAME,
    DEFAULT_NETWORK,
    HOST_VETH_PREFIX,
    VNI_MAX,
    bridge_name_for,
    default_vni,
)
from ansible_collections.wharf.network.plugins.module_utils._model.types import (
    BRIDGED_DRIVERS,
    FAMILIES,
    IPV4,
    STATES,
    Family,
    IPv4Network,
    Network,
    Subnet,
)

DRIVERS = DRIVER_NAMES
DEFAULT_SUBNET = IPv4Network("172.31.0.0/16")
MACVLAN_MODES = ("bridge", "private", "vepa", "passthru")
IPVLAN_MODES = ("l2", "l3", "l3s")
DEFAULT_MTU = 1500
OVERLAY_MTU = DEFAULT_MTU - VXLAN_OVERHEAD

NETWORK_KEYS = (
    "driver",
    "subnet",
    "gateway",
    "ip_range",
    "internal",
    "icc",
    "masquerade",
    "mtu",
    "bridge_name",
    "vni",
    "parent",
    "mode",
    "state",
)


def default_network(topology_state: str) -> Network:
    """Docker's default network ``bridge`` (docker0) as a topology that uses it without declaring it gets it."""
    return Network(
        name=DEFAULT_NETWORK,
        driver="bridge",
        subnets=(Subnet(network=DEFAULT_SUBNET, gateway=next(DEFAULT_SUBNET.hosts()), ip_range=DEFAULT_SUBNET),),
        internal=False,
        icc=True,
        masquerade=True,
        mtu=DEFAULT_MTU,
        bridge_name=DEFAULT_BRIDGE_NAME,
        vni=None,
        parent=None,
        mode=None,
        state=topology_state,
        declared=False,
    )


def read_network(fields: Fields, path: str, name: str, value: object, topology_state: str) -> Network | None:
    """The network ``name`` declared as ``value``, with Docker's defaults; None when it has any error."""
    spec = fields.mapping(path, value)
    if spec is None:
        return None
    before = len(fields.errors)
    fields.unknown_keys(path, spec, NETWORK_KEYS)
    driver = fields.choice(f"{path}.driver", spec.get("driver", "bridge"), DRIVERS)
    state = fields.choice(f"{path}.state", spec.get("state", "present"), STATES)

    subnets = []
    for family in FAMILIES:
        # every network has IPv4 until ``enable_ipv4: false`` exists (issue 13)
        subnet = read_subnet(fields, path, name, spec, driver, family, required=family is IPV4)
        if subnet is not None:
            subnets.append(subnet)

    internal = fields.boolean(f"{path}.internal", spec.get("internal", False))
    icc = fields.boolean(f"{path}.icc", spec.get("icc", True))
    masquerade = not internal
    if "masquerade" in spec:
        masquerade = fields.boolean(f"{path}.masquerade", spec["masquerade"])
        if masquerade and internal:
            fields.error(f"{path}.masquerade true contradicts internal: true (an internal network has no egress)")

    mtu = OVERLAY_MTU if driver == "overlay" else DEFAULT_MTU
    if "mtu" in spec:
        mtu = fields.integer(f"{path}.mtu", spec["mtu"], 68, 65535)

    bridge_name = None
    if driver in BRIDGED_DRIVERS:
        bridge_name = bridge_name_for(name)
        if "bridge_name" in spec:
            bridge_name = fields.interface_name(f"{path}.bridge_name", spec["bridge_name"])
            if bridge_name is not None and bridge_name.startswith(HOST_VETH_PREFIX):
                fields.error(
                    f"{path}.bridge_name {bridge_name} starts with {HOST_VETH_PREFIX!r}, "
                    "which is reserved for container veths"
                )
    elif "bridge_name" in spec and driver is not None:
        fields.error(f"{path}.bridge_name applies to drivers bridge and overlay only, not {driver}")

    vni = None
    if driver == "overlay":
        vni = fields.integer(f"{path}.vni", spec["vni"], 1, VNI_MAX) if "vni" in spec else default_vni(name)
    elif "vni" in spec and driver is not None:
        fields.error(f"{path}.vni applies to driver overlay only, not {driver}")

    parent = mode = None
    if driver in ("macvlan", "ipvlan"):
        if "parent" in spec:
            parent = fields.interface_name(f"{path}.parent", spec["parent"])
        else:
            fields.error(f"{path}.parent is required for driver {driver} (the host interface to attach to)")
        modes = MACVLAN_MODES if driver == "macvlan" else IPVLAN_MODES
        mode = fields.choice(f"{path}.mode", spec.get("mode", modes[0]), modes)
    elif driver is not None:
        for key in ("parent", "mode"):
            if key in spec:
                fields.error(f"{path}.{key} applies to drivers macvlan and ipvlan only, not {driver}")

    if len(fields.errors) > before:
        return None
    if not subnets or not driver or not state:
        raise AssertionError(f"{path}: incomplete network passed validation")
    return Network(
        name=name,
        driver=driver,
        subnets=tuple(subnets),
        internal=bool(internal),
        icc=bool(icc),
        masquerade=bool(masquerade),
        mtu=int(mtu or DEFAULT_MTU),
        bridge_name=bridge_name,
        vni=vni,
        parent=parent,
        mode=mode,
        state="absent" if topology_state == "absent" else state,
        declared=True,
    )


def read_subnet(
    fields: Fields, path: str, name: str, spec: Mapping, driver: str | None, family: Family, required: bool
) -> Subnet | None:
    """The subnet of one family of the network at ``path``: its subnet, gateway (default: the first usable
    address) and range (default: the subnet), read from the family's keys; None when it has an error or is not
    set and not ``required`` (the default network has Docker's subnet)."""
    subnet = None
    if family.subnet_key in spec:
        subnet_path = f"{path}.{family.subnet_key}"
        subnet = fields.family_network(subnet_path, spec[family.subnet_key], family)
        if subnet is not None and subnet.prefixlen > family.max_prefixlen:
            fields.error(
                f"{subnet_path} {subnet} is too small: a network needs a prefix of /{family.max_prefixlen} or shorter"
            )
            subnet = None
    elif family is IPV4 and name == DEFAULT_NETWORK:
        subnet = DEFAULT_SUBNET
    elif required:
        fields.error(f"{path}.{family.subnet_key} is required for driver {driver or 'bridge'}")

    gateway = None
    if subnet is not None:
        gateway = next(subnet.hosts())
        if family.gateway_key in spec:
            gateway_path = f"{path}.{family.gateway_key}"
            gateway = fields.family_address(gateway_path, spec[family.gateway_key], family)
            if gateway is not None and gateway not in subnet:
                fields.error(f"{gateway_path} {gateway} is outside subnet {subnet}")
            elif gateway == subnet.network_address or (family.broadcast and gateway == subnet.broadcast_address):
                fields.error(f"{gateway_path} {gateway} is the network or broadcast address of {subnet}")

    ip_range = subnet
    if family.range_key in spec:
        range_path = f"{path}.{family.range_key}"
        ip_range = fields.family_network(range_path, spec[family.range_key], family)
        if ip_range is not None and subnet is not None and not ip_range.subnet_of(subnet):
            fields.error(f"{range_path} {ip_range} is outside subnet {subnet}")

    if subnet is None or gateway is None or ip_range is None:
        return None
    return Subnet(network=subnet, gateway=gateway, ip_range=ip_range)


def check_overlaps(fields: Fields, networks: dict[str, Network]) -> None:
    """Present networks must not share a VNI or overlapping subnets of one family (reported on the later one)."""
    present = [n for n in networks.values() if n.state == "present"]
    for index, later in enumerate(present):
        for earlier in present[:index]:
            if later.vni is not None and later.vni == earlier.vni:
                fields.error(f"networks.{later.name}.vni {later.vni} is also the vni of networks.{earlier.name}")
            for subnet in later.subnets:
                other = earlier.subnet_for(subnet.version)
                if other is not None and subnet.network.overlaps(other.network):
                    key = subnet.family.subnet_key
                    fields.error(
                        f"networks.{later.name}.{key} {subnet.network} overlaps "
                        f"networks.{earlier.name}.{key} {other.network}"
                    )
