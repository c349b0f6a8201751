# This file is private to the wharf.network collection: its API may change at any time.
"""The collection's nftables table: observe it, plan the swap, apply it in one transaction.

The rest of the package is what this file puts together: the parsed input (`model.py`), the merge with
what was applied before (`merge.py`), host ports (`ports.py`, `listeners.py`), the table text
(`render.py`), the `nft` program (`nft.py`) and the record on disk (`record.py`). This file adds the
decisions of a run, the sysctls the rules rely on, and stale UDP entries in conntrack (ctnetlink).

How a run knows whether to send anything (no-op and drift):
- The record (`record.py`) keeps what was applied last: the desired networks and publishes (with the free
  ports they got), the digest of the rendered text, and the digest of the table as the kernel listed it
  right after that transaction (`nft -j list table`, made canonical: handles dropped, set elements
  sorted). nft normalises rules when it lists them, so our text and its listing never compare equal; a
  listing compared with a listing of the same table does.
- A run renders the desired state and lists the live table once. Live listing = recorded listing and
  rendered digest = recorded digest: nothing to do, no transaction (`changed=false`). Listing differs,
  table gone, or no record while the table exists: drift, reported as `restore` with the reason, and
  the table is swapped back. Only the digest differs: an ordinary update.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ansible_collections.wharf.network.plugins.module_utils._engine.errors import ValidationError, WharfError
from ansible_collections.wharf.network.plugins.module_utils._engine.plan import Change, Plan
from ansible_collections.wharf.network.plugins.module_utils._firewall.listeners import (
    read_listeners,
    socket_owners,
)
from ansible_collections.wharf.network.plugins.module_utils._firewall.listeners import read_proc_file as _read
from ansible_collections.wharf.network.plugins.module_utils._firewall.merge import merge_networks, merge_publishes
from ansible_collections.wharf.network.plugins.module_utils._firewall.model import (
    ANY,
    FirewallNetwork,
    Publish,
    parse_networks,
    parse_publishes,
    target_errors,
)
from ansible_collections.wharf.network.plugins.module_utils._firewall.nft import (
    FAMILY,
    TABLE,
    TABLE_LABEL,
    USER_TABLE,
    USER_TABLE_LABEL,
    Nft,
    Runner,
    canonical_listing,
    digest,
    has_rules,
)
from ansible_collections.wharf.network.plugins.module_utils._firewall.ports import DEFAULT_PORT_RANGE, resolve_publishes
from ansible_collections.wharf.network.plugins.module_utils._firewall.record import (
    RECORD_DIR,
    RECORD_NAME,
    Record,
    forget_record,
    read_record,
    read_rendered,
    write_record,
)
from ansible_collections.wharf.network.plugins.module_utils._firewall.render import (
    VXLAN_PORT,
    needs_route_localnet,
    render,
    transaction,
)
from ansible_collections.wharf.network.plugins.module_utils._kernel import conntrack as _conntrack

# argument_spec suboptions of one publish, shared by the firewall and port_publish modules
PUBLISH_OPTIONS = {
    "address": {"type": "str", "required": True},
    "port": {"type": "str"},
    "host_ip": {"type": "str"},
    "published": {"type": "raw"},
    "target": {"type": "raw"},
    "protocol": {"type": "str", "choices": ["tcp", "udp", "sctp"]},
    "source": {"type": "str"},
}
# sysctls, relative to /proc/sys (a resource takes another root, so unit tests never write the machine's)
PROC_SYS = "/proc/sys"
BRIDGE_NF_CALL = "net/bridge/bridge-nf-call-iptables"
IP_FORWARD = "net/ipv4/ip_forward"
PORT_RANGE = "net/ipv4/ip_local_port_range"


class DriftChange(Change):
    """A change that repairs something edited outside the collection; says why."""

    reason: str = ""

    def describe(self) -> str:
        return f"{super().describe()}: {self.reason}"


class FirewallPlan(Plan):
    """A Plan whose diff also shows the table text before and after (the rule changes)."""

    table_before: str | None = None
    table_after: str | None = None

    def diff(self) -> dict[str, str]:
        result = super().diff()
        if self.table_before is not None or self.table_after is not None:
            result["before"] += f"\n# table {TABLE_LABEL}\n{self.table_before or ''}"
            result["after"] += f"\n# table {TABLE_LABEL}\n{self.table_after or ''}"
        return result


def read_port_range(proc_sys: str = PROC_SYS) -> tuple[int, int]:
    text = _read(os.path.join(proc_sys, PORT_RANGE))
    try:
        low, high = (int(word) for word in (text or "").split())
    except ValueError:
        return DEFAULT_PORT_RANGE
    return low, high


def route_localnet_path(bridge: str, proc_sys: str = PROC_SYS) -> str:
    return os.path.join(proc_sys, f"net/ipv4/conf/{bridge}/route_localnet")


def _sysctl_setter(path: str, value: str) -> Callable[[], None]:
    def write() -> None:
        with open(path, "w") as handle:
            handle.write(value)

    return write


def _publish_name(publish: Publish) -> str:
    if publish.auto:
        return f"free port {publish.host_ip or ANY}/{publish.protocol} -> {publish.target_text()}"
    return publish.host_text()


def _publish_fields(publish: Publish) -> dict[str, Any]:
    return {"host": publish.host_text(), "target": publish.target_text()}


def _network_fields(network: FirewallNetwork) -> dict[str, Any]:
    fields = network.record()
    del fields["bridge"]
    return fields


class FirewallResource:
    """observe / plan / apply for the table `inet wharf` (and the user table `inet wharf-user`).

    `networks` and `publishes` None: not managed by this call, the recorded ones stay. Otherwise
    `state`/`exclusive` say how the listed items combine with the recorded ones (see
    `merge.merge_publishes`). `state=absent` with neither list removes the table.
    """

    check_mode = False

    def __init__(
        self,
        run: Runner,
        networks: list[dict[str, Any]] | None,
        publishes: list[dict[str, Any]] | None,
        state: str = "present",
        exclusive: bool = False,
        nft_binary: str = "nft",
        record_dir: str = RECORD_DIR,
        report_listed: bool = False,
        proc_sys: str = PROC_SYS,
        vxlan_peers: list[str] | None = None,
        vxlan_local: str | None = None,
    ):
        errors: list[str] = []
        self.listed_networks: list[FirewallNetwork] | None = None
        self.listed_publishes: list[Publish] | None = None
        for parse, items, attribute in (
            (parse_networks, networks, "listed_networks"),
            (parse_publishes, publishes, "listed_publishes"),
        ):
            if items is None:
                continue
            try:
                setattr(self, attribute, parse(items))
            except ValidationError as exc:
                errors.extend(exc.errors)
        if errors:
            raise ValidationError(errors)
        self.nft = Nft(run, nft_binary)
        self.state = state
        self.exclusive = exclusive
        self.record_dir = record_dir
        self.proc_sys = proc_sys
        self.report_listed = report_listed
        self.networks: list[FirewallNetwork] = []
        self.publishes: list[Publish] = []
        self.drift: str | None = None
        self.rendered: str | None = None
        self.remove_all = state == "absent" and networks is None and publishes is None
        # (the record validate() read and computed the desired state from,) once it ran
        self._validated: tuple[Record | None] | None = None
        # the converge of a host on an overlay underlay: VXLAN to its underlay address (vxlan_local) is
        # accepted from these addresses only
        self.vxlan_peers = sorted(vxlan_peers) if vxlan_peers is not None and vxlan_local is not None else None
        self.vxlan_local = vxlan_local if self.vxlan_peers is not None else None

    # --- desired state -------------------------------------------------------------------------------

    def _desired(self, record: Record | None) -> None:
        previous_networks = record.networks if record else []
        previous_publishes = record.publishes if record else []
        if self.remove_all:
            return
        networks = previous_networks
        if self.listed_networks is not None:
            networks = merge_networks(previous_networks, self.listed_networks, self.state, self.exclusive)
        publishes = previous_publishes
        if self.listed_publishes is not None:
            publishes = merge_publishes(previous_publishes, self.listed_publishes, self.state, self.exclusive)
        errors = target_errors(networks, publishes)
        if any(not n.icc for n in networks) and not os.path.exists(os.path.join(self.proc_sys, BRIDGE_NF_CALL)):
            bridges = ", ".join(n.bridge for n in networks if not n.icc)
            errors.append(
                f"networks with icc false ({bridges}) need the br_netfilter kernel module, so that traffic "
                "bridged between containers passes the firewall: modprobe br_netfilter"
            )
        # only publishes not applied before can meet a host process's port (see resolve_publishes): a no-op
        # run does not read /proc/net, which walks every socket of the machine
        applied = {p.host_key for p in previous_publishes}
        sticky = {p.target_key for p in previous_publishes if p.auto}
        fresh = [
            p
            for p in publishes
            if (p.published is None and p.target_key not in sticky)
            or (p.published is not None and p.host_key not in applied)
        ]
        listeners = read_listeners() if fresh else []
        # the embedded resolver on a gateway's port 53 is ours, and its queries are never DNATed (set resolvers)
        resolvers = {n.gateway for n in networks if n.gateway is not None}
        listeners = [x for x in listeners if not (x.port == 53 and x.address in resolvers)]
        owners = None
        if any(listener.covers(p) for listener in listeners for p in fresh):
            owners = socket_owners({listener.inode for listener in listeners})
        try:
            publishes = resolve_publishes(
                publishes, previous_publishes, listeners, read_port_range(self.proc_sys), owners
            )
        except ValidationError as exc:
            errors.extend(exc.errors)
        if errors:
            raise ValidationError(errors)
        self.networks = networks
        self.publishes = publishes
        self.rendered = render(networks, publishes, self.vxlan_peers, self.vxlan_local)

    def validate(self) -> None:
        """Every input error and conflict (clashes, host listeners, internal targets), raised as one
        ValidationError: a converge calls this before its first step, so nothing changes on a bad publish."""
        record = read_record(self.record_dir)
        self._desired(record)
        self._validated = (record,)

    # --- plan ----------------------------------------------------------------------------------------

    def plan(self) -> Plan:
        if self._validated is not None:
            # validated earlier in this run (the record is ours alone, the steps in between do not touch it)
            (record,) = self._validated
        else:
            record = read_record(self.record_dir)
            self._desired(record)  # every input error and conflict, before anything is looked at or changed
        plan = FirewallPlan()
        tables = self.nft.tables()
        ours = (FAMILY, TABLE) in tables
        user_table_present = (FAMILY, USER_TABLE) in tables
        live = self.nft.listing(FAMILY, TABLE) if ours else None
        live_digest = digest(canonical_listing(live)) if live is not None else None

        if self.remove_all:
            self._plan_removal(plan, record, live is not None, user_table_present)
            return plan
        if live is not None and record is None and self.listed_networks is None:
            # restoring from the publishes alone would drop the isolation of networks we know nothing of
            raise WharfError(
                f"nftables table '{TABLE_LABEL}' exists but {os.path.join(self.record_dir, RECORD_NAME)} is "
                "missing, so the networks it governs are unknown: run wharf.network.firewall with networks first"
            )

        if live is None and record is not None:
            self.drift = "missing: deleted, or the ruleset was flushed (a firewalld reload does that)"
        elif live is not None and record is None:
            self.drift = f"no record of what wharf.network applied ({os.path.join(self.record_dir, RECORD_NAME)})"
        elif live is not None and record is not None and live_digest != record.listing_digest:
            self.drift = "changed outside wharf.network"
        render_digest = digest(self.rendered or "")
        replace_table = (
            self.drift is not None or record is None or live is None or record.render_digest != render_digest
        )

        before_networks = record.networks if record else []
        before_publishes = record.publishes if record else []
        self._plan_items(plan, before_networks, before_publishes)
        before_peers = record.vxlan_peers if record else None
        before_local = record.vxlan_local if record else None
        if (before_peers, before_local) != (self.vxlan_peers, self.vxlan_local):
            before = {"to": before_local, "addresses": before_peers} if before_peers is not None else None
            after = {"to": self.vxlan_local, "addresses": self.vxlan_peers} if self.vxlan_peers is not None else None
            action = "create" if before is None else "delete" if after is None else "update"
            plan.add("vxlan peers", f"udp/{VXLAN_PORT}", action, before, after, _nothing)
        commits: list[Change] = []
        if not user_table_present:
            plan.add("nftables table", USER_TABLE_LABEL, "create", None, {"chains": "forward (empty)"}, _nothing)
            commits.append(plan.changes[-1])
        if replace_table:
            after = {"digest": render_digest[:16]}
            if self.drift is not None:
                change = DriftChange("nftables table", TABLE_LABEL, "restore", {"state": self.drift}, after, _nothing)
                change.reason = self.drift
                plan.changes.append(change)
                plan.table_before = self.nft.listing(FAMILY, TABLE, as_json=False) if live is not None else ""
            else:
                action = "create" if live is None else "update"
                before = {"digest": record.render_digest[:16]} if record and live is not None else None
                plan.add("nftables table", TABLE_LABEL, action, before, after, _nothing)
                plan.table_before = read_rendered(self.record_dir) or ""
            plan.table_after = self.rendered
            commits.append(plan.changes[-1])
        if commits:
            # every nftables change above goes to the kernel in the one transaction of the last of them
            commits[-1].apply = lambda: self._commit(replace_table, not user_table_present)
        self._plan_sysctls(plan)
        self._plan_conntrack(plan, before_publishes, replace_whole=self.drift is not None or record is None)
        return plan

    def _plan_items(self, plan: Plan, before_networks: list[FirewallNetwork], before_publishes: list[Publish]) -> None:
        """One line per network and publish that changes; their rules go in with the table."""
        old_networks = {n.bridge: n for n in before_networks}
        new_networks = {n.bridge: n for n in self.networks}
        for bridge in sorted(old_networks.keys() | new_networks.keys()):
            old, new = old_networks.get(bridge), new_networks.get(bridge)
            if old == new:
                continue
            before = _network_fields(old) if old else None
            after = _network_fields(new) if new else None
            action = "create" if old is None else "delete" if new is None else "update"
            plan.add("firewall network", bridge, action, before, after, _nothing)
        old_publishes = {p.key: p for p in before_publishes}
        new_publishes = {p.key: p for p in self.publishes}
        for key in sorted(old_publishes.keys() | new_publishes.keys(), key=str):
            old, new = old_publishes.get(key), new_publishes.get(key)
            if old is not None and new is not None and old.record() == new.record():
                continue
            before = _publish_fields(old) if old else None
            after = _publish_fields(new) if new else None
            action = "create" if old is None else "delete" if new is None else "update"
            plan.add("publish", _publish_name(new or old), action, before, after, _nothing)  # type: ignore[arg-type]

    def _plan_removal(self, plan: FirewallPlan, record: Record | None, present: bool, user_table: bool) -> None:
        remove_user_table = False
        if user_table:
            listing = self.nft.listing(FAMILY, USER_TABLE)
            remove_user_table = listing is not None and not has_rules(listing)
        if record is not None:
            self._plan_items(plan, record.networks, record.publishes)
        commits: list[Change] = []
        if present:
            plan.add("nftables table", TABLE_LABEL, "delete", {"state": "present"}, None, _nothing)
            plan.table_before = self.nft.listing(FAMILY, TABLE, as_json=False) or ""
            plan.table_after = ""
            commits.append(plan.changes[-1])
        if remove_user_table:
            plan.add("nftables table", USER_TABLE_LABEL, "delete", {"rules": 0}, None, _nothing)
            commits.append(plan.changes[-1])
        if commits:
            commits[-1].apply = lambda: self._remove(present, remove_user_table)
        elif record is not None:
            plan.add("firewall record", RECORD_NAME, "delete", {"state": "present"}, None, self._forget)

    def _plan_sysctls(self, plan: Plan) -> None:
        if self.networks:
            # containers reach the outside and published ports are reached through the host's routing;
            # what may pass is the table's forward chain. Writing it also sets every interface's forwarding.
            path = os.path.join(self.proc_sys, IP_FORWARD)
            current = (_read(path) or "").strip()
            if current != "1":
                setter = _sysctl_setter(path, "1")
                plan.add("sysctl", "net.ipv4.ip_forward", "update", {"value": current}, {"value": "1"}, setter)
        wanted = needs_route_localnet(self.networks, self.publishes)
        for network in sorted(self.networks, key=lambda n: n.bridge):
            path = route_localnet_path(network.bridge, self.proc_sys)
            value = "1" if network.bridge in wanted else "0"
            current = _read(path)
            if current is None and not (self.check_mode and value == "1"):
                # the bridge does not exist: nothing routes through it. In check mode an earlier step of the
                # same converge would have created it (new bridges start with 0), so predict the write.
                continue
            if current is None or current.strip() != value:
                name = f"net.ipv4.conf.{network.bridge}.route_localnet"
                setter = _sysctl_setter(path, value)
                before = {"value": current.strip() if current is not None else "0"}
                plan.add("sysctl", name, "update", before, {"value": value}, setter)
        if any(not n.icc for n in self.networks):
            path = os.path.join(self.proc_sys, BRIDGE_NF_CALL)
            current = (_read(path) or "").strip()
            if current != "1":
                name = "net.bridge.bridge-nf-call-iptables"
                setter = _sysctl_setter(path, "1")
                plan.add("sysctl", name, "update", {"value": current}, {"value": "1"}, setter)

    def _plan_conntrack(self, plan: Plan, before: list[Publish], replace_whole: bool) -> None:
        """Stale UDP entries of every UDP host port whose mapping changed (all of them after drift: flows
        that arrived while the table was missing have no NAT binding)."""
        old = {p.host_key: p for p in before if p.protocol == "udp"}
        new = {p.host_key: p for p in self.publishes if p.protocol == "udp"}
        stale: list[Publish] = []
        for key in sorted(old.keys() | new.keys(), key=str):
            was, now = old.get(key), new.get(key)
            if now is not None and (replace_whole or was is None or was.record() != now.record()):
                stale.append(now)
            elif now is None and was is not None:
                stale.append(was)
        for publish in stale:
            plan.add(
                "conntrack",
                f"udp {publish.host_text().removesuffix('/udp')}",
                "flush",
                None,
                {"reason": "UDP mapping changed: stale entries would keep the old NAT"},
                _flusher(publish),
            )

    # --- apply ---------------------------------------------------------------------------------------

    def _commit(self, replace_table: bool, create_user_table: bool) -> None:
        self.nft.apply(
            transaction(self.rendered, replace=replace_table, user_table="create" if create_user_table else None)
        )
        if replace_table and self.rendered is not None:
            live = self.nft.listing(FAMILY, TABLE)
            if live is None:
                raise WharfError(f"nftables table '{TABLE_LABEL}': missing right after the transaction")
            listing_digest = digest(canonical_listing(live))
            record = Record(
                self.networks,
                self.publishes,
                digest(self.rendered),
                listing_digest,
                self.vxlan_peers,
                self.vxlan_local,
            )
            write_record(self.record_dir, record, self.rendered)

    def _remove(self, table: bool, user_table: bool) -> None:
        self.nft.apply(transaction(None, replace=table, user_table="delete" if user_table else None))
        self._forget()

    def _forget(self) -> None:
        forget_record(self.record_dir)

    # --- report --------------------------------------------------------------------------------------

    def report(self) -> Any:
        if self.report_listed:
            # the listed publishes as applied: a free-port request shows the port it got
            by_target = {p.target_key: p for p in self.publishes if p.auto}
            rows = []
            for publish in self.listed_publishes or []:
                resolved = by_target.get(publish.target_key) if publish.published is None else publish
                rows.append({**(resolved or publish).record(), "state": self.state})
            return rows
        return {
            "table": TABLE_LABEL,
            "user_table": USER_TABLE_LABEL,
            "drift": self.drift,
            "networks": [n.record() for n in self.networks],
            "publishes": [p.record() for p in self.publishes],
        }


def _nothing() -> None:
    """The change goes to the kernel with the table's transaction."""


def _flusher(publish: Publish) -> Callable[[], None]:
    first, last = publish.published or (0, -1)
    host_ip = publish.host_ip

    def matches(entry: _conntrack.Entry) -> bool:
        if entry.protocol != _conntrack.IPPROTO["udp"] or not first <= entry.destination_port <= last:
            return False
        return host_ip is None or entry.destination == host_ip

    def flush() -> None:
        _conntrack.delete_entries(matches)

    return flush
