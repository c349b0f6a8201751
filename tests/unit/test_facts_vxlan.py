"""VXLAN devices as observed facts, and the plan as the difference of the specs and those facts."""

from __future__ import annotations

import json
import socket
from dataclasses import FrozenInstanceError, replace
from types import SimpleNamespace

import pytest

from ansible_collections.wharf.network.plugins.module_utils._engine.errors import ValidationError
from ansible_collections.wharf.network.plugins.module_utils._engine.observed import as_json
from ansible_collections.wharf.network.plugins.module_utils._kernel import vxlan
from ansible_collections.wharf.network.plugins.module_utils._kernel.link import OWNER_MARK, Link
from ansible_collections.wharf.network.plugins.module_utils._kernel.rtnl import AF_BRIDGE, NTF_SELF, NUD_NOARP

MAC = "02:42:0a:00:00:05"
FDB = ["00:00:00:00:00:00 dst 10.77.0.2", "00:00:00:00:00:00 dst 10.77.0.3", f"{MAC} dst 10.77.0.3"]


def link(index, name, kind, master=None, owned=True, info=None, mtu=1500):
    alias = OWNER_MARK if owned else None
    return Link(index, name, kind, mtu, f"02:00:00:00:00:{index:02x}", True, master, alias, None, info or {})


class FakeKernel:
    """The dumps observe reads: links (by dump_links), addresses, and the bridge and IPv4 neighbour tables."""

    def __init__(self):
        self.links = {
            "lo": link(1, "lo", None, owned=False),
            "eth0": link(2, "eth0", None, owned=False, mtu=1500),
            "br0": link(3, "br0", "bridge"),
            "vx0": link(4, "vx0", "vxlan", master=3, info=VXLAN_INFO | {"port_learning": False}),
            "vx9": link(5, "vx9", "vxlan", owned=False, info=VXLAN_INFO | {"vni": 9, "port_learning": True}),
        }
        self.asked: list[int] = []

    def addrs(self):
        return [
            SimpleNamespace(address="10.77.0.1", family=socket.AF_INET, index=2),
            SimpleNamespace(address="fe80::1", family=socket.AF_INET6, index=2),
        ]

    def neighbours(self, family):
        self.asked.append(family)
        if family == AF_BRIDGE:
            return [
                SimpleNamespace(index=4, master=None, flags=NTF_SELF, address="10.77.0.3", mac=MAC, state=0),
                SimpleNamespace(index=4, master=None, flags=NTF_SELF, address="10.77.0.2", mac=vxlan.ZERO_MAC, state=0),
                SimpleNamespace(index=4, master=None, flags=NTF_SELF, address="10.77.0.3", mac=vxlan.ZERO_MAC, state=0),
                SimpleNamespace(index=4, master=3, flags=0, address=None, mac=MAC, state=NUD_NOARP),
                SimpleNamespace(index=5, master=None, flags=NTF_SELF, address="10.77.0.9", mac=MAC, state=0),
            ]
        return [
            SimpleNamespace(index=4, address="10.0.0.5", mac=MAC, state=0x80),
            SimpleNamespace(index=4, address="10.0.0.6", mac=MAC, state=0x02),  # learnt (REACHABLE): not ours
        ]


VXLAN_INFO = {"vni": 42, "local": "10.77.0.1", "port": 4789, "link": 2, "learning": False, "proxy": True}


@pytest.fixture
def kernel(monkeypatch):
    fake = FakeKernel()
    monkeypatch.setattr(vxlan, "dump_links", lambda _rtnl: fake.links)
    return fake


def test_observe_gives_frozen_facts_of_the_devices_and_names_the_other_links(kernel):
    have = vxlan.observe(kernel, "lab")
    assert list(have.facts) == ["vx0", "vx9"]
    assert have.others == {"lo": None, "eth0": None, "br0": "bridge"}
    ours = have.facts["vx0"]
    assert ours.label == "lab/vx0" and ours.owned and ours.index == 4
    assert (ours.vni, ours.local, ours.port, ours.underlay, ours.master) == (42, "10.77.0.1", 4789, "eth0", "br0")
    assert ours.port_learning is False
    assert ours.fdb == tuple(FDB)
    assert ours.neighbours == (f"10.0.0.5 lladdr {MAC}",)
    assert ours.bridge_fdb == (MAC,)
    # another's device: identity only, its tables not read, no bridge so no port learning
    foreign = have.facts["vx9"]
    assert not foreign.owned and foreign.fdb == () and foreign.port_learning is None
    assert have.address_owner == {"10.77.0.1": vxlan.UnderlayFacts("eth0", 2, 1500)}
    with pytest.raises(FrozenInstanceError):
        ours.mtu = 1400  # type: ignore[misc]


def test_observe_without_a_device_of_ours_reads_only_the_links(kernel):
    del kernel.links["vx0"]
    have = vxlan.observe(kernel, None, addresses=False)
    assert kernel.asked == [] and have.address_owner == {}


def test_an_observation_is_json_for_an_info_module(kernel):
    data = as_json(vxlan.observe(kernel, "lab"))
    assert json.loads(json.dumps(data)) == data
    assert data["facts"]["vx0"]["fdb"] == FDB
    assert data["address_owner"] == {"10.77.0.1": {"name": "eth0", "index": 2, "mtu": 1500}}
    assert data["others"]["br0"] == "bridge" and data["namespace"] == "lab"


def item(**kw):
    return {
        "name": "vx0",
        "vni": 42,
        "local": "10.77.0.1",
        "master": "br0",
        "peers": ["10.77.0.2", "10.77.0.3"],
        "remotes": [{"mac": MAC, "address": "10.0.0.5", "peer": "10.77.0.3"}],
        **kw,
    }


def plan_of(monkeypatch, kernel, items, state="present", exclusive=False, edit=None):
    have = vxlan.observe(kernel, None)
    if edit:
        have = replace(have, facts={name: edit(facts) for name, facts in have.facts.items()})
    monkeypatch.setattr(vxlan, "observe", lambda _rtnl, _ns, addresses=True: have)
    resource = vxlan.VxlanResource(SimpleNamespace(get=lambda _ns: None), items, state, exclusive)
    return resource.plan()


def test_facts_that_match_the_spec_plan_nothing(monkeypatch, kernel):
    assert plan_of(monkeypatch, kernel, [item()]).changes == []


def test_a_new_peer_is_an_update_of_the_fdb_only(monkeypatch, kernel):
    plan = plan_of(monkeypatch, kernel, [item(peers=["10.77.0.2", "10.77.0.3", "10.77.0.4"])])
    (change,) = plan.changes
    assert change.action == "update" and change.name == "(host)/vx0"
    assert change.before == {"fdb": FDB}
    assert change.after == {"fdb": [FDB[0], FDB[1], "00:00:00:00:00:00 dst 10.77.0.4", FDB[2]]}


def test_a_device_observed_down_and_off_its_bridge_is_updated_field_by_field(monkeypatch, kernel):
    plan = plan_of(monkeypatch, kernel, [item()], edit=lambda f: replace(f, up=False, master=None, port_learning=None))
    (change,) = plan.changes
    assert change.before == {"master": None, "port_learning": None, "up": False}
    assert change.after == {"master": "br0", "port_learning": False, "up": True}


def test_another_vni_remakes_the_device(monkeypatch, kernel):
    plan = plan_of(monkeypatch, kernel, [item(vni=43)])
    assert plan.summary() == ["update vxlan '(host)/vx0': vni 42 -> 43"]


def test_exclusive_prunes_our_unwanted_device_with_its_facts_as_before(monkeypatch, kernel):
    plan = plan_of(monkeypatch, kernel, [item(name="vx1", vni=7, master=None)], exclusive=True)
    assert plan.summary() == ["create vxlan '(host)/vx1'", "delete vxlan '(host)/vx0'"]
    removed = plan.changes[1]
    assert removed.after is None and removed.before is not None
    assert removed.before["bridge_fdb"] == [MAC] and removed.before["underlay"] == "eth0"
    assert removed.before["port_learning"] is False


def test_absent_deletes_ours_and_refuses_anothers_or_another_kind(monkeypatch, kernel):
    plan = plan_of(monkeypatch, kernel, [item()], state="absent")
    assert plan.summary() == ["delete vxlan '(host)/vx0'"]
    with pytest.raises(ValidationError) as raised:
        plan_of(monkeypatch, kernel, [item(name="vx9", vni=9), item(name="br0", vni=8)], state="absent")
    assert raised.value.errors == [
        "vxlans[0].name: interface 'vx9' in namespace (host) exists but was not created by wharf.network;"
        " refusing to remove it",
        "vxlans[1].name: interface 'br0' in namespace (host) exists but is not a VXLAN device; refusing to remove it",
    ]


def test_a_local_address_on_no_interface_is_refused(monkeypatch, kernel):
    with pytest.raises(ValidationError) as raised:
        plan_of(monkeypatch, kernel, [item(local="10.77.0.8", peers=[], remotes=[])])
    assert raised.value.errors == [
        "vxlans[0].local: 10.77.0.8 is not an address of any interface in namespace (host)"
        " (the underlay address must be configured first)"
    ]
