# This file is private to the wharf.network collection: its API may change at any time.
"""Converge one host to a whole topology in one process: validate everything, work out the host's plan, then run
the steps in order (namespaces, bridges, the firewall, endpoints, addresses, the overlay, the DNS), each observing
what the one before it left. This file is the order of the steps; each step's work lives with its part of the model.

Why one process and not one module call per resource: on this kind of machine each Ansible module call
costs about 0.35 s of Ansible and interpreter start-up whatever it does, and the netlink sockets opened
into 250 namespaces for the endpoints serve the addresses step too. The per-resource modules stay for
people who build by hand; the role uses this.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.wharf.network.plugins.module_utils._dns.daemon import dns_converge
from ansible_collections.wharf.network.plugins.module_utils._dns.step import DnsRunner, dns_step
from ansible_collections.wharf.network.plugins.module_utils._drivers import driver_for
from ansible_collections.wharf.network.plugins.module_utils._drivers.overlay import (
    has_overlay_container,
    overlay_errors,
    peer_errors,
)
from ansible_collections.wharf.network.plugins.module_utils._engine.errors import ValidationError
from ansible_collections.wharf.network.plugins.module_utils._engine.steps import (
    ConvergeResult,
    Step,
    run_step,
    step_failures,
)
from ansible_collections.wharf.network.plugins.module_utils._firewall.nft import Runner
from ansible_collections.wharf.network.plugins.module_utils._firewall.record import RECORD_DIR
from ansible_collections.wharf.network.plugins.module_utils._firewall.resource import FirewallResource
from ansible_collections.wharf.network.plugins.module_utils._firewall.step import firewall_for_host
from ansible_collections.wharf.network.plugins.module_utils._kernel.addresses import IpAddrResource
from ansible_collections.wharf.network.plugins.module_utils._kernel.bridge import BridgeResource
from ansible_collections.wharf.network.plugins.module_utils._kernel.namespace import NamespaceSockets
from ansible_collections.wharf.network.plugins.module_utils._kernel.netns import NetnsResource
from ansible_collections.wharf.network.plugins.module_utils._kernel.nsid import ids_of
from ansible_collections.wharf.network.plugins.module_utils._kernel.veth import VethResource
from ansible_collections.wharf.network.plugins.module_utils._kernel.vxlan import VxlanResource
from ansible_collections.wharf.network.plugins.module_utils._model.host_plan import HostPlan, host_plan
from ansible_collections.wharf.network.plugins.module_utils._model.topology import TopologyError, parse_topology

__all__ = ["ConvergeResult", "DnsRunner", "converge", "host_steps"]


def host_steps(
    current: Callable[[], HostPlan], firewall: FirewallResource | None = None, overlay: bool = False
) -> list[Step]:
    """The resources to run for this host, in order; a step with nothing to do is left out.

    `current()` is the host's plan as it stands when a step is built: after the endpoints step it names the
    interfaces the endpoints really have (a container keeps an interface under the name it got when connected).

    The firewall comes right after the bridges it names (route_localnet is a sysctl of the bridge) and
    before any container is connected, so no endpoint is ever up while the host forwards without the table.
    The VXLAN step always runs, exclusive over the collection's own VXLAN devices (those with the wharf alias):
    with `overlay` (the host is on an underlay with peers) it makes this host's devices and prunes the rest;
    without, its list is empty and it removes every device wharf left here (a host that left the overlay, or a
    `state: absent` run without peers), which matters because the same run drops the firewall's VXLAN filter.
    On a host that never had one it costs one link dump and changes nothing.
    """
    plan = current()
    prune = plan.prune
    own = [n.name for n in plan.namespaces if n.share_with is None]
    steps: list[Step] = []
    if plan.absent_namespaces:
        absent = plan.items("absent_namespaces")
        steps.append(("remove containers", lambda s: NetnsResource(s, absent, "absent", False)))
    if plan.namespaces or prune:
        steps.append(("containers", lambda s: NetnsResource(s, plan.items("namespaces"), "present", prune)))
    if plan.bridges or prune:
        steps.append(("networks", lambda s: BridgeResource(s, plan.items("bridges"), "present", prune, None)))
    if firewall is not None:
        steps.append(("firewall", lambda s: firewall))
    if plan.veths or prune:
        # a declared container's endpoints are exactly its networks (connect/disconnect); only prune
        # reaches further, to endpoints of containers the topology no longer declares
        scope = None if prune else own
        veths = plan.items("veths")
        steps.append(
            ("endpoints", lambda s: VethResource(s, veths, "present", True, None, scope, keep_peer_names=True))
        )
    if plan.interfaces:
        # built when the step runs: the endpoints step before it may have found interfaces under other names
        steps.append(("addresses", lambda s: IpAddrResource(s, current().items("interfaces"), "present", True, None)))
    vxlans = plan.items("vxlans") if overlay else []
    steps.append(("overlay", lambda s: VxlanResource(s, vxlans, "present", True, None)))
    if plan.absent_bridges:
        absent_bridges = plan.items("absent_bridges")
        steps.append(("remove networks", lambda s: BridgeResource(s, absent_bridges, "absent", False, None)))
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
        if has_overlay_container(model, host):
            message = f"peers: this host {host!r} has a container on an overlay network but is not among the peers"
            raise ValidationError([f"{message} (set its wharf_underlay_address)"])
        peers = {}
    overlay = host in peers
    errors = overlay_errors(model, peers) + peer_errors(peers)
    if errors:
        raise ValidationError(errors)
    result = result if result is not None else ConvergeResult()
    plan = host_plan(model, host, peers)
    refused = sorted({item.namespace or "" for item in plan.sub_interfaces if not driver_for(item.kind).converges})
    if refused:
        raise ValidationError(
            [f"networks of driver macvlan/ipvlan are not supported yet (used by {', '.join(refused)})"]
        )
    vxlan_peers = sorted(set(peers.values()) - {peers[host]}) if overlay else None
    firewall = firewall_for_host(plan, run, nft_binary, record_dir, vxlan_peers, peers.get(host))
    if firewall is not None:
        with step_failures("firewall", result):
            firewall.validate()  # publish clashes and ports host processes hold: refused before the first change
            firewall.nft.tables()  # and an nft that cannot run
    if dns is not None:
        # files wharf did not write, dnspython missing: refused before the first change (a plan, nothing applied)
        with step_failures("dns", result):
            dns_converge(topology, host, True, resolv_conf, run=dns, model=model)
    result.containers = plan.items("containers")
    result.remote_containers = plan.items("remote_containers")
    vanishing: set[int] = set()
    with NamespaceSockets() as sockets:
        if overlay and plan.vxlans:
            # a wrong underlay address or an underlay too small for the networks' MTU: refused before any step
            by_vni = {n.vni: n.name for n in model.networks.values() if n.vni is not None}
            with step_failures("overlay", result):
                VxlanResource(sockets, plan.items("vxlans"), "present", True, None).validate(
                    lambda spec: f"peers.{host} (the inventory variable wharf_underlay_address)",
                    lambda spec: f"networks.{by_vni.get(spec.vni, spec.name)}.mtu",
                )
        latest = [plan]  # the plan as it stands when each step is built (see host_steps)
        for name, build in host_steps(lambda: latest[0], firewall, overlay):
            with step_failures(name, result):
                resource = build(sockets)
                resource.check_mode = check_mode
                if hasattr(resource, "vanishing_nsids"):
                    resource.vanishing_nsids = vanishing
                try:
                    if isinstance(resource, NetnsResource):
                        # ids must be read while the names still exist (before this step removes them)
                        vanishing.update(ids_of(sockets, resource.names_to_remove()))
                    run_step(name, resource, check_mode, result)
                    if getattr(resource, "actual_peer_names", None):
                        # the steps after this one (addresses) and the summary use the names the endpoints have
                        latest[0] = latest[0].with_interface_names(resource.actual_peer_names)
                        result.containers = latest[0].items("containers")
                finally:
                    if hasattr(resource, "close"):
                        resource.close()
    if firewall is not None:
        result.publishes = firewall.report()["publishes"]  # with the ports free-port requests got
    if dns is not None:
        dns_step(model, host, check_mode, resolv_conf, dns, result)
    return result
