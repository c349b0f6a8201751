# This file is private to the wharf.network collection: its API may change at any time.
"""Named network namespaces (`/run/netns/NAME`): the container sandboxes.

A namespace the collection creates is marked by an empty file `/run/wharf/owned/netns/NAME`
(same lifetime as `/run/netns`: both are gone after a reboot), so removal and prune never
touch a namespace someone else made. A container's hostname lives in a UTS namespace of its
own, pinned like the network namespace at `/run/wharf/uts/NAME`, so it persists without a
process: `nsenter --uts=/run/wharf/uts/NAME --net=/run/netns/NAME hostname` prints it.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ansible_collections.wharf.network.plugins.module_utils._engine import validate as check
from ansible_collections.wharf.network.plugins.module_utils._engine.errors import ValidationError
from ansible_collections.wharf.network.plugins.module_utils._engine.observed import (
    field_diff,
    guard,
    plan_removals,
    prune,
)
from ansible_collections.wharf.network.plugins.module_utils._engine.plan import Plan
from ansible_collections.wharf.network.plugins.module_utils._engine.resource import Resource
from ansible_collections.wharf.network.plugins.module_utils._kernel import namespace as nl
from ansible_collections.wharf.network.plugins.module_utils._kernel import sysctl
from ansible_collections.wharf.network.plugins.module_utils._kernel.files import STATE_DIR
from ansible_collections.wharf.network.plugins.module_utils._kernel.rtnl import IFF_UP, Rtnl

KIND = "netns"


def owner_mark_path(name: str) -> str:
    return os.path.join(STATE_DIR, "owned", "netns", name)


def read_mark(name: str) -> tuple[int, str | None] | None:
    """(namespace inode, shared-with name or None) recorded when the collection made `name`, or None."""
    try:
        with open(owner_mark_path(name)) as handle:
            lines = handle.read().split("\n")
        return int(lines[0]), (lines[1] or None) if len(lines) > 1 else None
    except (OSError, ValueError):
        return None


def write_mark(name: str, share_with: str | None) -> None:
    """Record that the collection made `name`: the inode says which namespace, so a namespace someone else
    later creates under the same name is never taken for ours."""
    path = owner_mark_path(name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(f"{_inode(nl.netns_path(name))}\n{share_with or ''}\n")


def uts_path(name: str) -> str:
    return os.path.join(STATE_DIR, "uts", name)


@dataclass
class NamespaceSpec:
    """One desired namespace, from a module item."""

    name: str
    hostname: str | None = None
    sysctls: dict[str, str] = field(default_factory=dict)
    share_with: str | None = None


@dataclass(frozen=True)
class NetnsFacts:
    """A named namespace as the host holds it: whether the collection made it (its mark names this very
    namespace, by inode), and the other namespace it is a second name of (`shared_with`, as recorded then).
    What is inside is read only when asked and only for the collection's namespaces of their own: `loopback_up`
    is None when not read, `hostname` None when not read or never set, `sysctls` the keys asked for (a value of
    None: not readable)."""

    name: str
    owned: bool
    inode: int
    shared_with: str | None = None
    loopback_up: bool | None = None
    hostname: str | None = None
    sysctls: Mapping[str, str | None] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def label(self) -> str:
        return self.name


def _inode(path: str) -> int:
    try:
        return os.stat(path).st_ino
    except OSError:
        return 0


def _validate_hostname(path: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 64 or any(c.isspace() for c in value):
        return f"{path}: hostname {value!r} must be 1 to 64 characters without spaces"
    return None


def parse_items(items: list[dict[str, Any]]) -> list[NamespaceSpec]:
    errors: list[str] = []
    specs: list[NamespaceSpec] = []
    for index, item in enumerate(items):
        path = f"namespaces[{index}]"
        name = item.get("name")
        err = check.namespace_name(f"{path}.name", name) if name else f"{path}.name: is required"
        hostname = item.get("hostname")
        sysctls = item.get("sysctls") or {}
        share_with = item.get("share_with")
        problems = [err, _validate_hostname(f"{path}.hostname", hostname)]
        if share_with is not None:
            problems.append(check.namespace_name(f"{path}.share_with", share_with))
            if hostname is not None or sysctls:
                problems.append(
                    f"{path}: a namespace shared with '{share_with}' takes no hostname or sysctls of its own"
                )
            if share_with == name:
                problems.append(f"{path}.share_with: namespace '{name}' cannot share itself")
        for key in sysctls:
            if not str(key).startswith("net.") and not str(key).startswith("net/"):
                problems.append(
                    f"{path}.sysctls: '{key}' is not a per-namespace sysctl (only net.* keys live in a namespace)"
                )
        errors.extend(p for p in problems if p)
        specs.append(
            NamespaceSpec(
                name=str(name),
                hostname=hostname,
                sysctls={str(k): sysctl.normalise(v) for k, v in sysctls.items()},
                share_with=share_with,
            )
        )
    errors.extend(check.duplicates("namespaces", "name", [(s.name,) for s in specs]))
    if errors:
        raise ValidationError(errors)
    return specs


def _read_hostname(name: str) -> str | None:
    path = uts_path(name)
    if not os.path.exists(path):
        return None
    with nl.entered(path, nl.CLONE_NEWUTS):
        return socket.gethostname()


def _set_hostname(name: str, hostname: str) -> None:
    path = uts_path(name)
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        nl.create_namespace_file(path, nl.CLONE_NEWUTS, lambda: socket.sethostname(hostname))
        return
    with nl.entered(path, nl.CLONE_NEWUTS):
        socket.sethostname(hostname)


def observe(
    sockets: nl.NamespaceSockets,
    name: str,
    inside: bool = False,
    hostname: bool = False,
    sysctls: Collection[str] = (),
) -> NetnsFacts | None:
    """The namespace `name` (None when there is none). With `inside`, a namespace of its own that the collection
    made is also looked into: its loopback, with `hostname` its hostname, and the `sysctls` named."""
    if not nl.netns_exists(name):
        return None
    mark = read_mark(name)
    inode = _inode(nl.netns_path(name))
    owned = mark is not None and mark[0] == inode
    shared_with = mark[1] if mark else None
    if not inside or not owned or shared_with is not None:
        return NetnsFacts(name, owned, inode, shared_with)
    lo = sockets.get(name).link(index=1)
    return NetnsFacts(
        name=name,
        owned=owned,
        inode=inode,
        loopback_up=bool(lo is not None and lo.flags & IFF_UP),
        hostname=_read_hostname(name) if hostname else None,
        sysctls=MappingProxyType(sysctl.read(name, list(sysctls))),
    )


def _fields(facts: NetnsFacts) -> dict[str, Any]:
    """A namespace of its own as observed, in the terms of the spec (compared key by key, shown in the diff)."""
    return {
        "hostname": facts.hostname,
        "sysctls": dict(facts.sysctls),
        "loopback": "up" if facts.loopback_up else "down",
    }


def _removed_fields(facts: NetnsFacts) -> dict[str, Any]:
    """What a removal's diff shows: the hostname when it was read, else that the namespace exists."""
    return {"hostname": facts.hostname} if facts.hostname else {"exists": True}


class NetnsResource(Resource):
    """observe / plan / apply for named network namespaces."""

    parse = staticmethod(lambda items, _namespace: parse_items(items))

    def __init__(self, sockets: nl.NamespaceSockets, items: list[dict[str, Any]], state: str, exclusive: bool):
        super().__init__(sockets, items, state, exclusive)
        self._run_dir_ready = False

    def _observe(self, spec: NamespaceSpec) -> NetnsFacts | None:
        """The spec's namespace, with what is inside that the spec manages."""
        inside = spec.share_with is None
        return observe(self.sockets, spec.name, inside, spec.hostname is not None, spec.sysctls)

    def _observe_all(self) -> list[NetnsFacts]:
        """Every named namespace, not looked into (what a prune needs)."""
        return [facts for facts in (observe(self.sockets, name) for name in nl.list_netns()) if facts is not None]

    def names_to_remove(self) -> list[str]:
        """Namespaces this run removes (second names of another namespace excepted: they free nothing)."""
        if self.state == "absent":
            removed = [facts for facts in (observe(self.sockets, s.name) for s in self.specs) if facts and facts.owned]
        elif self.exclusive:
            removed = [facts for facts in self._observe_all() if facts.owned and facts.name not in self._wanted()]
        else:
            removed = []
        return [facts.name for facts in removed if facts.shared_with is None]

    def _wanted(self) -> set[str]:
        return {spec.name for spec in self.specs}

    def plan(self) -> Plan:
        plan = Plan()
        errors: list[str] = []
        created_here = {s.name for s in self.specs if s.share_with is None} if self.state == "present" else set()
        # namespaces that share another one come last, so their target exists when they are bound
        ordered = sorted(enumerate(self.specs), key=lambda pair: pair[1].share_with is not None)
        for index, spec in ordered:
            if (
                self.state == "present"
                and spec.share_with is not None
                and spec.share_with not in created_here
                and not nl.netns_exists(spec.share_with)
                and not self.check_mode
            ):
                errors.append(f"namespaces[{index}].share_with: namespace '{spec.share_with}' does not exist")
                continue
            have = self._observe(spec)
            subject = f"namespace '{spec.name}'"
            refused = None if have is None else guard(f"namespaces[{index}].name", subject, self.state, have.owned)
            if refused:
                errors.append(refused)
                continue
            if self.state == "present":
                self._plan_present(plan, spec, have)
            elif have is not None:
                plan_removals(plan, KIND, [have], _removed_fields, self._remover)
        if self.exclusive and self.state == "present":
            prune(plan, KIND, self._observe_all(), self._wanted(), lambda f: f.name, _removed_fields, self._remover)
        if errors:
            raise ValidationError(errors)
        return plan

    def _remover(self, facts: NetnsFacts) -> Any:
        return lambda: self._delete(facts.name)

    def _plan_present(self, plan: Plan, spec: NamespaceSpec, have: NetnsFacts | None) -> None:
        if spec.share_with is not None:
            self._plan_shared(plan, spec, have)
            return
        after = {"hostname": spec.hostname, "sysctls": dict(spec.sysctls), "loopback": "up"}
        if have is None:
            plan.add(KIND, spec.name, "create", None, after, lambda: self._create(spec))
            return
        if have.shared_with is not None:
            # was container:OTHER, now a namespace of its own: drop the second name, make a new one

            def unshare_name() -> None:
                nl.remove_namespace_file(nl.netns_path(spec.name))
                self._create(spec)

            before = {"share_with": have.shared_with}
            plan.add(KIND, spec.name, "update", before, {"share_with": None, **after}, unshare_name)
            return
        changed_before, changed_after = field_diff(_fields(have), after)
        if not changed_after:
            return
        fix_sysctls = {k: v for k, v in spec.sysctls.items() if have.sysctls.get(k) != v}
        fix_hostname = spec.hostname is not None and have.hostname != spec.hostname
        fix_loopback = not have.loopback_up

        def update() -> None:
            if fix_loopback:
                self._loopback_up(spec.name)
            if fix_hostname:
                _set_hostname(spec.name, spec.hostname or "")
            if fix_sysctls:
                sysctl.write(spec.name, fix_sysctls)

        plan.add(KIND, spec.name, "update", changed_before, changed_after, update)

    def _plan_shared(self, plan: Plan, spec: NamespaceSpec, have: NetnsFacts | None) -> None:
        target = spec.share_with or ""
        after = {"share_with": target}
        if have is None:
            plan.add(KIND, spec.name, "create", None, after, lambda: self._bind_shared(spec.name, target))
            return
        target_path = nl.netns_path(target)
        if os.path.exists(target_path) and have.inode == _inode(target_path):
            return

        def rebind() -> None:
            nl.remove_namespace_file(nl.netns_path(spec.name))
            if os.path.exists(uts_path(spec.name)):  # its own hostname went with its own namespace
                nl.remove_namespace_file(uts_path(spec.name))
            self._bind_shared(spec.name, target)

        plan.add(KIND, spec.name, "update", {"share_with": "(another namespace)"}, after, rebind)

    def _bind_shared(self, name: str, target: str) -> None:
        """Give `target`'s namespace a second name, as Docker's --network container:TARGET shares it."""
        path = nl.netns_path(name)
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
        os.close(fd)
        try:
            nl.mount(nl.netns_path(target), path, "none", nl.MS_BIND)
        except OSError:
            os.unlink(path)
            raise
        write_mark(name, target)

    def _loopback_up(self, name: str) -> None:
        self.sockets.get(name).set_link(1, up=True)

    def _create(self, spec: NamespaceSpec) -> None:
        if not self._run_dir_ready:
            nl.prepare_run_dir()
            os.makedirs(os.path.dirname(owner_mark_path(spec.name)), exist_ok=True)
            self._run_dir_ready = True

        def configure_inside() -> None:
            # the thread is in the new namespace: no second setns for loopback and sysctls
            rtnl = Rtnl()
            try:
                rtnl.set_link(1, up=True)
            finally:
                rtnl.close()
            if spec.sysctls:
                sysctl.write_here(spec.sysctls)

        nl.create_namespace_file(nl.netns_path(spec.name), nl.CLONE_NEWNET, configure_inside)
        write_mark(spec.name, None)
        if spec.hostname is not None:
            _set_hostname(spec.name, spec.hostname)

    def _delete(self, name: str) -> None:
        # the kernel frees the namespace, and its veths with their host ends, once nothing holds it:
        # all at once, far faster than deleting 250 veths one by one (an RCU wait each)
        self.sockets.forget(name)
        if os.path.exists(uts_path(name)):
            nl.remove_namespace_file(uts_path(name))
        nl.remove_namespace_file(nl.netns_path(name))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(owner_mark_path(name))
        # teardown leaves no trace: drop our bookkeeping directories once they are empty
        for directory in (os.path.dirname(uts_path(name)), os.path.dirname(owner_mark_path(name))):
            with contextlib.suppress(OSError):
                os.rmdir(directory)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.join(STATE_DIR, "owned"))

    def report(self) -> list[dict[str, Any]]:
        return [
            {
                "name": s.name,
                "hostname": s.hostname,
                "sysctls": s.sysctls,
                "share_with": s.share_with,
                "state": self.state,
            }
            for s in self.specs
        ]
