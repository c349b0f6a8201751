# This file is private to the wharf.network collection: its API may change at any time.
"""Linux bridges inside a namespace: the `network` of the bridge driver."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
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
from ansible_collections.wharf.network.plugins.module_utils._kernel import sysctl
from ansible_collections.wharf.network.plugins.module_utils._kernel.link import (
    OWNER_MARK,
    Link,
    dump_links,
)
from ansible_collections.wharf.network.plugins.module_utils._kernel.rtnl import (
    IFLA_BR_STP_STATE,
    IFLA_BR_VLAN_FILTERING,
    Rtnl,
    attr_u8,
    attr_u32,
)

KIND = "bridge"


@dataclass
class BridgeSpec(NamespacedSpec):
    """One desired bridge; a field left None is not managed."""

    name: str
    namespace: str | None
    mtu: int | None = None
    mac: str | None = None
    stp: bool | None = None
    vlan_filtering: bool | None = None
    up: bool = True
    forwarding: bool | None = None


def parse_items(items: list[dict[str, Any]], default_namespace: str | None) -> list[BridgeSpec]:
    errors: list[str] = []
    specs: list[BridgeSpec] = []
    for index, item in enumerate(items):
        path = f"bridges[{index}]"
        spec = BridgeSpec(
            name=item.get("name") or "",
            namespace=item.get("namespace") or default_namespace,
            mtu=item.get("mtu"),
            mac=item.get("mac"),
            stp=item.get("stp"),
            vlan_filtering=item.get("vlan_filtering"),
            up=item.get("up", True) if item.get("up") is not None else True,
            forwarding=item.get("forwarding"),
        )
        problems = [
            check.interface_name(f"{path}.name", spec.name),
            check.namespace_name(f"{path}.namespace", spec.namespace),
            check.mtu(f"{path}.mtu", spec.mtu),
            check.mac_address(f"{path}.mac", spec.mac),
        ]
        errors.extend(p for p in problems if p)
        specs.append(spec)
    errors.extend(check.duplicates("bridges", "name", [(s.namespace, s.name) for s in specs]))
    if errors:
        raise ValidationError(errors)
    return specs


def forwarding_key(name: str) -> str:
    """IPv4 forwarding of packets that enter through this interface (checked per ingress device)."""
    return f"net/ipv4/conf/{name}/forwarding"  # slashed: a bridge name may hold a dot


def read_forwarding(namespace: str | None, name: str) -> bool | None:
    value = sysctl.read(namespace, [forwarding_key(name)])[forwarding_key(name)]
    return None if value is None else value == "1"


def write_forwarding(namespace: str | None, name: str, on: bool) -> None:
    sysctl.write(namespace, {forwarding_key(name): "1" if on else "0"})


@dataclass(frozen=True)
class BridgeFacts(InterfaceFacts):
    """A bridge as the kernel holds it. `stp` is None when the kernel reports no bridge data; `forwarding` is
    None when it was not read (only bridges whose forwarding a spec manages are read: a /proc file each)."""

    mtu: int
    mac: str
    stp: bool | None
    vlan_filtering: bool | None
    up: bool
    forwarding: bool | None = None


def observe(rtnl: Rtnl, namespace: str | None, forwarding_of: Collection[str] = ()) -> LinkObservation[BridgeFacts]:
    """The bridges of one namespace (one link dump), with the forwarding of those named in `forwarding_of`."""

    def facts_of(link: Link) -> BridgeFacts:
        forwarding = read_forwarding(namespace, link.name) if link.name in forwarding_of else None
        return BridgeFacts(
            name=link.name,
            namespace=namespace,
            index=link.index,
            owned=link.owned,
            mtu=link.mtu,
            mac=link.mac,
            stp=link.info.get("stp"),
            vlan_filtering=link.info.get("vlan_filtering"),
            up=link.up,
            forwarding=forwarding,
        )

    return split_links(namespace, dump_links(rtnl).values(), KIND, facts_of)


def _fields(facts: BridgeFacts) -> dict[str, Any]:
    """The facts in the terms of `_wanted_fields` (compared key by key, shown in the diff)."""
    return {
        "mtu": facts.mtu,
        "mac": facts.mac,
        "stp": facts.stp,
        "vlan_filtering": facts.vlan_filtering,
        "up": facts.up,
        "forwarding": facts.forwarding,
    }


def _wanted_fields(spec: BridgeSpec) -> dict[str, Any]:
    wanted = {
        "mtu": spec.mtu,
        "mac": spec.mac,
        "stp": spec.stp,
        "vlan_filtering": spec.vlan_filtering,
        "up": spec.up,
        "forwarding": spec.forwarding,
    }
    return {k: (v.lower() if k == "mac" and v else v) for k, v in wanted.items() if v is not None}


class BridgeResource(Resource):
    """observe / plan / apply for bridges."""

    parse = staticmethod(parse_items)

    def plan(self) -> Plan:
        plan = Plan()
        errors: list[str] = []
        observed: dict[str | None, LinkObservation[BridgeFacts]] = {}
        forwarding_of: dict[str | None, set[str]] = {}
        if self.state == "present":
            for spec in self.specs:
                if spec.forwarding is not None:
                    forwarding_of.setdefault(spec.namespace, set()).add(spec.name)
        for index, spec in enumerate(self.specs):
            if spec.namespace is not None and not nl.netns_exists(spec.namespace):
                if self.state == "present" and self.check_mode:
                    # an earlier task of this check run would have made it: predict what follows
                    self._plan_present(plan, spec, None)
                elif self.state == "present":
                    errors.append(f"bridge '{spec.name}': namespace '{spec.namespace}' does not exist")
                continue
            if spec.namespace not in observed:
                rtnl = self.sockets.get(spec.namespace)
                observed[spec.namespace] = observe(rtnl, spec.namespace, forwarding_of.get(spec.namespace, ()))
            have = observed[spec.namespace]
            refused = have.guard(f"bridges[{index}].name", spec.name, self.state, "is not a bridge")
            if refused:
                errors.append(refused)
                continue
            facts = have.facts.get(spec.name)
            if self.state == "present":
                self._plan_present(plan, spec, facts)
            elif facts is not None:
                plan_removals(plan, KIND, [facts], _fields, self._remover)
        if self.exclusive and self.state == "present":
            wanted = {(s.namespace, s.name) for s in self.specs}
            for have in observed.values():
                prune(plan, KIND, have.facts.values(), wanted, lambda f: (f.namespace, f.name), _fields, self._remover)
        if errors:
            raise ValidationError(errors)
        return plan

    def _remover(self, facts: BridgeFacts) -> Any:
        return self._deleter(facts.namespace, facts)

    def _plan_present(self, plan: Plan, spec: BridgeSpec, facts: BridgeFacts | None) -> None:
        wanted = _wanted_fields(spec)
        if facts is None:
            plan.add(KIND, spec.label, "create", None, wanted, lambda: self._create(spec))
            return
        before, differs = field_diff(_fields(facts), wanted)
        if differs:
            plan.add(KIND, spec.label, "update", before, differs, lambda: self._update(spec.namespace, facts, differs))

    def _create(self, spec: BridgeSpec) -> None:
        rtnl = self.sockets.get(spec.namespace)
        data = b""
        if spec.stp is not None:
            data += attr_u32(IFLA_BR_STP_STATE, int(spec.stp))
        if spec.vlan_filtering:
            data += attr_u8(IFLA_BR_VLAN_FILTERING, 1)
        rtnl.new_link("bridge", spec.up, Rtnl.link_attrs(name=spec.name, mac=spec.mac), data)
        # the kernel ignores an alias in a create request: mark it right after, by name. The MTU goes in
        # the same later request: only an MTU set on an existing bridge counts as the user's, otherwise
        # the bridge follows its ports' MTU and drifts
        rtnl.set_link(0, attrs=Rtnl.link_attrs(name=spec.name, alias=OWNER_MARK, mtu=spec.mtu))
        if spec.forwarding is not None:
            write_forwarding(spec.namespace, spec.name, spec.forwarding)

    def _update(self, namespace: str | None, link: BridgeFacts, differs: dict[str, Any]) -> None:
        rtnl = self.sockets.get(namespace)
        if "mtu" in differs or "mac" in differs:
            rtnl.set_link(link.index, attrs=Rtnl.link_attrs(mtu=differs.get("mtu"), mac=differs.get("mac")))
        data = b""
        if "stp" in differs:
            data += attr_u32(IFLA_BR_STP_STATE, int(differs["stp"]))
        if "vlan_filtering" in differs:
            data += attr_u8(IFLA_BR_VLAN_FILTERING, int(differs["vlan_filtering"]))
        if data:
            rtnl.set_link(link.index, info=("bridge", data))
        if "up" in differs:
            rtnl.set_link(link.index, up=bool(differs["up"]))
        if "forwarding" in differs:
            write_forwarding(namespace, link.name, bool(differs["forwarding"]))

    def report(self) -> list[dict[str, Any]]:
        return [
            {"name": s.name, "namespace": s.namespace, **_wanted_fields(s), "state": self.state} for s in self.specs
        ]
