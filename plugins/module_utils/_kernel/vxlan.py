# This file is private to the wharf.network collection: its API may change at any time.
"""VXLAN devices of overlay networks, with a data plane programmed statically from the inventory.

Every host knows every peer (VTEP) and every remote container, so nothing is learnt and nothing is
flooded to find it: the device has `nolearning` (a forged source cannot teach it where a MAC lives)
and `proxy` (ARP requests for remote containers are answered on this host from the neighbour table,
never sent across). What is programmed, per device:

- one all-zeros FDB entry per remote peer: broadcast and unknown traffic is copied to each of them
  (head-end replication, no multicast underlay needed);
- one static FDB entry per remote container MAC, pointing at the VTEP of its host;
- one permanent neighbour entry (IP -> MAC) per remote container, which `proxy` answers ARP from.

And on the bridge the device is a port of (`master`): the port does not learn (`nolearning` covers the
device's own table only; without this a remote container sending with a local container's MAC would move
that MAC to the VXLAN port and hijack local traffic), and one static bridge FDB entry per remote container
MAC points at the VXLAN port, so known unicast is forwarded there instead of flooded to every port.

Entries the list no longer names (a host or a container that left) are removed in the same run, so
nothing stale lingers (moby#52661: stale ARP/FDB entries after a container moved).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.wharf.network.plugins.module_utils._engine import validate as check
from ansible_collections.wharf.network.plugins.module_utils._engine.errors import ValidationError
from ansible_collections.wharf.network.plugins.module_utils._engine.observed import (
    InterfaceFacts,
    LinkObservation,
    field_diff,
    plan_removals,
    prune,
    split_links,
)
from ansible_collections.wharf.network.plugins.module_utils._engine.plan import Plan
from ansible_collections.wharf.network.plugins.module_utils._engine.resource import NamespacedSpec, Resource
from ansible_collections.wharf.network.plugins.module_utils._kernel import namespace as nl
from ansible_collections.wharf.network.plugins.module_utils._kernel.limits import VNI_MAX, VXLAN_OVERHEAD, VXLAN_PORT
from ansible_collections.wharf.network.plugins.module_utils._kernel.link import OWNER_MARK, Link, dump_links
from ansible_collections.wharf.network.plugins.module_utils._kernel.rtnl import (
    AF_BRIDGE,
    NTF_SELF,
    NUD_NOARP,
    NUD_PERMANENT,
    Rtnl,
)

KIND = "vxlan"
ZERO_MAC = "00:00:00:00:00:00"


@dataclass(frozen=True)
class RemoteEndpoint:
    """A container on another host: its MAC and address on this network, and its host's VTEP."""

    mac: str
    address: str
    peer: str


@dataclass
class VxlanSpec(NamespacedSpec):
    """One desired VXLAN device with its whole forwarding table."""

    name: str
    namespace: str | None
    vni: int
    local: str
    port: int = VXLAN_PORT
    master: str | None = None
    mtu: int | None = None
    peers: list[str] = field(default_factory=list)
    remotes: list[RemoteEndpoint] = field(default_factory=list)

    def fdb(self) -> list[str]:
        """Wanted FDB entries as `MAC dst VTEP`, sorted (how they are compared and shown)."""
        entries = {f"{ZERO_MAC} dst {peer}" for peer in self.peers}
        entries |= {f"{r.mac} dst {r.peer}" for r in self.remotes}
        return sorted(entries)

    def neighbours(self) -> list[str]:
        """Wanted neighbour entries as `IP lladdr MAC`, sorted."""
        return sorted({f"{r.address} lladdr {r.mac}" for r in self.remotes})

    def bridge_fdb(self) -> list[str]:
        """Wanted static entries of the bridge on the VXLAN port (remote MACs), sorted; none without a bridge."""
        return sorted({r.mac for r in self.remotes}) if self.master else []


def _ipv4(value: object) -> str | None:
    """The address in canonical text, or None when `value` is not an IPv4 address."""
    try:
        return str(ipaddress.IPv4Address(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def parse_items(items: list[dict[str, Any]], default_namespace: str | None) -> list[VxlanSpec]:
    """Check every item (all problems at once, as ValidationError) and turn them into specs."""
    errors: list[str] = []
    specs: list[VxlanSpec] = []
    for index, item in enumerate(items):
        path = f"vxlans[{index}]"
        local = _ipv4(item.get("local"))
        if local is None:
            errors.append(f"{path}.local: {item.get('local')!r} is not an IPv4 address (the underlay address)")
        vni = item.get("vni")
        if isinstance(vni, bool) or not isinstance(vni, int) or not 1 <= vni <= VNI_MAX:
            errors.append(f"{path}.vni: {vni!r} must be an integer between 1 and {VNI_MAX}")
        port = item.get("port")
        port = VXLAN_PORT if port is None else port  # 0 is refused, not read as "the default"
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            errors.append(f"{path}.port: {port!r} must be a UDP port between 1 and 65535")
        peers: list[str] = []
        for pindex, peer in enumerate(item.get("peers") or []):
            address = _ipv4(peer)
            if address is None:
                errors.append(f"{path}.peers[{pindex}]: {peer!r} is not an IPv4 address")
            elif address == local:
                errors.append(f"{path}.peers[{pindex}]: {address} is this host's own local address")
            elif address in peers:
                errors.append(f"{path}.peers[{pindex}]: {address} is listed twice")
            else:
                peers.append(address)
        remotes: list[RemoteEndpoint] = []
        seen_macs: dict[str, str] = {}
        seen_addresses: dict[str, str] = {}
        for rindex, remote in enumerate(item.get("remotes") or []):
            rpath = f"{path}.remotes[{rindex}]"
            remote = remote if isinstance(remote, dict) else {}
            mac = remote.get("mac")
            address = _ipv4(remote.get("address"))
            peer = _ipv4(remote.get("peer"))
            problems = [check.mac_address(f"{rpath}.mac", mac) if mac is not None else f"{rpath}.mac is required"]
            if address is None:
                problems.append(f"{rpath}.address: {remote.get('address')!r} is not an IPv4 address")
            if peer is None:
                problems.append(f"{rpath}.peer: {remote.get('peer')!r} is not an IPv4 address")
            elif peer not in peers:
                problems.append(f"{rpath}.peer: {peer} is not one of {path}.peers")
            problems = [p for p in problems if p]
            if not problems:
                mac = mac.lower()
                if mac in seen_macs:
                    problems.append(f"{rpath}.mac: {mac} is also the MAC of {seen_macs[mac]}")
                if address in seen_addresses:
                    problems.append(f"{rpath}.address: {address} is also at {seen_addresses[address]}")
            if problems:
                errors.extend(problems)
                continue
            seen_macs[mac] = seen_addresses[address] = rpath
            remotes.append(RemoteEndpoint(mac, address, peer))
        spec = VxlanSpec(
            name=item.get("name") or "",
            namespace=item.get("namespace") or default_namespace,
            vni=vni if isinstance(vni, int) else 0,
            local=local or "",
            port=port if isinstance(port, int) else VXLAN_PORT,
            master=item.get("master"),
            mtu=item.get("mtu"),
            peers=peers,
            remotes=remotes,
        )
        problems = [
            check.interface_name(f"{path}.name", spec.name),
            check.namespace_name(f"{path}.namespace", spec.namespace),
            check.mtu(f"{path}.mtu", spec.mtu),
            check.interface_name(f"{path}.master", spec.master) if spec.master else None,
        ]
        errors.extend(p for p in problems if p)
        specs.append(spec)
    errors.extend(check.duplicates("vxlans", "name", [(s.namespace, s.name) for s in specs]))
    errors.extend(check.duplicates("vxlans", "vni", [(s.namespace, str(s.vni)) for s in specs]))
    if errors:
        raise ValidationError(errors)
    return specs


@dataclass(frozen=True)
class VxlanFacts(InterfaceFacts):
    """A VXLAN device as the kernel holds it: its identity, its bridge (`master`, a name) and underlay (the link
    it sends on, a name), and its tables as sorted text (`fdb`: `MAC dst VTEP`, `neighbours`: `IP lladdr MAC`,
    `bridge_fdb`: the bridge's static MACs on the port). The tables are read for the collection's devices only
    (another's is refused before they matter). `port_learning` is None when the device is no bridge port."""

    vni: int | None
    local: str | None
    port: int | None
    underlay: str | None
    learning: bool | None
    proxy: bool | None
    master: str | None
    port_learning: bool | None
    mtu: int
    up: bool
    fdb: tuple[str, ...] = ()
    neighbours: tuple[str, ...] = ()
    bridge_fdb: tuple[str, ...] = ()


@dataclass(frozen=True)
class UnderlayFacts:
    """The link holding an IPv4 address, as far as a VXLAN device on it needs it: its index (the device sends
    on it) and its MTU (the device's must fit inside)."""

    name: str
    index: int
    mtu: int


@dataclass(frozen=True)
class VxlanObservation(LinkObservation[VxlanFacts]):
    """One namespace's VXLAN devices, the names of its other links, and which link holds each IPv4 address
    (the underlay a device's `local` must be on; read only when a device is wanted there)."""

    address_owner: Mapping[str, UnderlayFacts] = field(default_factory=dict)


def address_owners(rtnl: Rtnl, links: dict[str, Link]) -> dict[str, UnderlayFacts]:
    """Which link holds each IPv4 address of the namespace (the underlay a VXLAN device's `local` must be on)."""
    by_index = {link.index: UnderlayFacts(link.name, link.index, link.mtu) for link in links.values()}
    return {a.address: by_index[a.index] for a in rtnl.addrs() if a.family == socket.AF_INET and a.index in by_index}


def observe(rtnl: Rtnl, namespace: str | None, addresses: bool = True) -> VxlanObservation:
    """One namespace's links and the entries of wharf's VXLAN devices. Only the link dump when there is nothing
    to create and no device of ours (the converge of a host without an overlay: it must stay that cheap)."""
    links = dump_links(rtnl)
    ours = {link.index for link in links.values() if link.kind == KIND and link.owned}
    address_owner = address_owners(rtnl, links) if addresses else {}
    fdb: dict[int, list[str]] = {index: [] for index in ours}
    neighbours: dict[int, list[str]] = {index: [] for index in ours}
    bridge_fdb: dict[int, list[str]] = {index: [] for index in ours}
    if ours:
        for entry in rtnl.neighbours(AF_BRIDGE):
            if entry.index not in ours:
                continue
            if entry.master is None and entry.flags & NTF_SELF and entry.address:
                # the device's own table: entries with a destination VTEP
                fdb[entry.index].append(f"{entry.mac} dst {entry.address}")
            elif entry.master is not None and entry.state == NUD_NOARP:
                # the bridge's static entries on the port (its learnt ones are not NOARP, its local ones PERMANENT)
                bridge_fdb[entry.index].append(entry.mac)
        for entry in rtnl.neighbours(socket.AF_INET):
            if entry.index in ours and entry.state & NUD_PERMANENT and entry.address:
                neighbours[entry.index].append(f"{entry.address} lladdr {entry.mac}")
    names = {link.index: link.name for link in links.values()}

    def facts_of(link: Link) -> VxlanFacts:
        master = names.get(link.master or 0)
        return VxlanFacts(
            name=link.name,
            namespace=namespace,
            index=link.index,
            owned=link.owned,
            vni=link.info.get("vni"),
            local=link.info.get("local"),
            port=link.info.get("port"),
            underlay=names.get(link.info.get("link") or 0),
            learning=link.info.get("learning"),
            proxy=link.info.get("proxy"),
            master=master,
            port_learning=link.info.get("port_learning") if master else None,
            mtu=link.mtu,
            up=link.up,
            fdb=tuple(sorted(fdb.get(link.index, []))),
            neighbours=tuple(sorted(neighbours.get(link.index, []))),
            bridge_fdb=tuple(sorted(bridge_fdb.get(link.index, []))),
        )

    split = split_links(namespace, links.values(), KIND, facts_of)
    return VxlanObservation(namespace, split.facts, split.others, address_owner)


def _fields(facts: VxlanFacts) -> dict[str, Any]:
    """The observed device in the terms of `_wanted_fields` and the spec's tables (compared key by key, shown
    in the diff)."""
    return {
        "vni": facts.vni,
        "local": facts.local,
        "port": facts.port,
        "underlay": facts.underlay,
        "learning": facts.learning,
        "proxy": facts.proxy,
        "master": facts.master,
        "port_learning": facts.port_learning,
        "mtu": facts.mtu,
        "up": facts.up,
        "fdb": list(facts.fdb),
        "neighbours": list(facts.neighbours),
        "bridge_fdb": list(facts.bridge_fdb),
    }


def _wanted_fields(spec: VxlanSpec, underlay: str | None) -> dict[str, Any]:
    """The device a spec asks for; fields it leaves open (no `mtu`, no `master`) are not compared."""
    wanted = {
        "vni": spec.vni,
        "local": spec.local,
        "port": spec.port,
        "underlay": underlay,
        "learning": False,
        "proxy": True,
        "master": spec.master,
        "port_learning": False if spec.master else None,
        "mtu": spec.mtu,
        "up": True,
    }
    return {k: v for k, v in wanted.items() if v is not None}


# a device whose identity differs is made again: the kernel cannot change these on a live device
_IMMUTABLE = ("vni", "local", "port", "underlay", "learning", "proxy")


def underlay_problems(
    spec: VxlanSpec, owners: Mapping[str, UnderlayFacts], local_field: str, mtu_field: str
) -> list[str]:
    """Why `spec` cannot be made on this namespace's underlay (its `local` address is on no interface, or its MTU
    plus the VXLAN overhead exceeds the underlay's), worded with the caller's field names."""
    underlay = owners.get(spec.local)
    if underlay is None:
        return [
            f"{local_field}: {spec.local} is not an address of any interface in namespace"
            f" {nl.ns_label(spec.namespace)} (the underlay address must be configured first)"
        ]
    if spec.mtu is not None and spec.mtu > underlay.mtu - VXLAN_OVERHEAD:
        return [
            f"{mtu_field}: {spec.mtu} does not fit the underlay: {underlay.name} has mtu {underlay.mtu},"
            f" and VXLAN adds {VXLAN_OVERHEAD} bytes, so at most {underlay.mtu - VXLAN_OVERHEAD}"
        ]
    return []


class VxlanResource(Resource):
    """observe / plan / apply for VXLAN devices and their FDB and neighbour entries."""

    parse = staticmethod(parse_items)

    def validate(self, local_field: Any, mtu_field: Any) -> None:
        """Refuse, before any step of a converge changes anything, devices the underlay cannot carry. Only
        observes (links and addresses of each namespace involved); `local_field(spec)` and `mtu_field(spec)` name
        the user's fields in the errors (the inventory's underlay address, the network's MTU)."""
        if self.state != "present" or not self.specs:
            return
        errors: list[str] = []
        owners: dict[str | None, dict[str, UnderlayFacts]] = {}
        for spec in self.specs:
            if spec.namespace not in owners:
                rtnl = self.sockets.get(spec.namespace)
                owners[spec.namespace] = address_owners(rtnl, dump_links(rtnl))
            errors.extend(underlay_problems(spec, owners[spec.namespace], local_field(spec), mtu_field(spec)))
        if errors:
            raise ValidationError(errors)

    def plan(self) -> Plan:
        plan = Plan()
        errors: list[str] = []
        observed: dict[str | None, VxlanObservation] = {}
        namespaces = {s.namespace for s in self.specs}
        if self.exclusive:
            namespaces.add(None)
        wanted_in = {s.namespace for s in self.specs if self.state == "present"}
        for namespace in sorted(namespaces, key=lambda n: n or ""):
            if namespace is not None and not nl.netns_exists(namespace):
                continue
            observed[namespace] = observe(self.sockets.get(namespace), namespace, addresses=namespace in wanted_in)
        for index, spec in enumerate(self.specs):
            have = observed.get(spec.namespace)
            if have is None:
                if self.state == "present":
                    errors.append(f"vxlans[{index}]: namespace '{spec.namespace}' does not exist")
                continue
            refused = have.guard(f"vxlans[{index}].name", spec.name, self.state, "is not a VXLAN device")
            if refused:
                errors.append(refused)
                continue
            facts = have.facts.get(spec.name)
            if self.state == "absent":
                if facts is not None:
                    plan_removals(plan, KIND, [facts], _fields, self._remover)
                continue
            problems = underlay_problems(spec, have.address_owner, f"vxlans[{index}].local", f"vxlans[{index}].mtu")
            if problems:
                errors.extend(problems)
                continue
            underlay = have.address_owner[spec.local]
            if spec.master is not None and not have.holds(spec.master) and not self.check_mode:
                errors.append(f"vxlans[{index}].master: bridge '{spec.master}' does not exist")
                continue
            self._plan_present(plan, spec, facts, underlay)
        if self.exclusive and self.state == "present":
            wanted = {(s.namespace, s.name) for s in self.specs}
            for have in observed.values():
                prune(plan, KIND, have.facts.values(), wanted, lambda f: (f.namespace, f.name), _fields, self._remover)
        if errors:
            raise ValidationError(errors)
        return plan

    def _remover(self, facts: VxlanFacts) -> Any:
        return self._deleter(facts.namespace, facts)

    def _plan_present(self, plan: Plan, spec: VxlanSpec, facts: VxlanFacts | None, underlay: UnderlayFacts) -> None:
        wanted = {
            **_wanted_fields(spec, underlay.name),
            "fdb": spec.fdb(),
            "neighbours": spec.neighbours(),
            "bridge_fdb": spec.bridge_fdb(),
        }
        if facts is None:
            plan.add(KIND, spec.label, "create", None, wanted, lambda: self._create(spec, underlay))
            return
        before, differs = field_diff(_fields(facts), wanted)
        if not differs:
            return
        if any(k in differs for k in _IMMUTABLE):
            # made again with its whole table; the old entries go with the old device
            def recreate() -> None:
                self.sockets.get(spec.namespace).del_link(facts.index)
                self._create(spec, underlay)

            plan.add(KIND, spec.label, "update", before, differs, recreate)
            return
        plan.add(KIND, spec.label, "update", before, differs, lambda: self._update(spec, facts, differs))

    def _create(self, spec: VxlanSpec, underlay: UnderlayFacts) -> None:
        """Make the device, mark it ours at once (on its own: a later failing request must not leave an unowned
        device that every run then refuses), then enslave it, program its tables, and bring it up last."""
        rtnl = self.sockets.get(spec.namespace)
        data = Rtnl.vxlan_data(spec.vni, spec.local, underlay.index, spec.port, learning=False, proxy=True)
        rtnl.new_link(KIND, False, Rtnl.link_attrs(name=spec.name, mtu=spec.mtu), data)
        created = rtnl.link(name=spec.name)
        rtnl.set_link(created.index, attrs=Rtnl.link_attrs(alias=OWNER_MARK))
        if spec.master:
            rtnl.set_link(created.index, attrs=Rtnl.link_attrs(master=rtnl.link(name=spec.master).index))
            rtnl.set_link(created.index, port_data=Rtnl.bridge_port_learning(False))
        self._entries(rtnl, created.index, [], spec.fdb(), [], spec.neighbours())
        self._bridge_entries(rtnl, created.index, [], spec.bridge_fdb())
        rtnl.set_link(created.index, up=True)

    def _update(self, spec: VxlanSpec, link: VxlanFacts, differs: dict[str, Any]) -> None:
        """Change what differs in place: MTU, bridge, port learning, the entries, the state."""
        rtnl = self.sockets.get(spec.namespace)
        master = rtnl.link(name=spec.master).index if "master" in differs and spec.master else None
        if "mtu" in differs or master is not None:
            rtnl.set_link(link.index, attrs=Rtnl.link_attrs(mtu=differs.get("mtu"), master=master))
        bridge_have = list(link.bridge_fdb)
        if master is not None:
            bridge_have = []  # a new bridge has none of the old one's entries
        if spec.master and ("port_learning" in differs or master is not None):
            rtnl.set_link(link.index, port_data=Rtnl.bridge_port_learning(False))
        self._entries(rtnl, link.index, list(link.fdb), spec.fdb(), list(link.neighbours), spec.neighbours())
        self._bridge_entries(rtnl, link.index, bridge_have, spec.bridge_fdb())
        if "up" in differs:
            rtnl.set_link(link.index, up=True)

    @staticmethod
    def _bridge_entries(rtnl: Rtnl, index: int, have: list[str], want: list[str]) -> None:
        """The bridge's static entries on the VXLAN port: gone ones removed, new ones added (replacing a MAC
        the bridge had on another port: the remote container is where the inventory says)."""
        for mac in sorted(set(have) - set(want)):
            rtnl.del_bridge_fdb(index, mac)
        for mac in sorted(set(want) - set(have)):
            rtnl.add_bridge_fdb(index, mac)

    @staticmethod
    def _entries(rtnl: Rtnl, index: int, fdb_have: list[str], fdb_want: list[str], neigh_have: list[str],
                 neigh_want: list[str]) -> None:  # fmt: skip
        """Remove what is no longer wanted first (a moved MAC must not keep its old VTEP), then add."""
        for entry in sorted(set(neigh_have) - set(neigh_want)):
            rtnl.del_neighbour(index, entry.split()[0])
        for entry in sorted(set(fdb_have) - set(fdb_want)):
            mac, _dst, remote = entry.split()
            rtnl.del_fdb(index, mac, remote)
        for entry in sorted(set(fdb_want) - set(fdb_have)):
            mac, _dst, remote = entry.split()
            rtnl.add_fdb(index, mac, remote)
        for entry in sorted(set(neigh_want) - set(neigh_have)):
            address, _lladdr, mac = entry.split()
            rtnl.set_neighbour(index, address, mac)

    def report(self) -> list[dict[str, Any]]:
        """The devices as asked for, with the tables a successful run leaves them (what the module returns)."""
        return [
            {
                "name": s.name,
                "namespace": s.namespace,
                "vni": s.vni,
                "local": s.local,
                "port": s.port,
                "master": s.master,
                "mtu": s.mtu,
                "fdb": s.fdb(),
                "neighbours": s.neighbours(),
                "bridge_fdb": s.bridge_fdb(),
                "state": self.state,
            }
            for s in self.specs
        ]
