# This file is private to the wharf.network collection: its API may change at any time.
"""The ``containers`` section of the topology: a container, its endpoints (``networks``), ``extra_hosts`` and DNS
settings; the checks that need several containers (shared namespaces, fixed addresses, kernel names, MACs); and the
building of the final :class:`Container` once addresses are known.

A container is read in two steps because its endpoints need every network and every other container first: the
specs here hold what was written (after its own checks), and :func:`build_containers` turns them into the model.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ansible_collections.wharf.network.plugins.module_utils._kernel.limits import is_mac_text
from ansible_collections.wharf.network.plugins.module_utils._model.dns_names import (
    HOSTNAME_RE,
    MAX_HOSTNAME,
    read_dns_name,
)
from ansible_collections.wharf.network.plugins.module_utils._model.fields import (
    NAME_RE,
    Fields,
    is_list,
    show,
    type_name,
)
from ansible_collections.wharf.network.plugins.module_utils._model.names import (
    DEFAULT_NETWORK,
    host_veth_name,
    mac_for,
)
from ansible_collections.wharf.network.plugins.module_utils._model.ports import read_ports
from ansible_collections.wharf.network.plugins.module_utils._model.types import (
    FAMILIES,
    STATES,
    Container,
    Endpoint,
    IPAddress,
    IPInterface,
    Network,
    PortMapping,
    family_of,
)

MAX_CONTAINER_NAME = 63  # the name becomes a netns file name and the default hostname
MAX_BRIDGE_PORTS = 1023  # BR_MAX_PORTS (1024) minus the reserved port 0
_DNS_OPTION_RE = re.compile(r"[A-Za-z0-9_-]+(?::[0-9]+)?")

CONTAINER_KEYS = (
    "host",
    "hostname",
    "network_mode",
    "networks",
    "ports",
    "extra_hosts",
    "dns",
    "dns_search",
    "dns_options",
    "state",
)
ENDPOINT_KEYS = (*(f.address_key for f in FAMILIES), "aliases", "mac_address", "interface_name")


@dataclass
class EndpointSpec:
    """An endpoint as written, before allocation. ``fixed`` holds the fixed addresses by family version (``4``);
    a family missing there is allocated."""

    network: str
    path: str
    fixed: dict[int, IPAddress] = field(default_factory=dict)
    mac_address: str | None = None
    aliases: tuple[str, ...] = ()
    interface_name: str | None = None


@dataclass
class ContainerSpec:
    """A container as written, after its own checks and before cross-references."""

    name: str
    path: str
    host: str | None = None
    hostname: str | None = None
    network_mode: str = "bridge"
    shares_with: str | None = None
    endpoints: list[EndpointSpec] = field(default_factory=list)
    ports: list[PortMapping] = field(default_factory=list)
    extra_hosts: list[tuple[str, str]] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    state: str = "present"


# --- one container ---------------------------------------------------------------------------------------


def read_container(fields: Fields, path: str, name: str, value: object, topology_state: str) -> ContainerSpec | None:
    """The container ``name`` declared as ``value``; None only when it is no mapping at all."""
    spec = fields.mapping(path, value)
    if spec is None:
        return None
    fields.unknown_keys(path, spec, CONTAINER_KEYS)
    container = ContainerSpec(name=name, path=path)
    state = fields.choice(f"{path}.state", spec.get("state", "present"), STATES) or "present"
    container.state = "absent" if topology_state == "absent" else state

    if spec.get("host") is not None:
        container.host = fields.string(f"{path}.host", spec["host"])

    mode = spec.get("network_mode", "bridge")
    if isinstance(mode, str) and mode.startswith("container:"):
        target = mode.split(":", 1)[1]
        container.network_mode = mode
        if not NAME_RE.fullmatch(target):
            fields.error(f"{path}.network_mode {show(mode)} does not name a container (container:NAME)")
        elif target == name:
            fields.error(f"{path}.network_mode {mode} names the container itself")
        else:
            container.shares_with = target
    else:
        checked = fields.choice(f"{path}.network_mode", mode, ("bridge", "none", "host", "container:NAME"))
        container.network_mode = checked if checked in ("bridge", "none", "host") else "bridge"
    own_namespace = container.network_mode in ("bridge", "none")

    if "hostname" in spec:
        hostname = fields.string(f"{path}.hostname", spec["hostname"])
        if hostname is not None and (len(hostname) > MAX_HOSTNAME or not HOSTNAME_RE.fullmatch(hostname)):
            fields.error(f"{path}.hostname {show(hostname)} is not a valid hostname (at most {MAX_HOSTNAME})")
        elif hostname is not None and not own_namespace:
            fields.error(f"{path}.hostname is not allowed with network_mode {container.network_mode}")
        container.hostname = hostname
    if own_namespace and container.hostname is None:
        container.hostname = name

    networks = spec.get("networks")
    if networks is not None and networks != {} and networks != []:
        if container.network_mode != "bridge":
            fields.error(f"{path}.networks is not allowed with network_mode {container.network_mode}")
        else:
            container.endpoints = read_endpoints(fields, f"{path}.networks", networks)
    elif container.network_mode == "bridge":
        container.endpoints = [EndpointSpec(network=DEFAULT_NETWORK, path=f"{path}.networks.{DEFAULT_NETWORK}")]

    if spec.get("ports") not in (None, []):
        if container.network_mode != "bridge":
            fields.error(f"{path}.ports is not allowed with network_mode {container.network_mode}")
        else:
            container.ports = read_ports(fields, f"{path}.ports", spec["ports"])

    for key in ("extra_hosts", "dns", "dns_search", "dns_options"):
        if spec.get(key) not in (None, [], {}) and not own_namespace:
            fields.error(f"{path}.{key} is not allowed with network_mode {container.network_mode}")
    if spec.get("extra_hosts") is not None:
        container.extra_hosts = read_extra_hosts(fields, f"{path}.extra_hosts", spec["extra_hosts"])
    for index, server in enumerate(fields.string_list(f"{path}.dns", spec.get("dns")) or []):
        if fields.ip_address(f"{path}.dns[{index}]", server) is not None:
            container.dns.append(server)
    for index, domain in enumerate(fields.string_list(f"{path}.dns_search", spec.get("dns_search")) or []):
        if read_dns_name(fields, f"{path}.dns_search[{index}]", domain, "search domain") is not None:
            container.dns_search.append(domain)
    for index, option in enumerate(fields.string_list(f"{path}.dns_options", spec.get("dns_options")) or []):
        if not _DNS_OPTION_RE.fullmatch(option):
            fields.error(f"{path}.dns_options[{index}] {show(option)} is not a resolver option (e.g. ndots:1)")
        else:
            container.dns_options.append(option)
    return container


def read_endpoints(fields: Fields, path: str, value: object) -> list[EndpointSpec]:
    """A container's ``networks``: a list of names, or a mapping of name to endpoint settings."""
    if is_list(value):
        endpoints: list[EndpointSpec] = []
        for index, item in enumerate(value):
            name = fields.string(f"{path}[{index}]", item)
            if name is None:
                continue
            if any(e.network == name for e in endpoints):
                fields.error(f"{path}[{index}] network {name} is listed twice")
                continue
            endpoints.append(EndpointSpec(network=name, path=f"{path}.{name}"))
        return endpoints
    spec = fields.mapping(path, value)
    if spec is None:
        return []
    endpoints = []
    for network, body in spec.items():
        endpoint_path = f"{path}.{network}"
        body = fields.mapping(endpoint_path, body)
        if body is None or not isinstance(network, str):
            continue
        fields.unknown_keys(endpoint_path, body, ENDPOINT_KEYS)
        endpoint = EndpointSpec(network=network, path=endpoint_path)
        for family in FAMILIES:
            if body.get(family.address_key) is not None:
                key_path = f"{endpoint_path}.{family.address_key}"
                fixed = fields.family_address(key_path, body[family.address_key], family)
                if fixed is not None:
                    endpoint.fixed[family.version] = fixed
        if body.get("mac_address") is not None:
            mac = fields.string(f"{endpoint_path}.mac_address", body["mac_address"])
            if mac is not None and not is_mac_text(mac):
                fields.error(f"{endpoint_path}.mac_address {show(mac)} is not of the form 02:42:ac:1c:00:0a")
            elif mac is not None and int(mac[:2], 16) & 1:
                fields.error(f"{endpoint_path}.mac_address {mac} is a multicast address")
            elif mac is not None:
                endpoint.mac_address = mac.lower()
        aliases = []
        for index, alias in enumerate(fields.string_list(f"{endpoint_path}.aliases", body.get("aliases")) or []):
            if read_dns_name(fields, f"{endpoint_path}.aliases[{index}]", alias, "DNS name") is not None:
                aliases.append(alias)
        endpoint.aliases = tuple(aliases)
        if body.get("interface_name") is not None:
            endpoint.interface_name = fields.interface_name(f"{endpoint_path}.interface_name", body["interface_name"])
        endpoints.append(endpoint)
    return endpoints


def read_extra_hosts(fields: Fields, path: str, value: object) -> list[tuple[str, str]]:
    """``extra_hosts`` as (name, address) pairs: a list of ``NAME:ADDRESS`` (or compose's ``NAME=ADDRESS``), or a
    mapping; ``host-gateway`` stands for the gateway, as in Docker."""
    pairs: list[tuple[str, str, str]] = []  # (path, name, address)
    if isinstance(value, Mapping):
        pairs = [(f"{path}.{k}", k, v) for k, v in value.items()]
    elif is_list(value):
        for index, item in enumerate(value):
            entry = fields.string(f"{path}[{index}]", item)
            if entry is None:
                continue
            parts = re.split(r"[:=]", entry, maxsplit=1)  # compose also takes NAME=ADDRESS
            if len(parts) != 2:
                fields.error(f"{path}[{index}] {show(entry)} must be NAME:ADDRESS")
                continue
            pairs.append((f"{path}[{index}]", parts[0], parts[1]))
    else:
        fields.error(
            f"{path} {show(value, quoted=True)} must be a list of NAME:ADDRESS or a mapping, not {type_name(value)}"
        )
    result = []
    for entry_path, host, address in pairs:
        ok = read_dns_name(fields, entry_path, host, "host name") is not None
        if address != "host-gateway":
            address = address.strip("[]") if isinstance(address, str) else address
            ok = fields.ip_address(entry_path, address) is not None and ok
        if ok:
            result.append((host, address))
    return result


# --- across containers -----------------------------------------------------------------------------------


def check_shared_namespaces(fields: Fields, containers: dict[str, ContainerSpec]) -> None:
    """``network_mode: container:OTHER`` must name a container on the same host, present when this one is,
    without a cycle."""
    reported_cycles: set[frozenset[str]] = set()
    for container in containers.values():
        target_name = container.shares_with
        if target_name is None:
            continue
        target = containers.get(target_name)
        if target is None:
            hint = difflib.get_close_matches(target_name, list(containers), n=1)
            suggestion = f" (did you mean container:{hint[0]}?)" if hint else ""
            fields.error(
                f"{container.path}.network_mode {container.network_mode}: no container {target_name}{suggestion}"
            )
            continue
        chain = [container.name]
        current: ContainerSpec | None = target
        while current is not None and current.shares_with is not None and current.name not in chain:
            chain.append(current.name)
            current = containers.get(current.shares_with)
        if current is not None and current.name in chain:
            cycle = chain[chain.index(current.name) :]
            if frozenset(cycle) not in reported_cycles:
                reported_cycles.add(frozenset(cycle))
                loop = " -> ".join([*cycle, cycle[0]])
                first = containers[cycle[0]]
                fields.error(f"{first.path}.network_mode {first.network_mode} forms a cycle: {loop}")
            continue
        if target.host != container.host:
            fields.error(
                f"{container.path}.network_mode {container.network_mode}: {container.name} lives on "
                f"{container.host or 'every host'} but {target.name} on {target.host or 'every host'}"
            )
        if container.state == "present" and target.state == "absent":
            fields.error(f"{container.path}.network_mode {container.network_mode}: {target.name} is absent")


def check_endpoints(
    fields: Fields, containers: dict[str, ContainerSpec], networks: dict[str, Network], known: set[str]
) -> None:
    """Each endpoint names a known network; a fixed address fits its subnet and is nobody else's; a bridge
    holds its endpoints. A fixed address found wrong is dropped from its spec, so allocation skips it."""
    fixed: dict[tuple[str, IPAddress], str] = {}
    for container in containers.values():
        names: dict[str, str] = {}
        for endpoint in container.endpoints:
            if endpoint.network not in known:
                hint = difflib.get_close_matches(endpoint.network, sorted(known), n=1)
                suggestion = f" (did you mean {hint[0]}?)" if hint else ""
                fields.error(f"{endpoint.path}: no network {endpoint.network}{suggestion}")
                continue
            if endpoint.interface_name is not None:
                if endpoint.interface_name in names:
                    fields.error(
                        f"{endpoint.path}.interface_name {endpoint.interface_name} is also the interface of "
                        f"{names[endpoint.interface_name]}"
                    )
                names[endpoint.interface_name] = endpoint.path
            network = networks.get(endpoint.network)
            if network is None:
                continue  # the network has errors of its own
            if container.state == "present" and network.state == "absent":
                fields.error(f"{endpoint.path}: network {network.name} is absent but {container.name} is present")
            for version, address in list(endpoint.fixed.items()):
                subnet = network.subnet_for(version)
                family = family_of(version)
                address_path = f"{endpoint.path}.{family.address_key} {address}"
                if subnet is None:
                    fields.error(f"{address_path}: network {network.name} has no {family.name} subnet")
                elif address not in subnet.network:
                    fields.error(f"{address_path} is outside subnet {subnet.network} of network {network.name}")
                elif address == subnet.gateway:
                    fields.error(f"{address_path} is the gateway of network {network.name}")
                elif address in subnet.reserved:
                    fields.error(f"{address_path} is the network or broadcast address of {subnet.network}")
                elif (network.name, address) in fixed:
                    fields.error(f"{address_path} is also the address of {fixed[(network.name, address)]}")
                else:
                    fixed[(network.name, address)] = endpoint.path
                    continue
                del endpoint.fixed[version]  # reported: keep it out of allocation and later checks

    for network in networks.values():
        if not network.bridged or network.state != "present":
            continue
        per_host: dict[str | None, int] = {}
        for container in containers.values():
            if container.state == "present" and any(e.network == network.name for e in container.endpoints):
                per_host[container.host] = per_host.get(container.host, 0) + 1
        everywhere = per_host.pop(None, 0)
        for host, count in sorted(per_host.items()) or [(None, 0)]:
            if count + everywhere > MAX_BRIDGE_PORTS:
                where = f"host {host}" if host else "every host"
                fields.error(
                    f"networks.{network.name} has {count + everywhere} endpoints on {where}, "
                    f"more than a bridge holds ({MAX_BRIDGE_PORTS})"
                )


def build_containers(
    containers: dict[str, ContainerSpec],
    networks: dict[str, Network],
    addresses: dict[tuple[str, str], tuple[IPInterface, ...]],
) -> dict[str, Container]:
    """The model of every container: interfaces named (``eth0``... around pinned names), the default route of each
    family on the first non-internal network with a subnet of that family, host veth and MAC derived, the namespace
    and hostname of a shared namespace taken from the end of its chain. Endpoints without a network or an address
    (both reported) are left out."""
    model: dict[str, Container] = {}
    for container in containers.values():
        endpoints = []
        pinned = {e.interface_name for e in container.endpoints if e.interface_name}
        counter = 0
        routed: set[int] = set()  # the families whose default route an earlier endpoint carries
        for spec in container.endpoints:
            network = networks.get(spec.network)
            interfaces = addresses.get((container.name, spec.network))
            if network is None or interfaces is None:
                continue
            interface = spec.interface_name
            if interface is None:
                while f"eth{counter}" in pinned:
                    counter += 1
                interface, counter = f"eth{counter}", counter + 1
            # per family, the first non-internal network with a subnet of that family gives the default route
            default_routes = (
                () if network.internal else tuple(s.version for s in network.subnets if s.version not in routed)
            )
            routed.update(default_routes)
            endpoints.append(
                Endpoint(
                    container=container.name,
                    network=network.name,
                    interface=interface,
                    host_interface=host_veth_name(container.name, network.name) if network.bridged else None,
                    addresses=interfaces,
                    gateways=tuple(s.gateway for s in network.subnets),
                    # Docker's MAC is derived from the IPv4 address (every network has one until issue 13)
                    mac_address=spec.mac_address or mac_for(next(i.ip for i in interfaces if i.version == 4)),
                    aliases=spec.aliases,
                    address_fixed=bool(spec.fixed),
                    default_routes=default_routes,
                )
            )
        root = container
        seen = {container.name}
        while root.shares_with is not None and root.shares_with in containers and root.shares_with not in seen:
            root = containers[root.shares_with]
            seen.add(root.name)
        own = root.network_mode in ("bridge", "none")
        model[container.name] = Container(
            name=container.name,
            host=container.host,
            hostname=root.hostname if own else None,
            network_mode=container.network_mode,
            shares_with=container.shares_with,
            namespace=root.name if own else None,
            endpoints=tuple(endpoints),
            ports=tuple(container.ports),
            extra_hosts=tuple(container.extra_hosts),
            dns=tuple(container.dns),
            dns_search=tuple(container.dns_search),
            dns_options=tuple(container.dns_options),
            state=container.state,
        )
    return model


# --- checks on the built model ---------------------------------------------------------------------------


def check_kernel_names(fields: Fields, networks: dict[str, Network], model: dict[str, Container]) -> None:
    """Host-side interface names must be unique on a host; checked across the whole topology so that
    moving a container to another host can never create a clash."""
    owners: dict[str, str] = {}

    def claim(name: str, owner: str, path: str) -> None:
        if name in owners:
            fields.error(f"{path} {name} is also the interface name of {owners[name]}; rename one of them")
        else:
            owners[name] = owner

    for network in networks.values():
        if network.bridge_name is not None:
            claim(network.bridge_name, f"networks.{network.name} (bridge)", f"networks.{network.name}.bridge_name")
    for container in model.values():
        for endpoint in container.endpoints:
            if endpoint.host_interface is not None:
                path = f"containers.{container.name}.networks.{endpoint.network}"
                claim(endpoint.host_interface, f"{path} (host veth)", f"{path} host veth")


def check_macs(fields: Fields, model: dict[str, Container]) -> None:
    """No two endpoints of one network share a MAC (a fixed ``mac_address`` could copy a derived one)."""
    seen: dict[tuple[str, str], str] = {}
    for container in model.values():
        for endpoint in container.endpoints:
            key = (endpoint.network, endpoint.mac_address)
            path = f"containers.{container.name}.networks.{endpoint.network}"
            if key in seen:
                fields.error(
                    f"{path}.mac_address {endpoint.mac_address} is also the MAC of {seen[key]} "
                    f"on network {endpoint.network}"
                )
            else:
                seen[key] = path
