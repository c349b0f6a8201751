# This file is private to the wharf.network collection: its API may change at any time.
"""Addresses and routes on interfaces inside a namespace.

Addresses are observed before they are added (re-adding raises EEXIST). With `exclusive`,
addresses on a managed interface that the item does not list are removed (not the kernel's IPv6
link-local ones), and so are `proto static` routes: the kind this module adds. Routes of other
origins, the kernel's connected routes and routes added by hand (`ip route add` says `proto boot`),
are left alone, as Docker leaves a route someone added inside a container.

An item with `ipv6` also sets what IPv6 does on the interface (its sysctls, read and written inside the
interface's namespace): `ipv6: false` turns it off (`disable_ipv6`: no link-local address, nothing
IPv6 accepted), as Docker does on a container interface of an IPv4-only network; either way router
advertisements are never accepted (`accept_ra` 0), so a container that forges one cannot give its
neighbours or the host an address or a default route through itself.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.wharf.network.plugins.module_utils._engine import validate as check
from ansible_collections.wharf.network.plugins.module_utils._engine.errors import ValidationError, kernel_error
from ansible_collections.wharf.network.plugins.module_utils._engine.plan import Plan
from ansible_collections.wharf.network.plugins.module_utils._engine.resource import NamespacedSpec, Resource
from ansible_collections.wharf.network.plugins.module_utils._kernel import namespace as nl
from ansible_collections.wharf.network.plugins.module_utils._kernel import sysctl
from ansible_collections.wharf.network.plugins.module_utils._kernel.link import dump_links
from ansible_collections.wharf.network.plugins.module_utils._kernel.rtnl import RTN_UNICAST, RouteMessage, Rtnl

KIND = "ip_addr"
RTPROT_KERNEL = 2
RTPROT_STATIC = 4


@dataclass(frozen=True, order=True)
class Route:
    """A route in the main table; dest is 'default' or a network in CIDR form."""

    dest: str
    gateway: str | None = None
    metric: int | None = None
    v6: bool = False  # "default" alone does not say which family's default it is

    @property
    def family(self) -> int:
        return socket.AF_INET6 if self.v6 else socket.AF_INET

    def text(self) -> str:
        words = ["default (IPv6)" if self.dest == "default" and self.v6 and not self.gateway else self.dest]
        if self.gateway:
            words.append(f"via {self.gateway}")
        if self.metric is not None:
            words.append(f"metric {self.metric}")
        return " ".join(words)


@dataclass(frozen=True)
class Ipv6Conf:
    """What IPv6 does on one interface: on or off (``disable_ipv6``), and ``accept_ra`` (0 never, 1 when not
    forwarding, 2 always)."""

    enabled: bool
    accept_ra: int

    def text(self) -> str:
        return f"{'on' if self.enabled else 'off'}, accept_ra {self.accept_ra}"

    def sysctls(self, name: str) -> dict[str, str]:
        """Its sysctls for interface ``name``, in the order to write them: router advertisements refused before
        IPv6 is turned on."""
        return {
            _ipv6_key(name, "accept_ra"): str(self.accept_ra),
            _ipv6_key(name, "disable_ipv6"): str(int(not self.enabled)),
        }


def _ipv6_key(name: str, leaf: str) -> str:
    return f"net/ipv6/conf/{name}/{leaf}"  # slashed: an interface name may hold a dot


KERNEL_DEFAULT_IPV6 = Ipv6Conf(True, 1)  # a new namespace's interfaces, unless its defaults were changed


@dataclass
class InterfaceSpec(NamespacedSpec):
    name: str
    namespace: str | None
    addresses: list[str] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    ipv6: bool | None = None  # None: IPv6 left as it is

    @property
    def ipv6_conf(self) -> Ipv6Conf | None:
        """What the item asks of IPv6: on or off, and router advertisements never accepted."""
        return None if self.ipv6 is None else Ipv6Conf(self.ipv6, 0)


def _canonical_cidr(value: str) -> str:
    return ipaddress.ip_interface(value).with_prefixlen


def _canonical_dest(value: str) -> str:
    if value in ("default", "0.0.0.0/0", "::/0"):
        return "default"
    return ipaddress.ip_network(value, strict=True).with_prefixlen


def parse_items(items: list[dict[str, Any]], default_namespace: str | None) -> list[InterfaceSpec]:
    errors: list[str] = []
    specs: list[InterfaceSpec] = []
    for index, item in enumerate(items):
        path = f"interfaces[{index}]"
        name = item.get("name") or ""
        namespace = item.get("namespace") or default_namespace
        problems = [check.interface_name(f"{path}.name", name), check.namespace_name(f"{path}.namespace", namespace)]
        ipv6 = item.get("ipv6")
        if ipv6 is not None and not isinstance(ipv6, bool):
            problems.append(f"{path}.ipv6: {ipv6!r} must be true, false or omitted")
        addresses: list[str] = []
        for a_index, address in enumerate(item.get("addresses") or []):
            problem = check.interface_cidr(f"{path}.addresses[{a_index}]", address)
            problems.append(problem)
            if problem is None:
                addresses.append(_canonical_cidr(address))
        routes: list[Route] = []
        for r_index, route in enumerate(item.get("routes") or []):
            r_path = f"{path}.routes[{r_index}]"
            if isinstance(route, str):
                route = {"dest": route}
            if not isinstance(route, dict):
                problems.append(f"{r_path}: a route is a mapping with dest, gateway and metric, got {route!r}")
                continue
            dest = route.get("dest", "default")
            gateway = route.get("gateway")
            metric = route.get("metric")
            dest_problem = None if dest in ("0.0.0.0/0", "::/0") else check.route_destination(f"{r_path}.dest", dest)
            gw_problem = check.ip_address(f"{r_path}.gateway", gateway)
            problems.extend([dest_problem, gw_problem])
            if metric is not None and (
                isinstance(metric, bool) or not isinstance(metric, int) or not 0 <= metric <= 0xFFFFFFFF
            ):
                problems.append(f"{r_path}.metric: {metric!r} must be an integer from 0 to 4294967295")
            if (
                dest_problem is None
                and gw_problem is None
                and gateway
                and dest not in ("default",)
                and (":" in str(dest)) != (":" in str(gateway))
            ):
                problems.append(f"{r_path}: gateway {gateway} and destination {dest} are of different IP families")
            if dest_problem is None and gw_problem is None:
                v6 = ":" in str(dest) or bool(gateway and ":" in str(gateway))
                family = socket.AF_INET6 if v6 else socket.AF_INET
                canonical = _canonical_dest(str(dest))
                routes.append(
                    Route(canonical, str(gateway) if gateway else None, _canonical_metric(family, metric), v6)
                )
        if ipv6 is False and any(":" in a for a in addresses):
            problems.append(f"{path}: IPv6 addresses {[a for a in addresses if ':' in a]} with ipv6 false")
        problems.extend(check.duplicates(f"{path}.addresses", "address", [(a,) for a in addresses]))
        problems.extend(check.duplicates(f"{path}.routes", "route", [(r.text(),) for r in routes]))
        errors.extend(p for p in problems if p)
        specs.append(InterfaceSpec(name, namespace, addresses, routes, ipv6 if isinstance(ipv6, bool) else None))
    errors.extend(check.duplicates("interfaces", "name", [(s.namespace, s.name) for s in specs]))
    if errors:
        raise ValidationError(errors)
    return specs


@dataclass(frozen=True)
class RouteFacts:
    """A main-table route through an interface, with the protocol that added it (`proto static` is ours)."""

    route: Route
    protocol: int


@dataclass(frozen=True)
class AddressFacts:
    """The addresses (canonical CIDR, in the kernel's order) and main-table unicast routes of one interface as
    the kernel holds them. Index 0: an interface not there yet, in a check run that predicts it."""

    name: str
    namespace: str | None
    index: int
    addresses: tuple[str, ...] = ()
    routes: tuple[RouteFacts, ...] = ()
    ipv6: Ipv6Conf | None = None  # read only where an item asks; None too where the kernel has no IPv6

    @property
    def label(self) -> str:
        return f"{nl.ns_label(self.namespace)}/{self.name}"

    def protocols(self) -> dict[Route, int]:
        """The routes, each with its protocol."""
        return {item.route: item.protocol for item in self.routes}


def _observe_addresses(rtnl: Rtnl, index: int) -> list[str]:
    return [_canonical_cidr(f"{a.address}/{a.prefixlen}") for a in rtnl.addrs(index)]


def _route_from_message(msg: RouteMessage) -> Route | None:
    dest = "default" if msg.dst_len == 0 else f"{msg.dst}/{msg.dst_len}"
    try:
        dest = _canonical_dest(dest)
    except ValueError:
        return None
    return Route(dest, msg.gateway, _canonical_metric(msg.family, msg.priority), msg.family == socket.AF_INET6)


def _main_routes(rtnl: Rtnl) -> list[RouteMessage]:
    """Unicast routes of the main table, both families in one dump."""
    return [r for r in rtnl.routes(socket.AF_UNSPEC) if r.type == RTN_UNICAST]


def _canonical_metric(family: int, metric: int | None) -> int | None:
    """None stands for the kernel's default metric: 0 for IPv4, 1024 for IPv6."""
    default = 1024 if family == socket.AF_INET6 else 0
    return None if metric in (None, default) else metric


@contextlib.contextmanager
def _naming(subject: str, action: str) -> Iterator[None]:
    """Re-raise a kernel error as one that names the interface and the address or route."""
    try:
        yield
    except Exception as exc:
        raise kernel_error(subject, action, exc) from exc


def _is_link_local(cidr: str) -> bool:
    return ipaddress.ip_interface(cidr).ip.is_link_local and ":" in cidr


def observe_ipv6(namespace: str | None, names: Collection[str]) -> dict[str, Ipv6Conf | None]:
    """The IPv6 sysctls of the interfaces ``names`` (or ``default``: what a new interface starts with) of one
    namespace, one entry into it; None where the kernel has no IPv6 there."""
    keys = [_ipv6_key(name, leaf) for name in names for leaf in ("disable_ipv6", "accept_ra")]
    values = sysctl.read(namespace, keys)
    confs: dict[str, Ipv6Conf | None] = {}
    for name in names:
        disabled, accept_ra = values[_ipv6_key(name, "disable_ipv6")], values[_ipv6_key(name, "accept_ra")]
        if disabled is None or accept_ra is None or not accept_ra.lstrip("-").isdigit():
            confs[name] = None
        else:
            confs[name] = Ipv6Conf(disabled == "0", int(accept_ra))
    return confs


def predicted_ipv6(namespace: str | None) -> Ipv6Conf | None:
    """What IPv6 an interface not made yet will start with, for a check run: its namespace's defaults, the
    kernel's where the namespace is not made yet either."""
    if namespace is not None and not nl.netns_exists(namespace):
        return KERNEL_DEFAULT_IPV6 if os.path.isdir(sysctl.path("net/ipv6/conf")) else None
    return observe_ipv6(namespace, ["default"])["default"]


def observe(rtnl: Rtnl, namespace: str | None, ipv6_of: Collection[str] = ()) -> Mapping[str, AddressFacts]:
    """The addresses and routes of every interface of one namespace, by name (a dump each of links, routes
    and addresses), and the IPv6 sysctls of the interfaces ``ipv6_of``."""
    links = dump_links(rtnl)
    routes: dict[int | None, dict[Route, int]] = {}
    for msg in _main_routes(rtnl):
        route = _route_from_message(msg)
        if route is not None:
            routes.setdefault(msg.oif, {})[route] = msg.protocol
    addresses: dict[int, list[str]] = {}
    for a in rtnl.addrs():
        addresses.setdefault(a.index, []).append(_canonical_cidr(f"{a.address}/{a.prefixlen}"))
    ipv6 = observe_ipv6(namespace, [name for name in ipv6_of if name in links])
    return {
        name: AddressFacts(
            name,
            namespace,
            link.index,
            tuple(addresses.get(link.index, [])),
            tuple(RouteFacts(route, protocol) for route, protocol in routes.get(link.index, {}).items()),
            ipv6.get(name),
        )
        for name, link in links.items()
    }


class IpAddrResource(Resource):
    """observe / plan / apply for addresses and routes."""

    parse = staticmethod(parse_items)

    def plan(self) -> Plan:
        plan = Plan()
        errors: list[str] = []
        observed: dict[str | None, Mapping[str, AddressFacts]] = {}
        ipv6_of: dict[str | None, set[str]] = {}
        for spec in self.specs:
            if spec.ipv6 is not None and self.state == "present":  # absent takes addresses away, not IPv6
                ipv6_of.setdefault(spec.namespace, set()).add(spec.name)
        for index, spec in enumerate(self.specs):
            if spec.namespace is not None and not nl.netns_exists(spec.namespace):
                if self.state == "present" and self.check_mode:
                    self._plan_interface(plan, spec, self._not_made_yet(spec))
                elif self.state == "present":
                    errors.append(f"interfaces[{index}]: namespace '{spec.namespace}' does not exist")
                continue
            if spec.namespace not in observed:
                observed[spec.namespace] = observe(
                    self.sockets.get(spec.namespace), spec.namespace, ipv6_of.get(spec.namespace, ())
                )
            have = observed[spec.namespace].get(spec.name)
            if have is None:
                if self.state == "present" and self.check_mode:
                    # an earlier task of this check run (a veth, a bridge) would have made it
                    self._plan_interface(plan, spec, self._not_made_yet(spec))
                elif self.state == "present":
                    errors.append(
                        f"interfaces[{index}].name: interface '{spec.name}' does not exist in namespace "
                        f"{nl.ns_label(spec.namespace)}"
                    )
                continue
            self._plan_interface(plan, spec, have)
        if errors:
            raise ValidationError(errors)
        return plan

    @staticmethod
    def _not_made_yet(spec: InterfaceSpec) -> AddressFacts:
        """The facts of an interface an earlier step of this check run would make: no addresses, and the IPv6
        its namespace gives a new interface."""
        ipv6 = predicted_ipv6(spec.namespace) if spec.ipv6 is not None else None
        return AddressFacts(spec.name, spec.namespace, 0, ipv6=ipv6)

    def _plan_interface(self, plan: Plan, spec: InterfaceSpec, have: AddressFacts) -> None:
        protocols = have.protocols()
        have_addresses = set(have.addresses)
        have_routes = set(protocols)
        if self.state == "present":
            add_addresses = [a for a in spec.addresses if a not in have_addresses]
            add_routes = [r for r in spec.routes if r not in have_routes]
            del_addresses: list[str] = []
            del_routes: list[Route] = []
            if self.exclusive:
                del_addresses = [a for a in have.addresses if a not in spec.addresses and not _is_link_local(a)]
                del_routes = [r for r, proto in protocols.items() if r not in spec.routes and proto == RTPROT_STATIC]
        else:
            add_addresses, add_routes = [], []
            del_addresses = [a for a in spec.addresses if a in have_addresses]
            del_routes = [r for r in spec.routes if r in have_routes]
        want_ipv6 = spec.ipv6_conf if self.state == "present" else None
        fix_ipv6 = want_ipv6 if want_ipv6 is not None and have.ipv6 is not None and have.ipv6 != want_ipv6 else None
        if not (add_addresses or add_routes or del_addresses or del_routes or fix_ipv6):
            return
        relevant_routes = {r for r in have_routes if r in set(spec.routes) | set(del_routes)}
        before_addresses = sorted(a for a in have.addresses if not _is_link_local(a))
        before = {"addresses": before_addresses, "routes": sorted(r.text() for r in relevant_routes)}
        after_routes = (relevant_routes | set(add_routes)) - set(del_routes)
        after_addresses = (set(before_addresses) | set(add_addresses)) - set(del_addresses)
        after = {"addresses": sorted(after_addresses), "routes": sorted(r.text() for r in after_routes)}
        if want_ipv6 is not None and have.ipv6 is not None:
            before["ipv6"], after["ipv6"] = have.ipv6.text(), want_ipv6.text()
        action = "update"

        def apply() -> None:
            rtnl = self.sockets.get(spec.namespace)
            subject = f"interface '{spec.label}'"
            if fix_ipv6 is not None:
                with _naming(subject, f"set IPv6 {fix_ipv6.text()}"):
                    sysctl.write(spec.namespace, fix_ipv6.sysctls(spec.name))
            for route in del_routes:
                with _naming(subject, f"delete route {route.text()}"):
                    self._send_route(rtnl, route, have.index, add=False)
            # add before delete: removing the last address of a subnet takes its routes with it
            self._add_addresses(rtnl, subject, have.index, add_addresses)
            for address in del_addresses:
                iface = ipaddress.ip_interface(address)
                if iface.version == 6 and fix_ipv6 is not None and not fix_ipv6.enabled:
                    continue  # turning IPv6 off took every IPv6 address with it
                with _naming(subject, f"delete address {address}"):
                    rtnl.del_addr(have.index, str(iface.ip), iface.network.prefixlen)
            routes_to_add = add_routes
            if del_addresses and self.state == "present":
                # deleting a primary address also drops its secondaries and the routes through it:
                # look again and restore whatever of the wanted state went with them
                present = set(_observe_addresses(rtnl, have.index))
                self._add_addresses(rtnl, subject, have.index, [a for a in spec.addresses if a not in present])
                live = {_route_from_message(m) for m in _main_routes(rtnl) if m.oif == have.index}
                routes_to_add = [r for r in spec.routes if r not in live]
            for route in routes_to_add:
                with _naming(subject, f"add route {route.text()}"):
                    self._send_route(rtnl, route, have.index, add=True)

        plan.add(KIND, spec.label, action, before, after, apply)

    @staticmethod
    def _add_addresses(rtnl: Rtnl, subject: str, index: int, cidrs: list[str]) -> None:
        for address in cidrs:
            iface = ipaddress.ip_interface(address)
            with _naming(subject, f"add address {address}"):
                rtnl.add_addr(index, str(iface.ip), iface.network.prefixlen)

    @staticmethod
    def _send_route(rtnl: Rtnl, route: Route, index: int, add: bool) -> None:
        if route.dest == "default":
            dst, dst_len = None, 0
        else:
            network = ipaddress.ip_network(route.dest)
            dst, dst_len = str(network.network_address), network.prefixlen
        if add:
            rtnl.add_route(route.family, dst, dst_len, route.gateway, index, route.metric, RTPROT_STATIC)
        else:
            rtnl.del_route(route.family, dst, dst_len, route.gateway, index, route.metric)

    def report(self) -> list[dict[str, Any]]:
        return [
            {
                "name": s.name,
                "namespace": s.namespace,
                "addresses": s.addresses,
                "routes": [{"dest": r.dest, "gateway": r.gateway, "metric": r.metric} for r in s.routes],
                "ipv6": s.ipv6,
                "state": self.state,
            }
            for s in self.specs
        ]
