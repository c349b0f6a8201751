# This file is private to the wharf.network collection: its API may change at any time.
"""Converge one host to a whole topology in one process: validate, work out the host's items, then run
the resources in order (namespaces, bridges, the firewall, endpoints, addresses), each observing what
the one before it left.

Why one process and not one module call per resource: on this kind of machine each Ansible module call
costs about 0.35 s of Ansible and interpreter start-up whatever it does, and the netlink sockets opened
into 250 namespaces for the endpoints serve the addresses step too. The per-resource modules stay for
people who build by hand; the role uses this.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.wharf.network.plugins.module_utils._dns.daemon import DnsResult, dns_converge
from ansible_collections.wharf.network.plugins.module_utils._engine.errors import ValidationError, WharfError
from ansible_collections.wharf.network.plugins.module_utils._engine.plan import Plan
from ansible_collections.wharf.network.plugins.module_utils._firewall.nft import Runner
from ansible_collections.wharf.network.plugins.module_utils._firewall.record import RECORD_DIR, RECORD_NAME, read_record
from ansible_collections.wharf.network.plugins.module_utils._firewall.resource import FirewallResource
from ansible_collections.wharf.network.plugins.module_utils._kernel.addresses import IpAddrResource
from ansible_collections.wharf.network.plugins.module_utils._kernel.bridge import BridgeResource
from ansible_collections.wharf.network.plugins.module_utils._kernel.namespace import NamespaceSockets, netns_path
from ansible_collections.wharf.network.plugins.module_utils._kernel.netns import NetnsResource
from ansible_collections.wharf.network.plugins.module_utils._kernel.veth import VethResource
from ansible_collections.wharf.network.plugins.module_utils._kernel.vxlan import VxlanResource
from ansible_collections.wharf.network.plugins.module_utils._model.host_plan import host_items, overlay_errors
from ansible_collections.wharf.network.plugins.module_utils._model.topology import (
    Topology,
    TopologyError,
    parse_topology,
)


@dataclass
class ConvergeResult:
    """What a converge did (or, in check mode, would do), step by step."""

    changes: list[str] = field(default_factory=list)
    steps: dict[str, int] = field(default_factory=dict)
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    containers: list[dict[str, Any]] = field(default_factory=list)
    remote_containers: list[dict[str, Any]] = field(default_factory=list)
    dns: dict[str, Any] = field(default_factory=dict)  # the embedded DNS step's summary, when it ran
    publishes: list[dict[str, Any]] = field(default_factory=list)
    applied: int = 0  # changes really made so far (0 in check mode)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def record(self, step: str, plan: Plan) -> None:
        self.steps[step] = len(plan.changes)
        self.changes.extend(plan.summary())
        if plan.changed:
            diff = plan.diff()
            self.before.append(diff["before"])
            self.after.append(diff["after"])


# runs a command for the DNS step: argv -> (rc, stdout, stderr)
DnsRunner = Callable[[list[str]], tuple]

# (step name, a callable building the resource from the run's sockets)
Step = tuple[str, Callable[[NamespaceSockets], Any]]


def host_steps(items: dict[str, Any], firewall: FirewallResource | None = None, overlay: bool = False) -> list[Step]:
    """The resources to run for this host, in order; a step with nothing to do is left out.

    The firewall comes right after the bridges it names (route_localnet is a sysctl of the bridge) and
    before any container is connected, so no endpoint is ever up while the host forwards without the table.
    The VXLAN step always runs, exclusive over the collection's own VXLAN devices (those with the wharf alias):
    with `overlay` (the host is on an underlay with peers) it makes this host's devices and prunes the rest;
    without, its list is empty and it removes every device wharf left here (a host that left the overlay, or a
    `state: absent` run without peers), which matters because the same run drops the firewall's VXLAN filter.
    On a host that never had one it costs one link dump and changes nothing.
    """
    prune = bool(items["prune"])
    own = [n["name"] for n in items["namespaces"] if "share_with" not in n]
    steps: list[Step] = []
    if items["absent_namespaces"]:
        steps.append(("remove containers", lambda s: NetnsResource(s, items["absent_namespaces"], "absent", False)))
    if items["namespaces"] or prune:
        steps.append(("containers", lambda s: NetnsResource(s, items["namespaces"], "present", prune)))
    if items["bridges"] or prune:
        steps.append(("networks", lambda s: BridgeResource(s, items["bridges"], "present", prune, None)))
    if firewall is not None:
        steps.append(("firewall", lambda s: firewall))
    if items["veths"] or prune:
        # a declared container's endpoints are exactly its networks (connect/disconnect); only prune
        # reaches further, to endpoints of containers the topology no longer declares
        scope = None if prune else own
        steps.append(
            ("endpoints", lambda s: VethResource(s, items["veths"], "present", True, None, scope, keep_peer_names=True))
        )
    if items["interfaces"]:
        steps.append(("addresses", lambda s: IpAddrResource(s, items["interfaces"], "present", True, None)))
    vxlans = items["vxlans"] if overlay else []
    steps.append(("overlay", lambda s: VxlanResource(s, vxlans, "present", True, None)))
    if items["absent_bridges"]:
        steps.append(("remove networks", lambda s: BridgeResource(s, items["absent_bridges"], "absent", False, None)))
    return steps


def converge(
    topology: Any,
    host: str,
    check_mode: bool,
    result: ConvergeResult | None = None,
    run: Runner | None = None,
    nft_binary: str = "nft",
    record_dir: str = RECORD_DIR,
    peers: dict[str, str] | None = None,
    dns: DnsRunner | None = None,
    resolv_conf: str = "/etc/resolv.conf",
) -> ConvergeResult:
    """Validate everything first (ValidationError with every problem), then converge step by step.

    `run(argv, data)` runs the `nft` program (AnsibleModule.run_command in the module); None leaves the
    firewall alone. `peers` maps inventory hostnames (this one included) to underlay addresses; with it,
    overlay networks are joined across hosts over VXLAN. `dns(argv)` runs commands for the embedded DNS
    (`container_dns`'s work, done here as the last step so a role pays one module call, not two); None leaves
    DNS alone. Pass `result` to keep what was done when a later step fails.
    """
    try:
        model = parse_topology(topology)
    except TopologyError as exc:
        raise ValidationError(list(exc.errors)) from None
    peers = dict(peers or {})
    if peers and host not in peers:
        # a shared inventory gives every host the peers of the overlay hosts: one without an overlay
        # container is simply not on the overlay (its leftover VXLAN devices are pruned below)
        if _has_overlay_container(model, host):
            message = f"peers: this host {host!r} has a container on an overlay network but is not among the peers"
            raise ValidationError([f"{message} (set its wharf_underlay_address)"])
        peers = {}
    overlay = host in peers
    errors = overlay_errors(model, peers) + _peer_errors(peers)
    if errors:
        raise ValidationError(errors)
    items = host_items(model, host, peers)
    if items["sub_interfaces"]:
        users = sorted({i["namespace"] for i in items["sub_interfaces"]})
        raise ValidationError([f"networks of driver macvlan/ipvlan are not supported yet (used by {', '.join(users)})"])
    vxlan_peers = sorted(set(peers.values()) - {peers[host]}) if overlay else None
    firewall = _firewall(items, run, nft_binary, record_dir, vxlan_peers, peers.get(host))
    if firewall is not None:
        firewall.validate()  # publish clashes and ports host processes hold: refused before the first change
    if dns is not None:
        # files wharf did not write, dnspython missing: refused before the first change (a plan, nothing applied)
        dns_converge(topology, host, True, resolv_conf, run=dns, model=model)
    result = result if result is not None else ConvergeResult()
    result.containers = items["containers"]
    result.remote_containers = items["remote_containers"]
    vanishing: set[str] = set()
    with NamespaceSockets() as sockets:
        if overlay and items["vxlans"]:
            # a wrong underlay address or an underlay too small for the networks' MTU: refused before any step
            by_vni = {n.vni: n.name for n in model.networks.values() if n.vni is not None}
            VxlanResource(sockets, items["vxlans"], "present", True, None).validate(
                lambda spec: f"peers.{host} (the inventory variable wharf_underlay_address)",
                lambda spec: f"networks.{by_vni.get(spec.vni, spec.name)}.mtu",
            )
        for name, build in host_steps(items, firewall, overlay):
            resource = build(sockets)
            resource.check_mode = check_mode
            if hasattr(resource, "vanishing_nsids"):
                resource.vanishing_nsids = vanishing
            try:
                if isinstance(resource, NetnsResource):
                    # ids must be read while the names still exist (before this step removes them)
                    vanishing.update(_ids_of_removed(sockets, resource))
                _run_step(name, resource, check_mode, result)
                if getattr(resource, "actual_peer_names", None):
                    _use_actual_names(items, resource.actual_peer_names)
            finally:
                if hasattr(resource, "close"):
                    resource.close()
    if firewall is not None:
        result.publishes = firewall.report()["publishes"]  # with the ports free-port requests got
    if dns is not None:
        _dns_step(model, host, check_mode, resolv_conf, dns, result)
    return result


def _dns_step(
    model: Topology, host: str, check_mode: bool, resolv_conf: str, run: DnsRunner, result: ConvergeResult
) -> None:
    """The embedded DNS, last: the gateways it listens on exist by now."""
    dns_result = DnsResult()
    try:
        dns_converge(None, host, check_mode, resolv_conf, result=dns_result, run=run, model=model)
    except (ValidationError, WharfError, OSError) as exc:
        detail = "; ".join(exc.errors) if isinstance(exc, ValidationError) else str(exc)
        result.applied += dns_result.plan.applied
        raise WharfError(f"step 'dns': {detail} (after {result.applied} changes were applied)") from None
    finally:
        result.record("dns", dns_result.plan)
    result.applied += dns_result.plan.applied
    result.dns = {
        "listen": dns_result.listen,
        "views": dns_result.views,
        "clients": dns_result.clients,
        "pid": dns_result.pid,
    }


def _has_overlay_container(model: Any, host: str) -> bool:
    """Whether a present container of this host (or of every host: no `host`) is on an overlay network."""
    for container in model.containers.values():
        if container.state != "present" or container.host not in (None, host):
            continue
        if any(model.networks[e.network].driver == "overlay" for e in container.endpoints):
            return True
    return False


def _peer_errors(peers: dict[str, str]) -> list[str]:
    """Each peer's underlay address must be one IPv4 address, and no two hosts may share one."""
    errors = []
    seen: dict[str, str] = {}
    for name, address in sorted(peers.items()):
        try:
            text = str(ipaddress.IPv4Address(address))
        except (ValueError, TypeError):
            errors.append(f"peers.{name}: underlay address {address!r} is not an IPv4 address")
            continue
        if text in seen:
            errors.append(f"peers.{name}: underlay address {text} is also the address of {seen[text]}")
        seen[text] = name
    return errors


def _firewall(
    items: dict[str, Any],
    run: Runner | None,
    nft_binary: str,
    record_dir: str,
    vxlan_peers: list[str] | None,
    vxlan_local: str | None,
) -> FirewallResource | None:
    """The host's table for this topology; with no network left, its removal (only if wharf made one).
    With `vxlan_peers`, VXLAN to `vxlan_local` (this host's underlay address) is accepted from those only."""
    if run is None:
        return None
    networks = items["firewall_networks"] + _kept_networks(items, record_dir)
    if networks or items["publishes"]:
        return FirewallResource(
            run,
            networks,
            items["publishes"],
            "present",
            True,
            nft_binary,
            record_dir,
            vxlan_peers=vxlan_peers,
            vxlan_local=vxlan_local,
        )
    if os.path.exists(os.path.join(record_dir, RECORD_NAME)):
        return FirewallResource(run, None, None, "absent", False, nft_binary, record_dir)
    return None


def _kept_networks(items: dict[str, Any], record_dir: str) -> list[dict[str, Any]]:
    """Networks the table governed that the topology no longer names but that still exist (no `prune`, not
    `state: absent`): they stay isolated until they are removed, instead of falling out of the table open."""
    if items["prune"]:
        return []
    record = read_record(record_dir)
    if record is None:
        return []
    named = {n["bridge"] for n in items["firewall_networks"]} | {b["name"] for b in items["absent_bridges"]}
    return [
        network.record()
        for network in record.networks
        if network.bridge not in named and os.path.isdir(f"/proc/sys/net/ipv4/conf/{network.bridge}")
    ]


def _run_step(name: str, resource: Any, check_mode: bool, result: ConvergeResult) -> None:
    try:
        plan = resource.plan()
    except ValidationError as exc:
        if not result.applied:
            raise
        # a conflict only this step could see (e.g. a foreign link with a wanted name): the steps
        # before it did change the host, and the user must be told so
        raise WharfError(
            f"step '{name}' refused: {'; '.join(exc.errors)} (after {result.applied} changes were applied)"
        ) from None
    except OSError as exc:
        raise WharfError(f"step '{name}': reading the kernel's state failed: {exc}") from exc
    result.record(name, plan)
    if not check_mode:
        try:
            plan.apply()
        finally:
            result.applied += plan.applied


def _use_actual_names(items: dict[str, Any], actual: dict[tuple[str | None, str], str]) -> None:
    """Point the address items and the summary at the interface names the endpoints really have."""
    for interface in items["interfaces"]:
        key = (interface.get("namespace"), interface["name"])
        if key in actual:
            interface["name"] = actual[key]
    for container in items["containers"]:
        for endpoint in container["endpoints"]:
            key = (container["namespace"], endpoint["interface"])
            if key in actual:
                endpoint["interface"] = actual[key]


def _ids_of_removed(sockets: NamespaceSockets, resource: NetnsResource) -> set[int]:
    """Host-side ids of the namespaces this netns step removes: the endpoints that vanish with them."""
    names = resource.names_to_remove()
    ids: set[int] = set()
    host = sockets.get(None)
    for name in names:
        try:
            fd = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            nsid = host.nsid_of(fd)
        finally:
            os.close(fd)
        if nsid is not None:
            ids.add(nsid)
    return ids
