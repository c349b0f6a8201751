# This file is private to the wharf.network collection: its API may change at any time.
"""veth pairs: a container's endpoint, one end on the host (often on a bridge), one inside.

The peer is created directly in its target namespace (IFLA_NET_NS_FD in the same request), never
created on the host and moved: no moment where a half-built endpoint sits in the wrong place,
and one netlink request per pair.
"""

from __future__ import annotations

import os
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
    split_links,
    unwanted,
)
from ansible_collections.wharf.network.plugins.module_utils._engine.plan import Plan
from ansible_collections.wharf.network.plugins.module_utils._engine.resource import NamespacedSpec, Resource
from ansible_collections.wharf.network.plugins.module_utils._kernel import namespace as nl
from ansible_collections.wharf.network.plugins.module_utils._kernel.link import (
    OWNER_MARK,
    Link,
    dump_links,
)
from ansible_collections.wharf.network.plugins.module_utils._kernel.rtnl import Rtnl

KIND = "veth"


@dataclass
class VethSpec(NamespacedSpec):
    """One desired pair; None fields are not managed."""

    name: str
    namespace: str | None
    peer: str
    peer_namespace: str | None
    mtu: int | None = None
    mac: str | None = None
    peer_mac: str | None = None
    master: str | None = None
    hairpin: bool | None = None
    up: bool = True


def parse_items(items: list[dict[str, Any]], default_namespace: str | None) -> list[VethSpec]:
    errors: list[str] = []
    specs: list[VethSpec] = []
    for index, item in enumerate(items):
        path = f"veths[{index}]"
        namespace = item.get("namespace") or default_namespace
        spec = VethSpec(
            name=item.get("name") or "",
            namespace=namespace,
            peer=item.get("peer") or "",
            peer_namespace=item.get("peer_namespace") or namespace,
            mtu=item.get("mtu"),
            mac=item.get("mac"),
            peer_mac=item.get("peer_mac"),
            master=item.get("master"),
            hairpin=item.get("hairpin"),
            up=True if item.get("up") is None else bool(item.get("up")),
        )
        problems = [
            check.interface_name(f"{path}.name", spec.name),
            check.interface_name(f"{path}.peer", spec.peer),
            check.namespace_name(f"{path}.namespace", spec.namespace),
            check.namespace_name(f"{path}.peer_namespace", spec.peer_namespace),
            check.mtu(f"{path}.mtu", spec.mtu),
            check.mac_address(f"{path}.mac", spec.mac),
            check.mac_address(f"{path}.peer_mac", spec.peer_mac),
            check.interface_name(f"{path}.master", spec.master) if spec.master else None,
        ]
        if spec.hairpin is not None and not spec.master:
            problems.append(f"{path}.hairpin applies to a veth with a bridge master")
        if spec.namespace == spec.peer_namespace and spec.name == spec.peer:
            problems.append(f"{path}: name and peer are both '{spec.name}' in one namespace")
        errors.extend(p for p in problems if p)
        specs.append(spec)
    ends = [(s.namespace, s.name) for s in specs] + [(s.peer_namespace, s.peer) for s in specs]
    errors.extend(check.duplicates("veths", "interface", ends))
    if errors:
        raise ValidationError(errors)
    return specs


@dataclass(frozen=True)
class VethFacts(InterfaceFacts):
    """One end of a veth pair as the kernel holds it. `master` is its bridge's name (None: no bridge), `hairpin`
    its port's hairpin mode (None when it is no bridge port); `peer_index` is the other end's index in the
    other end's namespace, `link_netnsid` the id of that namespace as seen from this one (None: the same)."""

    mtu: int
    mac: str
    up: bool
    master: str | None
    hairpin: bool | None
    peer_index: int | None
    link_netnsid: int | None


@dataclass(frozen=True)
class VethObservation(LinkObservation[VethFacts]):
    """One namespace's veth ends, the kinds of its other links, and the index of every link by name (a name a
    peer would take, a bridge to enslave an end to)."""

    indexes: Mapping[str, int] = field(default_factory=dict)


def observe(rtnl: Rtnl, namespace: str | None) -> VethObservation:
    """The veth ends of one namespace and the names its links hold (one link dump)."""
    links = dump_links(rtnl)
    names = {link.index: link.name for link in links.values()}

    def facts_of(link: Link) -> VethFacts:
        master = None if link.master is None else names.get(link.master)
        return VethFacts(
            name=link.name,
            namespace=namespace,
            index=link.index,
            owned=link.owned,
            mtu=link.mtu,
            mac=link.mac,
            up=link.up,
            master=master,
            hairpin=link.info.get("hairpin", False) if master else None,
            peer_index=link.peer_index,
            link_netnsid=link.link_netnsid,
        )

    split = split_links(namespace, links.values(), KIND, facts_of)
    return VethObservation(namespace, split.facts, split.others, {link.name: link.index for link in links.values()})


def _fields(end: VethFacts, peer: VethFacts | None) -> dict[str, Any]:
    """The pair as observed in the terms of `_wanted` (compared key by key, shown in the diff)."""
    return {
        "peer": peer.name if peer else None,
        "mtu": end.mtu,
        "peer_mtu": peer.mtu if peer else None,
        "mac": end.mac,
        "peer_mac": peer.mac if peer else None,
        "master": end.master,
        "hairpin": end.hairpin,
        "up": end.up and (peer.up if peer else False),
    }


def _removed_fields(end: VethFacts, peer: VethFacts | None = None) -> dict[str, Any]:
    """What a removal's diff shows of the pair: its bridge left out (a removal never compares it)."""
    return {**_fields(end, peer), "master": None, "hairpin": None}


def _wanted(spec: VethSpec) -> dict[str, Any]:
    wanted: dict[str, Any] = {"peer": spec.peer, "up": spec.up}
    if spec.master is not None:
        # "" asks for no master at all; None leaves the master alone
        wanted["master"] = spec.master or None
    if spec.hairpin is not None:
        wanted["hairpin"] = spec.hairpin
    if spec.mtu is not None:
        wanted["mtu"] = spec.mtu
        wanted["peer_mtu"] = spec.mtu
    if spec.mac is not None:
        wanted["mac"] = spec.mac.lower()
    if spec.peer_mac is not None:
        wanted["peer_mac"] = spec.peer_mac.lower()
    return wanted


class VethResource(Resource):
    """observe / plan / apply for veth pairs."""

    parse = staticmethod(parse_items)

    def __init__(
        self,
        sockets: nl.NamespaceSockets,
        items: list[dict[str, Any]],
        state: str,
        exclusive: bool,
        default_namespace: str | None,
        exclusive_namespaces: list[str] | None = None,
        keep_peer_names: bool = False,
    ):
        super().__init__(sockets, items, state, exclusive, default_namespace)
        self.exclusive_namespaces = exclusive_namespaces
        self.keep_peer_names = keep_peer_names
        # set by the converge: namespaces an earlier step removes, by their id in the host namespace; their
        # endpoints go with them when the kernel frees them, so they are not planned as removals here
        self.vanishing_nsids: set[int] = set()
        self.actual_peer_names: dict[tuple[str | None, str], str] = {}
        self._observed: dict[str | None, VethObservation] = {}
        self._netns_fds: dict[str, int] = {}

    def observed(self, namespace: str | None) -> VethObservation:
        """The namespace's observation, made once per run (on first use)."""
        if namespace not in self._observed:
            self._observed[namespace] = observe(self.sockets.get(namespace), namespace)
        return self._observed[namespace]

    def _find_peer(self, spec: VethSpec, end: VethFacts) -> VethFacts | None:
        """The other end of `end` if it lives in the wanted peer namespace, whatever its name.

        Found by index, both ways (its IFLA_LINK is our index and ours is its), so a peer that
        only carries another name is recognised and renamed rather than the pair rebuilt.
        """
        if spec.peer_namespace is not None and not nl.netns_exists(spec.peer_namespace):
            return None
        for peer in self.observed(spec.peer_namespace).facts.values():
            # indexes are per namespace and often equal (2, 3…) in fresh ones: the owner mark keeps a
            # foreign pair that happens to match from being taken for ours
            if peer.index == end.peer_index and peer.peer_index == end.index and peer.owned:
                return peer
        return None

    def plan(self) -> Plan:
        errors: list[str] = []
        predicted = Plan()  # check mode: pairs whose namespaces earlier tasks would have made
        matched: list[tuple[int, VethSpec, VethFacts | None, VethFacts | None]] = []
        keep: set[tuple[str | None, int]] = set()
        for index, spec in enumerate(self.specs):
            path = f"veths[{index}]"
            missing = [
                (role, ns)
                for role, ns in (("namespace", spec.namespace), ("peer namespace", spec.peer_namespace))
                if ns is not None and not nl.netns_exists(ns)
            ]
            if missing:
                if self.state == "present" and self.check_mode:
                    self._plan_present(predicted, spec, None, None)
                elif self.state == "present":
                    errors.extend(f"veth '{spec.name}': {role} '{ns}' does not exist" for role, ns in missing)
                continue
            have = self.observed(spec.namespace)
            refused = have.guard(f"{path}.name", spec.name, self.state, "is not a veth")
            if refused:
                errors.append(refused)
                continue
            end = have.facts.get(spec.name)
            peer = self._find_peer(spec, end) if end is not None else None
            if end is not None:
                keep.add((spec.namespace, end.index))
            if peer is not None:
                keep.add((spec.peer_namespace, peer.index))
            if self.state == "present" and spec.master:
                master_kind = KIND if spec.master in have.facts else have.others.get(spec.master)
                if not have.holds(spec.master) and self.check_mode:
                    pass  # the bridge task before this one would have made it
                elif not have.holds(spec.master) or master_kind != "bridge":
                    problem = (
                        "does not exist"
                        if not have.holds(spec.master)
                        else f"is a {master_kind or 'plain'} link, not a bridge"
                    )
                    errors.append(
                        f"{path}.master: bridge '{spec.master}' in namespace {nl.ns_label(spec.namespace)} {problem}"
                    )
                    continue
            matched.append((index, spec, end, peer))

        plan = Plan()
        pruned: set[tuple[str | None, int]] = set()
        # peers that this run renames: their current names are free to take (renames run first)
        moving = {
            (spec.peer_namespace, peer.index)
            for _i, spec, _end, peer in matched
            if peer is not None and peer.name != spec.peer and self.state == "present"
        }
        if self.exclusive and self.state == "present":
            pruned = self._plan_prune(plan, keep)
        if self.keep_peer_names and self.state == "present":
            self._assign_peer_names(matched, pruned)
            moving = set()
        for index, spec, end, peer in matched:
            if self.state == "absent":
                if end is not None:
                    plan_removals(plan, KIND, [end], lambda e, p=peer: _removed_fields(e, p), self._remover)
                continue
            if peer is None or peer.name != spec.peer:
                taken = self.observed(spec.peer_namespace).indexes.get(spec.peer)
                free = (spec.peer_namespace, taken) in pruned | moving if taken is not None else True
                if taken is not None and not free and (peer is None or taken != peer.index):
                    errors.append(
                        f"veths[{index}].peer: interface '{spec.peer}' already exists in namespace "
                        f"{nl.ns_label(spec.peer_namespace)}"
                    )
                    continue
            self._plan_present(plan, spec, end, peer)
        if errors:
            raise ValidationError(errors)
        plan.extend(predicted)
        # removals, then updates (renames), then creations: a name is freed before it is taken
        order = {"delete": 0, "update": 1, "create": 2}
        plan.changes.sort(key=lambda change: order[change.action])
        return plan

    def _assign_peer_names(
        self, matched: list[tuple[int, VethSpec, VethFacts | None, VethFacts | None]], pruned: set
    ) -> None:
        """Docker keeps a container's interface names on connect and disconnect: an existing pair keeps its
        peer's name, and a new pair takes its wanted name if free, else the lowest free ethN. What differs
        from the items is recorded in `actual_peer_names` ((namespace, wanted) -> actual)."""
        held: dict[str | None, set[str]] = {}

        def taken(namespace: str | None) -> set[str]:
            if namespace not in held:
                held[namespace] = {
                    name for name, index in self.observed(namespace).indexes.items() if (namespace, index) not in pruned
                }
            return held[namespace]

        for _index, spec, _end, peer in matched:
            if peer is not None and peer.name != spec.peer:
                self.actual_peer_names[(spec.peer_namespace, spec.peer)] = peer.name
                spec.peer = peer.name
        for _index, spec, _end, peer in matched:
            if peer is not None:
                continue
            names = taken(spec.peer_namespace)
            if spec.peer in names:
                number = 0
                while f"eth{number}" in names:
                    number += 1
                self.actual_peer_names[(spec.peer_namespace, spec.peer)] = f"eth{number}"
                spec.peer = f"eth{number}"
            names.add(spec.peer)

    def _remover(self, end: VethFacts) -> Any:
        return self._deleter(end.namespace, end)

    def _plan_present(self, plan: Plan, spec: VethSpec, end: VethFacts | None, peer: VethFacts | None) -> None:
        wanted = _wanted(spec)
        if end is None:
            plan.add(KIND, spec.label, "create", None, wanted, lambda: self._create(spec))
            return
        have = _fields(end, peer)
        if peer is None:
            # the other end is gone or elsewhere: a veth cannot be re-paired, so rebuild it
            def replace() -> None:
                self.sockets.get(spec.namespace).del_link(end.index)
                self._create(spec)

            plan.add(KIND, spec.label, "update", have, wanted, replace)
            return
        before, differs = field_diff(have, wanted)
        if differs:  # a "peer" difference is a rename of the other end, addresses and routes kept
            plan.add(KIND, spec.label, "update", before, differs, lambda: self._update(spec, end, peer, differs))

    def _plan_prune(self, plan: Plan, keep: set[tuple[str | None, int]]) -> set[tuple[str | None, int]]:
        """Plan removal of owned veths in scope that no item matched; returns the ends removed.

        Scope: `exclusive_namespaces` when given, else every namespace the items touch. Both ends
        of one pair can be in scope; the pair is removed once.
        """
        if self.exclusive_namespaces is not None:
            scope: list[str | None] = [ns for ns in self.exclusive_namespaces if nl.netns_exists(ns)]
        else:
            touched = {s.namespace for s in self.specs} | {s.peer_namespace for s in self.specs}
            scope = sorted((ns for ns in touched if ns is None or nl.netns_exists(ns)), key=lambda n: n or "")
        removed: set[tuple[str | None, int]] = set()
        candidates: list[VethFacts] = []
        for namespace in scope:
            vanishing = self._vanishing_nsids(namespace)
            for end in unwanted(self.observed(namespace).facts.values(), keep, lambda f: (f.namespace, f.index)):
                if end.link_netnsid is not None and end.link_netnsid in vanishing:
                    continue  # its container is being removed, and its endpoints with it
                candidates.append(end)
        ends: list[VethFacts] = []
        for end in candidates:
            if (end.namespace, end.index) in removed:
                continue
            removed.add((end.namespace, end.index))
            for other in candidates:  # the other end, when it is in scope too
                if other.namespace != end.namespace and other.index == end.peer_index and other.peer_index == end.index:
                    removed.add((other.namespace, other.index))
            ends.append(end)
        plan_removals(plan, KIND, ends, _removed_fields, self._remover)
        return removed

    def _create(self, spec: VethSpec) -> None:
        rtnl = self.sockets.get(spec.namespace)
        netns_fd = None
        netns_pid = None
        if spec.peer_namespace != spec.namespace:
            if spec.peer_namespace is None:
                netns_pid = os.getpid()  # the module's own namespace has no name to open
            else:
                netns_fd = self._netns_fd(spec.peer_namespace)
        master = self.observed(spec.namespace).indexes[spec.master] if spec.master else None
        peer = Rtnl.link_attrs(name=spec.peer, mtu=spec.mtu, mac=spec.peer_mac, netns_fd=netns_fd, netns_pid=netns_pid)
        # the peer cannot come up inside the create request (veth_open answers ENOTCONN while the
        # pair is half-linked): it is brought up by name right after, from its own namespace
        rtnl.new_link(
            "veth",
            spec.up,
            Rtnl.link_attrs(name=spec.name, mtu=spec.mtu, mac=spec.mac, master=master),
            Rtnl.veth_peer(False, peer),
        )
        # the port's hairpin mode goes with the owner mark (a port setting is refused in the create request)
        hairpin = Rtnl.bridge_port_hairpin(True) if spec.hairpin and master else None
        rtnl.set_link(0, attrs=Rtnl.link_attrs(name=spec.name, alias=OWNER_MARK), port_data=hairpin)
        self.sockets.get(spec.peer_namespace).set_link(
            0, up=spec.up, attrs=Rtnl.link_attrs(name=spec.peer, alias=OWNER_MARK)
        )

    def _vanishing_nsids(self, namespace: str | None) -> set[int]:
        """Ids, as seen from the host namespace, of the namespaces an earlier step of this run removes."""
        return self.vanishing_nsids if namespace is None else set()

    def _netns_fd(self, namespace: str) -> int:
        if namespace not in self._netns_fds:
            self._netns_fds[namespace] = os.open(nl.netns_path(namespace), os.O_RDONLY | os.O_CLOEXEC)
        return self._netns_fds[namespace]

    def close(self) -> None:
        for fd in self._netns_fds.values():
            os.close(fd)
        self._netns_fds.clear()

    def _update(self, spec: VethSpec, end: VethFacts, peer: VethFacts, differs: dict[str, Any]) -> None:
        rtnl = self.sockets.get(spec.namespace)
        peer_rtnl = self.sockets.get(spec.peer_namespace)
        if "mtu" in differs or "mac" in differs:
            rtnl.set_link(end.index, attrs=Rtnl.link_attrs(mtu=differs.get("mtu"), mac=differs.get("mac")))
        if "peer_mtu" in differs or "peer_mac" in differs:
            peer_attrs = Rtnl.link_attrs(mtu=differs.get("peer_mtu"), mac=differs.get("peer_mac"))
            peer_rtnl.set_link(peer.index, attrs=peer_attrs)
        if "master" in differs:
            master = differs["master"]
            rtnl.set_link(
                end.index, attrs=Rtnl.link_attrs(master=self.observed(spec.namespace).indexes[master] if master else 0)
            )
        if spec.hairpin is not None and ("hairpin" in differs or "master" in differs):
            # a new master starts the port with hairpin off
            rtnl.set_link(end.index, port_data=Rtnl.bridge_port_hairpin(spec.hairpin))
        if "peer" in differs:
            blocker = peer_rtnl.link(name=differs["peer"])
            if blocker is not None and blocker.index != peer.index:
                # a swap: another peer of this run still holds the name; park it, its own update
                # renames it (by index) to its final name later in this run
                peer_rtnl.set_link(blocker.index, up=False)
                peer_rtnl.set_link(blocker.index, attrs=Rtnl.link_attrs(name=f"wharf-tmp{blocker.index}"))
            # the kernel renames only a link that is down
            peer_rtnl.set_link(peer.index, up=False)
            peer_rtnl.set_link(peer.index, attrs=Rtnl.link_attrs(name=differs["peer"]))
            if "up" not in differs and spec.up:
                peer_rtnl.set_link(peer.index, up=True)
        if "up" in differs:
            rtnl.set_link(end.index, up=bool(differs["up"]))
            peer_rtnl.set_link(peer.index, up=bool(differs["up"]))

    def report(self) -> list[dict[str, Any]]:
        return [
            {
                "name": s.name,
                "namespace": s.namespace,
                "peer_namespace": s.peer_namespace,
                **_wanted(s),
                "state": self.state,
            }
            for s in self.specs
        ]
