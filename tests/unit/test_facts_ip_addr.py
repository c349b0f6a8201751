"""Addresses and routes as observed facts, and the plan as the difference of the specs and those facts."""

from __future__ import annotations

import json
import socket
from dataclasses import FrozenInstanceError
from types import SimpleNamespace

import pytest

from ansible_collections.wharf.network.plugins.module_utils._engine.errors import ValidationError
from ansible_collections.wharf.network.plugins.module_utils._engine.observed import as_json
from ansible_collections.wharf.network.plugins.module_utils._kernel import addresses
from ansible_collections.wharf.network.plugins.module_utils._kernel.addresses import Route, RouteFacts
from ansible_collections.wharf.network.plugins.module_utils._kernel.link import Link
from ansible_collections.wharf.network.plugins.module_utils._kernel.rtnl import RouteMessage

BOOT = 3  # `ip route add` by hand
STATIC = addresses.RTPROT_STATIC


def route(oif, dst, dst_len, gateway=None, protocol=STATIC, family=socket.AF_INET, priority=None, kind=1):
    return RouteMessage(family, dst_len, 254, protocol, 0, kind, dst, gateway, oif, priority)


class Kernel:
    def __init__(self):
        self.links = {
            name: Link(index, name, None, 1500, "", True, None, None, None, {})
            for index, name in ((1, "lo"), (2, "eth0"), (3, "eth1"))
        }
        self.route_list = [
            route(2, "10.0.0.0", 24, protocol=addresses.RTPROT_KERNEL),
            route(2, "10.1.0.0", 16, "10.0.0.254"),
            route(2, None, 0, "10.0.0.1", protocol=BOOT),
            route(3, "10.9.0.0", 16, "10.0.9.1", protocol=BOOT),
            route(3, "10.9.0.0", 16, "10.0.9.1"),  # the same route again: the later protocol is kept
            route(2, "10.2.0.0", 16, "10.0.0.254", kind=6),  # prohibit: not a unicast route
        ]
        self.address_list = [
            SimpleNamespace(index=2, address="10.0.0.2", prefixlen=24),
            SimpleNamespace(index=2, address="fe80::1", prefixlen=64),
            SimpleNamespace(index=2, address="10.0.0.3", prefixlen=24),
            SimpleNamespace(index=1, address="127.0.0.1", prefixlen=8),
        ]

    def routes(self, family):
        assert family == socket.AF_UNSPEC
        return self.route_list

    def addrs(self):
        return self.address_list


@pytest.fixture
def kernel(monkeypatch):
    fake = Kernel()
    monkeypatch.setattr(addresses, "dump_links", lambda _rtnl: fake.links)
    return fake


def test_observe_gives_frozen_facts_of_every_interface(kernel):
    have = addresses.observe(kernel, "c1")
    assert list(have) == ["lo", "eth0", "eth1"]
    eth0 = have["eth0"]
    assert eth0.label == "c1/eth0" and eth0.index == 2
    assert eth0.addresses == ("10.0.0.2/24", "fe80::1/64", "10.0.0.3/24")
    assert eth0.routes == (
        RouteFacts(Route("10.0.0.0/24"), addresses.RTPROT_KERNEL),
        RouteFacts(Route("10.1.0.0/16", "10.0.0.254"), STATIC),
        RouteFacts(Route("default", "10.0.0.1"), BOOT),
    )
    assert have["eth1"].protocols() == {Route("10.9.0.0/16", "10.0.9.1"): STATIC}
    with pytest.raises(FrozenInstanceError):
        eth0.index = 5  # type: ignore[misc]
    data = as_json(have)
    assert json.loads(json.dumps(data)) == data
    assert data["eth1"]["routes"] == [
        {"route": {"dest": "10.9.0.0/16", "gateway": "10.0.9.1", "metric": None, "v6": False}, "protocol": STATIC}
    ]


def plan_of(kernel, items, state="present", exclusive=False, check_mode=False):
    resource = addresses.IpAddrResource(SimpleNamespace(get=lambda _ns: kernel), items, state, exclusive)
    resource.check_mode = check_mode
    return resource.plan()


def test_facts_that_hold_the_spec_plan_nothing(kernel):
    assert (
        plan_of(
            kernel,
            [
                {
                    "name": "eth0",
                    "addresses": ["10.0.0.2/24"],
                    "routes": [{"dest": "10.1.0.0/16", "gateway": "10.0.0.254"}],
                }
            ],
        ).changes
        == []
    )


def test_exclusive_removes_other_addresses_and_our_static_routes_only(kernel):
    plan = plan_of(
        kernel, [{"name": "eth0", "addresses": ["10.0.0.2/24", "10.0.0.9/24"], "routes": []}], exclusive=True
    )
    (change,) = plan.changes
    assert (change.action, change.name) == ("update", "(host)/eth0")
    assert change.before == {"addresses": ["10.0.0.2/24", "10.0.0.3/24"], "routes": ["10.1.0.0/16 via 10.0.0.254"]}
    assert change.after == {"addresses": ["10.0.0.2/24", "10.0.0.9/24"], "routes": []}


def test_absent_removes_only_what_the_spec_lists_and_is_there(kernel):
    plan = plan_of(
        kernel,
        [{"name": "eth1", "addresses": ["10.0.9.5/24"], "routes": [{"dest": "10.9.0.0/16", "gateway": "10.0.9.1"}]}],
        "absent",
    )
    (change,) = plan.changes
    assert change.before == {"addresses": [], "routes": ["10.9.0.0/16 via 10.0.9.1"]}
    assert change.after == {"addresses": [], "routes": []}


def test_a_missing_interface_is_refused_or_predicted_in_check_mode(kernel):
    with pytest.raises(ValidationError) as raised:
        plan_of(kernel, [{"name": "eth7", "addresses": ["10.0.7.1/24"]}])
    assert raised.value.errors == ["interfaces[0].name: interface 'eth7' does not exist in namespace (host)"]
    (change,) = plan_of(kernel, [{"name": "eth7", "addresses": ["10.0.7.1/24"]}], check_mode=True).changes
    assert (change.before, change.after) == (
        {"addresses": [], "routes": []},
        {"addresses": ["10.0.7.1/24"], "routes": []},
    )


def test_ipv6_is_read_only_where_an_item_asks_and_turned_off_with_router_advertisements_refused(kernel, monkeypatch):
    asked = []

    def fake_observe_ipv6(namespace, names):
        asked.append((namespace, sorted(names)))
        return {name: addresses.Ipv6Conf(True, 1) for name in names}

    monkeypatch.setattr(addresses, "observe_ipv6", fake_observe_ipv6)
    plan = plan_of(kernel, [{"name": "eth0", "addresses": ["10.0.0.2/24"], "ipv6": False}, {"name": "eth1"}])
    assert asked == [(None, ["eth0"])]
    (change,) = plan.changes
    assert change.name == "(host)/eth0"
    assert change.before == {"addresses": ["10.0.0.2/24", "10.0.0.3/24"], "routes": [], "ipv6": "on, accept_ra 1"}
    assert change.after == {"addresses": ["10.0.0.2/24", "10.0.0.3/24"], "routes": [], "ipv6": "off, accept_ra 0"}
    # IPv6 kept on: router advertisements are refused all the same
    (change,) = plan_of(kernel, [{"name": "eth0", "ipv6": True}]).changes
    assert (change.before["ipv6"], change.after["ipv6"]) == ("on, accept_ra 1", "on, accept_ra 0")


def test_ipv6_already_as_asked_or_absent_from_the_kernel_plans_nothing(kernel, monkeypatch):
    off = addresses.Ipv6Conf(False, 0)
    monkeypatch.setattr(addresses, "observe_ipv6", lambda _ns, names: dict.fromkeys(names, off))
    assert plan_of(kernel, [{"name": "eth0", "addresses": ["10.0.0.2/24"], "ipv6": False}]).changes == []
    monkeypatch.setattr(addresses, "observe_ipv6", lambda _ns, names: dict.fromkeys(names))  # no IPv6 in this kernel
    assert plan_of(kernel, [{"name": "eth0", "addresses": ["10.0.0.2/24"], "ipv6": False}]).changes == []
    # absent takes addresses away and leaves IPv6 alone
    on = addresses.Ipv6Conf(True, 1)
    monkeypatch.setattr(addresses, "observe_ipv6", lambda _ns, names: dict.fromkeys(names, on))
    assert plan_of(kernel, [{"name": "eth0", "addresses": ["10.0.0.9/24"], "ipv6": False}], "absent").changes == []


def test_check_mode_predicts_ipv6_of_an_interface_not_made_yet(kernel, monkeypatch):
    monkeypatch.setattr(addresses, "predicted_ipv6", lambda _ns: addresses.Ipv6Conf(True, 1))
    (change,) = plan_of(kernel, [{"name": "eth7", "ipv6": False}], check_mode=True).changes
    assert (change.before["ipv6"], change.after["ipv6"]) == ("on, accept_ra 1", "off, accept_ra 0")


def test_ipv6_must_be_a_boolean(kernel):
    with pytest.raises(ValidationError) as raised:
        plan_of(kernel, [{"name": "eth0", "ipv6": "no"}])
    assert raised.value.errors == ["interfaces[0].ipv6: 'no' must be true, false or omitted"]
    with pytest.raises(ValidationError) as raised:
        plan_of(kernel, [{"name": "eth0", "addresses": ["2001:db8::5/64"], "ipv6": False}])
    assert raised.value.errors == ["interfaces[0]: IPv6 addresses ['2001:db8::5/64'] with ipv6 false"]
