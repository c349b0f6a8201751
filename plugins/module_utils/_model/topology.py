# This file is private to the wharf.network collection: its API may change at any time.
"""The topology model: parse, validate, default and allocate the YAML topology of DESIGN.md section 2.

Pure Python (standard library only): no Ansible import and no kernel access, so every host, every run and every
test computes the same model from the same document.

Entry point: :func:`parse_topology`. It returns a :class:`Topology` in which every field is filled in (Docker's
defaults applied, addresses allocated, kernel names derived), or raises :class:`TopologyError` whose ``errors``
lists every problem found, each naming its path in the document and the offending value.

Addresses (see :func:`allocate_addresses`)
    Deterministic: a function of the document alone (SHA-256, containers taken in sorted-name order), never of
    dict order, the machine or the run. A fixed ``ipv4_address`` always wins and is never handed to another
    container. Each network allocates on its own: editing one network never moves an address on another.

Kernel names (see :func:`bridge_name_for`, :func:`host_veth_name`; also ``docs/naming.md``)
    bridge ``br-<network>`` (``wharf0`` for the default network), host-side veth ``ve-<container[:5]>-<hex>``,
    container side ``eth0``, ``eth1``... in the order of the container's ``networks``; MAC ``02:42:`` + the four
    bytes of the endpoint's IPv4 address. All at most 15 characters and checked unique across the topology.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

IPv4Address = ipaddress.IPv4Address
IPv4Network = ipaddress.IPv4Network

DEFAULT_NETWORK = "bridge"
DEFAULT_BRIDGE_NAME = "wharf0"
DEFAULT_SUBNET = IPv4Network("172.31.0.0/16")
DRIVERS = ("bridge", "overlay", "macvlan", "ipvlan")
BRIDGED_DRIVERS = ("bridge", "overlay")  # drivers whose endpoints are veths on a Linux bridge
STATES = ("present", "absent")
MACVLAN_MODES = ("bridge", "private", "vepa", "passthru")
IPVLAN_MODES = ("l2", "l3", "l3s")
PROTOCOLS = ("tcp", "udp", "sctp")
IFNAMSIZ = 15  # longest Linux interface name
MAX_CONTAINER_NAME = 63  # the name becomes a netns file name and the default hostname
MAX_HOSTNAME = 64  # HOST_NAME_MAX
MAX_BRIDGE_PORTS = 1023  # BR_MAX_PORTS (1024) minus the reserved port 0
DEFAULT_MTU = 1500
VXLAN_OVERHEAD = 50
OVERLAY_MTU = DEFAULT_MTU - VXLAN_OVERHEAD
VNI_MIN, VNI_MAX = 4096, 2**24 - 1  # Docker's overlay VNIs start at 4096
HOST_VETH_PREFIX = "ve-"
HOST_VETH_NAME_CHARS = 5
HASHED_PROBES = 8

_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_IFNAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,15}")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_DNS_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?"
_DNS_NAME_RE = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*\.?")
_MAC_RE = re.compile(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}")
_DNS_OPTION_RE = re.compile(r"[A-Za-z0-9_-]+(?::[0-9]+)?")
_PORT_RANGE_RE = re.compile(r"([0-9]+)(?:-([0-9]+))?")

_TOP_KEYS = ("networks", "containers", "state", "prune")
_NETWORK_KEYS = (
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
_CONTAINER_KEYS = (
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
_ENDPOINT_KEYS = ("ipv4_address", "aliases", "mac_address", "interface_name")
_PORT_KEYS = ("host_ip", "published", "target", "protocol")


class TopologyError(ValueError):
    """The topology is invalid. ``errors`` lists every problem found, one sentence each, in document order."""

    def __init__(self, errors: Iterable[str]):
        self.errors = list(errors)
        super().__init__("invalid topology:\n" + "\n".join(f"- {e}" for e in self.errors))


@dataclass(frozen=True)
class Network:
    """A network after defaults. Addresses are :mod:`ipaddress` objects.

    ``bridge_name`` is None for macvlan/ipvlan (no bridge), ``vni`` is set for overlay only, ``parent`` and
    ``mode`` for macvlan/ipvlan only. ``state`` is the effective state (absent when the whole topology is).
    ``declared`` is False for the default network ``bridge`` when the topology only uses it.
    ``masquerade`` is the effective value: never true on an internal network.
    """

    name: str
    driver: str
    subnet: IPv4Network
    gateway: IPv4Address
    ip_range: IPv4Network
    internal: bool
    icc: bool
    masquerade: bool
    mtu: int
    bridge_name: str | None
    vni: int | None
    parent: str | None
    mode: str | None
    state: str
    declared: bool

    @property
    def bridged(self) -> bool:
        """True when endpoints are veths on a Linux bridge of this host (drivers bridge and overlay)."""
        return self.driver in BRIDGED_DRIVERS

    @property
    def gateway_interface(self) -> str:
        """The gateway in CIDR form as it sits on the bridge, e.g. ``172.28.0.1/24``."""
        return f"{self.gateway}/{self.subnet.prefixlen}"


@dataclass(frozen=True)
class Endpoint:
    """A container's attachment to one network.

    ``interface`` is the name inside the container (``eth0``...), ``host_interface`` the host-side veth (None on
    macvlan/ipvlan networks, whose sub-interface has no host end). ``address_fixed`` tells whether the address
    came from the topology. ``default_route`` is True on the one endpoint that carries the container's default
    route (the first non-internal network, as in Docker).
    """

    container: str
    network: str
    interface: str
    host_interface: str | None
    address: IPv4Address
    prefixlen: int
    gateway: IPv4Address
    mac_address: str
    aliases: tuple[str, ...]
    address_fixed: bool
    default_route: bool

    @property
    def address_interface(self) -> str:
        """The address in CIDR form, e.g. ``172.28.0.10/24``."""
        return f"{self.address}/{self.prefixlen}"


@dataclass(frozen=True)
class PortMapping:
    """One published port range. ``published`` is None when Docker would pick an ephemeral host port.

    Ranges are inclusive ``(first, last)`` pairs of equal length. ``host_ip`` is None for every address (Docker's
    default). ``spec`` is the entry as written, for messages.
    """

    host_ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    published: tuple[int, int] | None
    target: tuple[int, int]
    protocol: str
    spec: str


@dataclass(frozen=True)
class Container:
    """A container (a network sandbox) after defaults.

    ``network_mode`` is as written (``bridge``, ``none``, ``host`` or ``container:OTHER``); ``shares_with`` is
    OTHER for ``container:OTHER``. ``namespace`` is the named netns the container's processes live in: its own
    name for bridge/none, the end of the ``container:`` chain for container mode, None for host (and for a
    chain ending at a host-mode container). ``hostname`` is None when the container has no UTS name of its own
    to set (host mode). ``host`` None means every host. ``state`` is the effective state.
    ``endpoints`` are in the order of the container's ``networks``, so ``endpoints[i].interface`` follows it.
    """

    name: str
    host: str | None
    hostname: str | None
    network_mode: str
    shares_with: str | None
    namespace: str | None
    endpoints: tuple[Endpoint, ...]
    ports: tuple[PortMapping, ...]
    extra_hosts: tuple[tuple[str, str], ...]
    dns: tuple[str, ...]
    dns_search: tuple[str, ...]
    dns_options: tuple[str, ...]
    state: str

    @property
    def own_namespace(self) -> bool:
        """True when the container has a netns of its own (network_mode bridge or none)."""
        return self.network_mode in ("bridge", "none")

    def lives_on(self, inventory_hostname: str) -> bool:
        """True when the container belongs on that inventory host (no ``host:`` means every host)."""
        return self.host is None or self.host == inventory_hostname


@dataclass(frozen=True)
class Topology:
    """A valid topology. ``networks`` and ``containers`` are keyed and ordered by name.

    ``networks`` holds every declared network plus the default network ``bridge`` when a container uses it.
    """

    networks: dict[str, Network]
    containers: dict[str, Container]
    state: str
    prune: bool

    def containers_on(self, inventory_hostname: str) -> list[Container]:
        """The containers that live on that host, by name."""
        return [c for c in self.containers.values() if c.lives_on(inventory_hostname)]


def parse_topology(data: object) -> Topology:
    """Validate ``data`` (the value of ``wharf_topology``) and return the complete model.

    Raises :class:`TopologyError` listing every problem at once; nothing is half-checked.
    """
    return _Parser().parse(data)


def topology_errors(data: object) -> list[str]:
    """Every problem in ``data``; empty when it is a valid topology."""
    try:
        parse_topology(data)
    except TopologyError as exc:
        return exc.errors
    return []


# --- derived names and addresses -------------------------------------------------------------------------


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def _hex(text: str, length: int) -> str:
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
    return VNI_MIN + int.from_bytes(_digest(f"vni/{network}")[:8], "big") % (VNI_MAX - VNI_MIN + 1)


def vxlan_name_for(vni: int) -> str:
    """The VXLAN device of an overlay network on each host: ``vx-<vni>`` (at most 11 characters).

    Named by the VNI, which is unique per topology, so a device always says which segment it carries.
    """
    return f"vx-{vni}"


def mac_for(address: IPv4Address) -> str:
    """Docker's MAC for an IPv4 endpoint: ``02:42:`` (locally administered, unicast) + the 4 address bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in address.packed)


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
        offsets = [int.from_bytes(_digest(f"{network}/{name}/{i}")[:8], "big") % size for i in range(HASHED_PROBES)]
        choice = next((o for o in offsets if base + o not in taken), None)
        if choice is None:
            choice = (offsets[0] + 1) % size
            while base + choice in taken:
                choice = (choice + 1) % size
        taken.add(base + choice)
        allocated[name] = IPv4Address(base + choice)
    return allocated


# --- parsing ---------------------------------------------------------------------------------------------


def _dns_name_problem(text: str) -> str | None:
    """Why ``text`` (a final dot allowed) is no DNS name a resolver can serve, or None."""
    name = text[:-1] if text.endswith(".") else text
    if not name:
        return "it is empty"
    if len(name) > 253:
        return f"it is {len(name)} characters, a DNS name has at most 253"
    labels = name.split(".")
    if not all(labels):
        return "it has an empty label (a leading dot or '..')"
    longest = max(labels, key=len)
    if len(longest) > 63:
        return f"its label {longest[:20]}... is {len(longest)} characters, a DNS label has at most 63"
    return None


def _show(value: object, quoted: bool = False) -> str:
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


def _type_name(value: object) -> str:
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


def _is_list(value: object) -> bool:
    return isinstance(value, list | tuple)


@dataclass
class _EndpointSpec:
    """An endpoint as written, before allocation."""

    network: str
    path: str
    address: IPv4Address | None = None
    mac_address: str | None = None
    aliases: tuple[str, ...] = ()
    interface_name: str | None = None


@dataclass
class _ContainerSpec:
    """A container as written, after its own checks and before cross-references."""

    name: str
    path: str
    host: str | None = None
    hostname: str | None = None
    network_mode: str = "bridge"
    shares_with: str | None = None
    endpoints: list[_EndpointSpec] = field(default_factory=list)
    ports: list[PortMapping] = field(default_factory=list)
    extra_hosts: list[tuple[str, str]] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    state: str = "present"


class _Parser:
    """One validation pass. Each check appends to ``errors`` and carries on, so all problems surface at once;
    a check that depends on a broken value (an address against an invalid subnet) is skipped, not guessed."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, message: str) -> None:
        self.errors.append(message)

    # generic field checks: each returns the value, or None after recording an error

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
            self.error(f"{path} {_show(value, quoted=True)} must be a mapping, not {_type_name(value)}")
            return None
        return value

    def string(self, path: str, value: object) -> str | None:
        if not isinstance(value, str):
            self.error(f"{path} {_show(value, quoted=True)} must be a non-empty string, not {_type_name(value)}")
            return None
        if not value:
            self.error(f"{path} must not be empty")
            return None
        return str(value)

    def boolean(self, path: str, value: object) -> bool | None:
        if not isinstance(value, bool):
            self.error(f"{path} {_show(value, quoted=True)} must be true or false, not {_type_name(value)}")
            return None
        return value

    def integer(self, path: str, value: object, low: int, high: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(f"{path} {_show(value, quoted=True)} must be an integer, not {_type_name(value)}")
            return None
        if not low <= value <= high:
            self.error(f"{path} {value} is out of range ({low}-{high})")
            return None
        return int(value)

    def choice(self, path: str, value: object, choices: Iterable[str]) -> str | None:
        choices = tuple(choices)
        if not isinstance(value, str) or value not in choices:
            self.error(f"{path} {_show(value)} must be one of {', '.join(choices)}")
            return None
        return str(value)

    def string_list(self, path: str, value: object) -> list[str] | None:
        if value is None:
            return []
        if not _is_list(value):
            self.error(f"{path} {_show(value, quoted=True)} must be a list, not {_type_name(value)}")
            return None
        result = []
        for index, item in enumerate(value):
            text = self.string(f"{path}[{index}]", item)
            if text is not None:
                result.append(text)
        return result

    def name(self, path: str, value: object, kind: str, max_length: int | None = None) -> bool:
        if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
            self.error(
                f"{path} is not a valid {kind} name: {_show(value)} must match [a-z0-9][a-z0-9_.-]* "
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
            self.error(f"{path} {_show(text)} is {len(text)} characters, an interface name has at most {IFNAMSIZ}")
            return None
        if not _IFNAME_RE.fullmatch(text) or text in (".", ".."):
            self.error(f"{path} {_show(text)} is not a valid interface name (letters, digits, '_', '.', '-')")
            return None
        return text

    def ipv4_address(self, path: str, value: object) -> IPv4Address | None:
        if not isinstance(value, str):
            self.error(f"{path} {_show(value, quoted=True)} must be an IPv4 address string, not {_type_name(value)}")
            return None
        try:
            return IPv4Address(value)
        except ValueError:
            self.error(f"{path} {_show(value)} is not an IPv4 address")
            return None

    def ip_address(self, path: str, value: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        if not isinstance(value, str):
            self.error(f"{path} {_show(value, quoted=True)} must be an IP address string, not {_type_name(value)}")
            return None
        try:
            return ipaddress.ip_address(value)
        except ValueError:
            self.error(f"{path} {_show(value)} is not an IP address")
            return None

    def ipv4_network(self, path: str, value: object) -> IPv4Network | None:
        if not isinstance(value, str):
            self.error(f"{path} {_show(value, quoted=True)} must be a subnet in CIDR form, not {_type_name(value)}")
            return None
        try:
            return IPv4Network(value, strict=True)
        except ValueError:
            pass
        try:
            loose = IPv4Network(value, strict=False)
        except ValueError:
            self.error(f"{path} {_show(value)} is not an IPv4 subnet in CIDR form (e.g. 172.28.0.0/24)")
        else:
            self.error(f"{path} {value} has host bits set (did you mean {loose}?)")
        return None

    def dns_name(self, path: str, value: object, what: str) -> str | None:
        text = self.string(path, value)
        if text is None:
            return None
        if not _DNS_NAME_RE.fullmatch(text):
            self.error(f"{path} {_show(text)} is not a valid {what}")
            return None
        problem = _dns_name_problem(text)
        if problem is not None:
            self.error(f"{path} {_show(text)} is not a valid {what}: {problem}")
            return None
        return text

    # --- the document ----------------------------------------------------------------------------------

    def parse(self, data: object) -> Topology:
        top = self.mapping("wharf_topology", data, none_ok=False)
        if top is None:
            raise TopologyError(self.errors)
        self.unknown_keys("wharf_topology", top, _TOP_KEYS)
        state = self.choice("state", top.get("state", "present"), STATES) or "present"
        prune = top.get("prune", False)
        prune = bool(self.boolean("prune", prune)) if prune is not None else False

        networks_spec = self.mapping("networks", top.get("networks")) or {}
        containers_spec = self.mapping("containers", top.get("containers")) or {}

        networks: dict[str, Network] = {}
        known_networks: set[str] = set()  # declared, valid name, even when the body is broken
        for name, spec in networks_spec.items():
            path = f"networks.{name}"
            if not self.name(path, name, "network"):
                continue
            known_networks.add(name)
            network = self.network(path, name, spec, state)
            if network is not None:
                networks[name] = network

        containers: dict[str, _ContainerSpec] = {}
        for name, spec in containers_spec.items():
            path = f"containers.{name}"
            if not self.name(path, name, "container", MAX_CONTAINER_NAME):
                continue
            container = self.container(path, name, spec, state)
            if container is not None:
                containers[name] = container

        # the default network exists when declared or when some container is on it
        uses_default = any(e.network == DEFAULT_NETWORK for c in containers.values() for e in c.endpoints)
        if DEFAULT_NETWORK not in known_networks and uses_default:
            networks[DEFAULT_NETWORK] = self.default_network(state)
            known_networks.add(DEFAULT_NETWORK)

        self.check_overlaps(networks)
        self.check_shared_namespaces(containers)
        self.check_endpoints(containers, networks, known_networks)
        self.check_dns_names(containers)
        addresses = self.allocate(containers, networks)
        model = self.build(containers, networks, addresses)
        self.check_kernel_names(networks, model)
        self.check_macs(model)
        self.check_ports(model)
        if self.errors:
            raise TopologyError(self.errors)
        return Topology(
            networks={n: networks[n] for n in sorted(networks)},
            containers={c: model[c] for c in sorted(model)},
            state=state,
            prune=prune,
        )

    # --- networks ----------------------------------------------------------------------------------------

    def default_network(self, topology_state: str) -> Network:
        return Network(
            name=DEFAULT_NETWORK,
            driver="bridge",
            subnet=DEFAULT_SUBNET,
            gateway=next(DEFAULT_SUBNET.hosts()),
            ip_range=DEFAULT_SUBNET,
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

    def network(self, path: str, name: str, value: object, topology_state: str) -> Network | None:
        spec = self.mapping(path, value)
        if spec is None:
            return None
        before = len(self.errors)
        self.unknown_keys(path, spec, _NETWORK_KEYS)
        driver = self.choice(f"{path}.driver", spec.get("driver", "bridge"), DRIVERS)
        state = self.choice(f"{path}.state", spec.get("state", "present"), STATES)

        subnet = None
        if "subnet" in spec:
            subnet = self.ipv4_network(f"{path}.subnet", spec["subnet"])
            if subnet is not None and subnet.prefixlen > 30:
                self.error(f"{path}.subnet {subnet} is too small: a network needs a prefix of /30 or shorter")
                subnet = None
        elif name == DEFAULT_NETWORK:
            subnet = DEFAULT_SUBNET
        else:
            self.error(f"{path}.subnet is required for driver {driver or 'bridge'}")

        gateway = None
        if subnet is not None:
            gateway = next(subnet.hosts())
            if "gateway" in spec:
                gateway = self.ipv4_address(f"{path}.gateway", spec["gateway"])
                if gateway is not None and gateway not in subnet:
                    self.error(f"{path}.gateway {gateway} is outside subnet {subnet}")
                elif gateway in (subnet.network_address, subnet.broadcast_address):
                    self.error(f"{path}.gateway {gateway} is the network or broadcast address of {subnet}")

        ip_range = subnet
        if "ip_range" in spec:
            ip_range = self.ipv4_network(f"{path}.ip_range", spec["ip_range"])
            if ip_range is not None and subnet is not None and not ip_range.subnet_of(subnet):
                self.error(f"{path}.ip_range {ip_range} is outside subnet {subnet}")

        internal = self.boolean(f"{path}.internal", spec.get("internal", False))
        icc = self.boolean(f"{path}.icc", spec.get("icc", True))
        masquerade = not internal
        if "masquerade" in spec:
            masquerade = self.boolean(f"{path}.masquerade", spec["masquerade"])
            if masquerade and internal:
                self.error(f"{path}.masquerade true contradicts internal: true (an internal network has no egress)")

        mtu = OVERLAY_MTU if driver == "overlay" else DEFAULT_MTU
        if "mtu" in spec:
            mtu = self.integer(f"{path}.mtu", spec["mtu"], 68, 65535)

        bridge_name = None
        if driver in BRIDGED_DRIVERS:
            bridge_name = bridge_name_for(name)
            if "bridge_name" in spec:
                bridge_name = self.interface_name(f"{path}.bridge_name", spec["bridge_name"])
                if bridge_name is not None and bridge_name.startswith(HOST_VETH_PREFIX):
                    self.error(
                        f"{path}.bridge_name {bridge_name} starts with {HOST_VETH_PREFIX!r}, "
                        "which is reserved for container veths"
                    )
        elif "bridge_name" in spec and driver is not None:
            self.error(f"{path}.bridge_name applies to drivers bridge and overlay only, not {driver}")

        vni = None
        if driver == "overlay":
            vni = self.integer(f"{path}.vni", spec["vni"], 1, VNI_MAX) if "vni" in spec else default_vni(name)
        elif "vni" in spec and driver is not None:
            self.error(f"{path}.vni applies to driver overlay only, not {driver}")

        parent = mode = None
        if driver in ("macvlan", "ipvlan"):
            if "parent" in spec:
                parent = self.interface_name(f"{path}.parent", spec["parent"])
            else:
                self.error(f"{path}.parent is required for driver {driver} (the host interface to attach to)")
            modes = MACVLAN_MODES if driver == "macvlan" else IPVLAN_MODES
            mode = self.choice(f"{path}.mode", spec.get("mode", modes[0]), modes)
        elif driver is not None:
            for key in ("parent", "mode"):
                if key in spec:
                    self.error(f"{path}.{key} applies to drivers macvlan and ipvlan only, not {driver}")

        if len(self.errors) > before:
            return None
        if subnet is None or gateway is None or ip_range is None or not driver or not state:
            raise AssertionError(f"{path}: incomplete network passed validation")
        return Network(
            name=name,
            driver=driver,
            subnet=subnet,
            gateway=gateway,
            ip_range=ip_range,
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

    def check_overlaps(self, networks: dict[str, Network]) -> None:
        present = [n for n in networks.values() if n.state == "present"]
        for index, later in enumerate(present):
            for earlier in present[:index]:
                if later.vni is not None and later.vni == earlier.vni:
                    self.error(f"networks.{later.name}.vni {later.vni} is also the vni of networks.{earlier.name}")
                if later.subnet.overlaps(earlier.subnet):
                    self.error(
                        f"networks.{later.name}.subnet {later.subnet} overlaps "
                        f"networks.{earlier.name}.subnet {earlier.subnet}"
                    )

    # --- containers --------------------------------------------------------------------------------------

    def container(self, path: str, name: str, value: object, topology_state: str) -> _ContainerSpec | None:
        spec = self.mapping(path, value)
        if spec is None:
            return None
        self.unknown_keys(path, spec, _CONTAINER_KEYS)
        container = _ContainerSpec(name=name, path=path)
        state = self.choice(f"{path}.state", spec.get("state", "present"), STATES) or "present"
        container.state = "absent" if topology_state == "absent" else state

        if spec.get("host") is not None:
            container.host = self.string(f"{path}.host", spec["host"])

        mode = spec.get("network_mode", "bridge")
        if isinstance(mode, str) and mode.startswith("container:"):
            target = mode.split(":", 1)[1]
            container.network_mode = mode
            if not _NAME_RE.fullmatch(target):
                self.error(f"{path}.network_mode {_show(mode)} does not name a container (container:NAME)")
            elif target == name:
                self.error(f"{path}.network_mode {mode} names the container itself")
            else:
                container.shares_with = target
        else:
            checked = self.choice(f"{path}.network_mode", mode, ("bridge", "none", "host", "container:NAME"))
            container.network_mode = checked if checked in ("bridge", "none", "host") else "bridge"
        own_namespace = container.network_mode in ("bridge", "none")

        if "hostname" in spec:
            hostname = self.string(f"{path}.hostname", spec["hostname"])
            if hostname is not None and (len(hostname) > MAX_HOSTNAME or not _HOSTNAME_RE.fullmatch(hostname)):
                self.error(f"{path}.hostname {_show(hostname)} is not a valid hostname (at most {MAX_HOSTNAME})")
            elif hostname is not None and not own_namespace:
                self.error(f"{path}.hostname is not allowed with network_mode {container.network_mode}")
            container.hostname = hostname
        if own_namespace and container.hostname is None:
            container.hostname = name

        networks = spec.get("networks")
        if networks is not None and networks != {} and networks != []:
            if container.network_mode != "bridge":
                self.error(f"{path}.networks is not allowed with network_mode {container.network_mode}")
            else:
                container.endpoints = self.endpoint_specs(f"{path}.networks", networks)
        elif container.network_mode == "bridge":
            container.endpoints = [_EndpointSpec(network=DEFAULT_NETWORK, path=f"{path}.networks.{DEFAULT_NETWORK}")]

        if spec.get("ports") not in (None, []):
            if container.network_mode != "bridge":
                self.error(f"{path}.ports is not allowed with network_mode {container.network_mode}")
            else:
                container.ports = self.ports(f"{path}.ports", spec["ports"])

        for key in ("extra_hosts", "dns", "dns_search", "dns_options"):
            if spec.get(key) not in (None, [], {}) and not own_namespace:
                self.error(f"{path}.{key} is not allowed with network_mode {container.network_mode}")
        if spec.get("extra_hosts") is not None:
            container.extra_hosts = self.extra_hosts(f"{path}.extra_hosts", spec["extra_hosts"])
        for index, server in enumerate(self.string_list(f"{path}.dns", spec.get("dns")) or []):
            if self.ip_address(f"{path}.dns[{index}]", server) is not None:
                container.dns.append(server)
        for index, domain in enumerate(self.string_list(f"{path}.dns_search", spec.get("dns_search")) or []):
            if self.dns_name(f"{path}.dns_search[{index}]", domain, "search domain") is not None:
                container.dns_search.append(domain)
        for index, option in enumerate(self.string_list(f"{path}.dns_options", spec.get("dns_options")) or []):
            if not _DNS_OPTION_RE.fullmatch(option):
                self.error(f"{path}.dns_options[{index}] {_show(option)} is not a resolver option (e.g. ndots:1)")
            else:
                container.dns_options.append(option)
        return container

    def endpoint_specs(self, path: str, value: object) -> list[_EndpointSpec]:
        if _is_list(value):
            endpoints: list[_EndpointSpec] = []
            for index, item in enumerate(value):
                name = self.string(f"{path}[{index}]", item)
                if name is None:
                    continue
                if any(e.network == name for e in endpoints):
                    self.error(f"{path}[{index}] network {name} is listed twice")
                    continue
                endpoints.append(_EndpointSpec(network=name, path=f"{path}.{name}"))
            return endpoints
        spec = self.mapping(path, value)
        if spec is None:
            return []
        endpoints = []
        for network, body in spec.items():
            endpoint_path = f"{path}.{network}"
            body = self.mapping(endpoint_path, body)
            if body is None or not isinstance(network, str):
                continue
            self.unknown_keys(endpoint_path, body, _ENDPOINT_KEYS)
            endpoint = _EndpointSpec(network=network, path=endpoint_path)
            if body.get("ipv4_address") is not None:
                endpoint.address = self.ipv4_address(f"{endpoint_path}.ipv4_address", body["ipv4_address"])
            if body.get("mac_address") is not None:
                mac = self.string(f"{endpoint_path}.mac_address", body["mac_address"])
                if mac is not None and not _MAC_RE.fullmatch(mac):
                    self.error(f"{endpoint_path}.mac_address {_show(mac)} is not of the form 02:42:ac:1c:00:0a")
                elif mac is not None and int(mac[:2], 16) & 1:
                    self.error(f"{endpoint_path}.mac_address {mac} is a multicast address")
                elif mac is not None:
                    endpoint.mac_address = mac.lower()
            aliases = []
            for index, alias in enumerate(self.string_list(f"{endpoint_path}.aliases", body.get("aliases")) or []):
                if self.dns_name(f"{endpoint_path}.aliases[{index}]", alias, "DNS name") is not None:
                    aliases.append(alias)
            endpoint.aliases = tuple(aliases)
            if body.get("interface_name") is not None:
                endpoint.interface_name = self.interface_name(f"{endpoint_path}.interface_name", body["interface_name"])
            endpoints.append(endpoint)
        return endpoints

    def extra_hosts(self, path: str, value: object) -> list[tuple[str, str]]:
        pairs: list[tuple[str, str, str]] = []  # (path, name, address)
        if isinstance(value, Mapping):
            pairs = [(f"{path}.{k}", k, v) for k, v in value.items()]
        elif _is_list(value):
            for index, item in enumerate(value):
                entry = self.string(f"{path}[{index}]", item)
                if entry is None:
                    continue
                parts = re.split(r"[:=]", entry, maxsplit=1)  # compose also takes NAME=ADDRESS
                if len(parts) != 2:
                    self.error(f"{path}[{index}] {_show(entry)} must be NAME:ADDRESS")
                    continue
                pairs.append((f"{path}[{index}]", parts[0], parts[1]))
        else:
            self.error(
                f"{path} {_show(value, quoted=True)} must be a list of NAME:ADDRESS or a mapping, "
                f"not {_type_name(value)}"
            )
        result = []
        for entry_path, host, address in pairs:
            ok = self.dns_name(entry_path, host, "host name") is not None
            if address != "host-gateway":
                address = address.strip("[]") if isinstance(address, str) else address
                ok = self.ip_address(entry_path, address) is not None and ok
            if ok:
                result.append((host, address))
        return result

    # --- ports ---------------------------------------------------------------------------------------------

    def port_range(self, path: str, text: str, what: str) -> tuple[int, int] | None:
        match = _PORT_RANGE_RE.fullmatch(text)
        if not match:
            self.error(f"{path} {what} {_show(text)} is not a port or a range like 9000-9002")
            return None
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) else first
        if not (1 <= first <= 65535 and 1 <= last <= 65535):
            self.error(f"{path} {what} {text} is out of range (1-65535)")
            return None
        if last < first:
            self.error(f"{path} {what} {text} is a range that ends before it starts")
            return None
        return first, last

    def port_value(self, path: str, value: object, what: str) -> tuple[int, int] | None:
        """A port or range in the long form: an integer or a string such as "9000-9002"."""
        if isinstance(value, bool) or not isinstance(value, int | str):
            self.error(f"{path} {_show(value, quoted=True)} must be a port or a range, not {_type_name(value)}")
            return None
        return self.port_range(path, str(value), what)

    def ports(self, path: str, value: object) -> list[PortMapping]:
        if not _is_list(value):
            self.error(f"{path} {_show(value, quoted=True)} must be a list, not {_type_name(value)}")
            return []
        result = []
        for index, item in enumerate(value):
            mapping = self.port(f"{path}[{index}]", item)
            if mapping is not None:
                result.append(mapping)
        return result

    def port(self, path: str, item: object) -> PortMapping | None:
        before = len(self.errors)
        host_ip_text: str | None = None
        published: tuple[int, int] | None = None
        target: tuple[int, int] | None = None
        protocol = "tcp"
        if isinstance(item, int) and not isinstance(item, bool):
            item = str(item)
        if isinstance(item, str):
            spec = item
            body, slash, proto = item.partition("/")
            if slash:
                protocol = proto.lower()
            if body.startswith("["):  # [IPv6]:hport:cport
                address, bracket, rest = body[1:].partition("]")
                if not bracket or not rest.startswith(":"):
                    self.error(f"{path} {_show(item)} is not a port spec [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]")
                    return None
                host_ip_text, parts = address, rest[1:].split(":")
                if len(parts) != 2:
                    self.error(f"{path} {_show(item)} is not a port spec [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]")
                    return None
                host_part, container_part = parts
            else:
                parts = body.split(":")
                if len(parts) == 1:
                    host_part, container_part = "", parts[0]
                elif len(parts) == 2:
                    host_part, container_part = parts
                    if not host_part:
                        self.error(f"{path} {_show(item)} has an empty host port")
                elif len(parts) == 3:
                    host_ip_text, host_part, container_part = parts
                else:
                    self.error(f"{path} {_show(item)} is not a port spec [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]")
                    return None
            if host_part:
                published = self.port_range(path, host_part, "host port")
            target = self.port_range(path, container_part, "container port")
        elif isinstance(item, Mapping):
            spec = ", ".join(f"{k}={v}" for k, v in item.items())
            self.unknown_keys(path, item, _PORT_KEYS)
            if "target" not in item:
                self.error(f"{path}.target is required")
            else:
                target = self.port_value(f"{path}.target", item["target"], "container port")
            if item.get("published") not in (None, ""):
                published = self.port_value(f"{path}.published", item["published"], "host port")
            if item.get("host_ip") is not None:
                host_ip_text = item["host_ip"] if isinstance(item["host_ip"], str) else None
                if host_ip_text is None:
                    self.error(f"{path}.host_ip {_show(item['host_ip'])} must be an IP address string")
            proto = item.get("protocol", "tcp")
            protocol = proto.lower() if isinstance(proto, str) else proto
        else:
            self.error(
                f"{path} {_show(item, quoted=True)} must be a port spec string or a mapping, not {_type_name(item)}"
            )
            return None

        if protocol not in PROTOCOLS:
            self.error(f"{path} {_show(spec)}: protocol {_show(protocol)} must be one of {', '.join(PROTOCOLS)}")
        host_ip = None
        if host_ip_text:
            try:
                host_ip = ipaddress.ip_address(host_ip_text)
            except ValueError:
                self.error(f"{path} {_show(spec)}: host address {_show(host_ip_text)} is not an IP address")
        if published and target and published[1] - published[0] != target[1] - target[0]:
            self.error(f"{path} {_show(spec)}: host ports and container ports must be ranges of the same length")
        if len(self.errors) > before or target is None:
            return None
        return PortMapping(host_ip=host_ip, published=published, target=target, protocol=protocol, spec=spec)

    # --- cross references --------------------------------------------------------------------------------

    def check_dns_names(self, containers: dict[str, _ContainerSpec]) -> None:
        """Every name the resolver will serve must be a DNS name it can load (labels of at most 63 characters,
        none empty, at most 253 in all), ``NAME.NETWORK`` included: otherwise the state file would be written and
        then refused as a whole by the resolver, after the containers' files changed."""
        for container in containers.values():
            own = [(container.path, container.name)]
            hostname = container.hostname
            valid_hostname = hostname is not None and len(hostname) <= MAX_HOSTNAME and _HOSTNAME_RE.fullmatch(hostname)
            if valid_hostname and hostname != container.name:
                own.append((f"{container.path}.hostname", hostname))
            for path, name in own:
                problem = _dns_name_problem(name)
                if problem is not None:
                    self.error(f"{path} {_show(name)} cannot be served by the embedded DNS: {problem}")
            for endpoint in container.endpoints:
                names = [name for _path, name in own] + list(endpoint.aliases)
                for name in dict.fromkeys(n.rstrip(".") for n in names):
                    if _dns_name_problem(name) is not None:
                        continue  # reported above
                    qualified = f"{name}.{endpoint.network}"
                    problem = _dns_name_problem(qualified)
                    if problem is not None:
                        self.error(
                            f"{endpoint.path}: {_show(qualified)} (NAME.NETWORK, served by the embedded DNS) {problem}"
                        )

    def check_shared_namespaces(self, containers: dict[str, _ContainerSpec]) -> None:
        reported_cycles: set[frozenset[str]] = set()
        for container in containers.values():
            target_name = container.shares_with
            if target_name is None:
                continue
            target = containers.get(target_name)
            if target is None:
                hint = difflib.get_close_matches(target_name, list(containers), n=1)
                suggestion = f" (did you mean container:{hint[0]}?)" if hint else ""
                self.error(
                    f"{container.path}.network_mode {container.network_mode}: no container {target_name}{suggestion}"
                )
                continue
            chain = [container.name]
            current: _ContainerSpec | None = target
            while current is not None and current.shares_with is not None and current.name not in chain:
                chain.append(current.name)
                current = containers.get(current.shares_with)
            if current is not None and current.name in chain:
                cycle = chain[chain.index(current.name) :]
                if frozenset(cycle) not in reported_cycles:
                    reported_cycles.add(frozenset(cycle))
                    loop = " -> ".join([*cycle, cycle[0]])
                    first = containers[cycle[0]]
                    self.error(f"{first.path}.network_mode {first.network_mode} forms a cycle: {loop}")
                continue
            if target.host != container.host:
                self.error(
                    f"{container.path}.network_mode {container.network_mode}: {container.name} lives on "
                    f"{container.host or 'every host'} but {target.name} on {target.host or 'every host'}"
                )
            if container.state == "present" and target.state == "absent":
                self.error(f"{container.path}.network_mode {container.network_mode}: {target.name} is absent")

    def check_endpoints(
        self, containers: dict[str, _ContainerSpec], networks: dict[str, Network], known: set[str]
    ) -> None:
        fixed: dict[tuple[str, IPv4Address], str] = {}
        for container in containers.values():
            names: dict[str, str] = {}
            for endpoint in container.endpoints:
                if endpoint.network not in known:
                    hint = difflib.get_close_matches(endpoint.network, sorted(known), n=1)
                    suggestion = f" (did you mean {hint[0]}?)" if hint else ""
                    self.error(f"{endpoint.path}: no network {endpoint.network}{suggestion}")
                    continue
                if endpoint.interface_name is not None:
                    if endpoint.interface_name in names:
                        self.error(
                            f"{endpoint.path}.interface_name {endpoint.interface_name} is also the interface of "
                            f"{names[endpoint.interface_name]}"
                        )
                    names[endpoint.interface_name] = endpoint.path
                network = networks.get(endpoint.network)
                if network is None:
                    continue  # the network has errors of its own
                if container.state == "present" and network.state == "absent":
                    self.error(f"{endpoint.path}: network {network.name} is absent but {container.name} is present")
                address = endpoint.address
                if address is None:
                    continue
                address_path = f"{endpoint.path}.ipv4_address {address}"
                if address not in network.subnet:
                    self.error(f"{address_path} is outside subnet {network.subnet} of network {network.name}")
                elif address == network.gateway:
                    self.error(f"{address_path} is the gateway of network {network.name}")
                elif address in (network.subnet.network_address, network.subnet.broadcast_address):
                    self.error(f"{address_path} is the network or broadcast address of {network.subnet}")
                elif (network.name, address) in fixed:
                    self.error(f"{address_path} is also the address of {fixed[(network.name, address)]}")
                else:
                    fixed[(network.name, address)] = endpoint.path
                    continue
                endpoint.address = None  # reported: keep it out of allocation and later checks

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
                    self.error(
                        f"networks.{network.name} has {count + everywhere} endpoints on {where}, "
                        f"more than a bridge holds ({MAX_BRIDGE_PORTS})"
                    )

    def allocate(
        self, containers: dict[str, _ContainerSpec], networks: dict[str, Network]
    ) -> dict[tuple[str, str], IPv4Address]:
        """Addresses for every endpoint, fixed or allocated, keyed by (container, network).

        Absent containers keep their place, so marking one absent moves nobody."""
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
                self.error(f"networks.{network.name}.ip_range {network.ip_range} is too small: {exc}")
                continue
            for container_name, address in allocated.items():
                addresses[(container_name, network.name)] = address
        return addresses

    def build(
        self,
        containers: dict[str, _ContainerSpec],
        networks: dict[str, Network],
        addresses: dict[tuple[str, str], IPv4Address],
    ) -> dict[str, Container]:
        model: dict[str, Container] = {}
        for container in containers.values():
            endpoints = []
            pinned = {e.interface_name for e in container.endpoints if e.interface_name}
            counter = 0
            gateway_given = False
            for spec in container.endpoints:
                network = networks.get(spec.network)
                address = addresses.get((container.name, spec.network))
                if network is None or address is None:
                    continue
                interface = spec.interface_name
                if interface is None:
                    while f"eth{counter}" in pinned:
                        counter += 1
                    interface, counter = f"eth{counter}", counter + 1
                default_route = not gateway_given and not network.internal
                gateway_given = gateway_given or default_route
                endpoints.append(
                    Endpoint(
                        container=container.name,
                        network=network.name,
                        interface=interface,
                        host_interface=host_veth_name(container.name, network.name) if network.bridged else None,
                        address=address,
                        prefixlen=network.subnet.prefixlen,
                        gateway=network.gateway,
                        mac_address=spec.mac_address or mac_for(address),
                        aliases=spec.aliases,
                        address_fixed=spec.address is not None,
                        default_route=default_route,
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

    # --- checks on the built model -------------------------------------------------------------------------

    def check_kernel_names(self, networks: dict[str, Network], model: dict[str, Container]) -> None:
        """Host-side interface names must be unique on a host; checked across the whole topology so that
        moving a container to another host can never create a clash."""
        owners: dict[str, str] = {}

        def claim(name: str, owner: str, path: str) -> None:
            if name in owners:
                self.error(f"{path} {name} is also the interface name of {owners[name]}; rename one of them")
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

    def check_macs(self, model: dict[str, Container]) -> None:
        seen: dict[tuple[str, str], str] = {}
        for container in model.values():
            for endpoint in container.endpoints:
                key = (endpoint.network, endpoint.mac_address)
                path = f"containers.{container.name}.networks.{endpoint.network}"
                if key in seen:
                    self.error(
                        f"{path}.mac_address {endpoint.mac_address} is also the MAC of {seen[key]} "
                        f"on network {endpoint.network}"
                    )
                else:
                    seen[key] = path

    def check_ports(self, model: dict[str, Container]) -> None:
        claimed: list[tuple[Container, PortMapping]] = []
        for container in model.values():
            if container.state != "present":
                continue
            if container.ports and not any(e.default_route for e in container.endpoints):
                networks = ", ".join(e.network for e in container.endpoints) or "none"
                self.error(
                    f"containers.{container.name}.ports: publishing needs a network with ingress, and every network "
                    f"of this container is internal ({networks})"
                )
            for index, mapping in enumerate(container.ports):
                if mapping.published is None:
                    continue
                for other, taken in claimed:
                    if not _same_host(container, other) or not _ports_clash(mapping, taken):
                        continue
                    self.error(
                        f"containers.{container.name}.ports[{index}] {_show(mapping.spec)} publishes "
                        f"{_describe(mapping)}, already published by containers.{other.name} "
                        f"({_show(taken.spec)})"
                    )
                    break
                claimed.append((container, mapping))


def _same_host(a: Container, b: Container) -> bool:
    return a.host is None or b.host is None or a.host == b.host


def _ports_clash(a: PortMapping, b: PortMapping) -> bool:
    if a.protocol != b.protocol or a.published is None or b.published is None:
        return False
    if a.published[1] < b.published[0] or b.published[1] < a.published[0]:
        return False
    wildcard = a.host_ip is None or b.host_ip is None or a.host_ip.is_unspecified or b.host_ip.is_unspecified
    return wildcard or a.host_ip == b.host_ip


def _describe(mapping: PortMapping) -> str:
    if mapping.published is None:
        raise AssertionError("an ephemeral port has no published range to describe")
    first, last = mapping.published
    ports = str(first) if first == last else f"{first}-{last}"
    return f"{mapping.host_ip or '0.0.0.0'}:{ports}/{mapping.protocol}"
