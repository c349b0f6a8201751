"""veth ends as observed facts, and the plan as the difference of the specs and those facts."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError
from types import SimpleNamespace

import pytest

from ansible_collections.wharf.network.plugins.module_utils._engine.errors import ValidationError
from ansible_collections.wharf.network.plugins.module_utils._engine.observed import as_json
from ansible_collections.wharf.network.plugins.module_utils._kernel import namespace as nl
from ansible_collections.wharf.network.plugins.module_utils._kernel import veth
from ansible_collections.wharf.network.plugins.module_utils._kernel.link import OWNER_MARK, Link


def link(index, name, kind, peer=None, master=None, owned=True, netnsid=None, mtu=1500, info=None):
    alias = OWNER_MARK if owned else None
    mac = f"02:00:00:00:00:{index:02x}"
    return Link(index, name, kind, mtu, mac, True, master, alias, peer, info or {}, netnsid)


def kernel():
    """The host: a bridge, a pair to container c1 on it, a pair to c1 no item wants, another's veth, a plain
    link. Container c1: the peers (indexes overlap the host's, as in a fresh namespace)."""
    host = [
        link(1, "lo", None, owned=False),
        link(2, "eth0", None, owned=False),
        link(3, "br0", "bridge"),
        link(4, "veth-a", "veth", peer=2, master=3, netnsid=0, info={"hairpin": False}),
        link(5, "veth-old", "veth", peer=3, master=3, netnsid=0, info={"hairpin": True}),
        link(6, "veth-x", "veth", peer=9, owned=False),
    ]
    c1 = [
        link(1, "lo", None, owned=False),
        link(2, "eth0", "veth", peer=4, netnsid=0),
        link(3, "eth1", "veth", peer=5, netnsid=0),
    ]
    return {None: {x.name: x for x in host}, "c1": {x.name: x for x in c1}}


@pytest.fixture
def links(monkeypatch):
    dumps = kernel()
    monkeypatch.setattr(veth, "dump_links", lambda rtnl: dumps[rtnl.namespace])
    monkeypatch.setattr(nl, "netns_exists", lambda name: name in dumps)
    return dumps


SOCKETS = SimpleNamespace(get=lambda namespace: SimpleNamespace(namespace=namespace))


def test_observe_gives_frozen_facts_of_the_ends_with_their_bridge_by_name(links):
    have = veth.observe(SOCKETS.get(None), None)
    assert list(have.facts) == ["veth-a", "veth-old", "veth-x"]
    assert have.others == {"lo": None, "eth0": None, "br0": "bridge"}
    end = have.facts["veth-a"]
    assert (end.label, end.master, end.hairpin, end.peer_index, end.link_netnsid) == (
        "(host)/veth-a",
        "br0",
        False,
        2,
        0,
    )
    assert have.facts["veth-x"].hairpin is None and have.facts["veth-x"].master is None
    assert have.indexes["br0"] == 3 and have.indexes["veth-x"] == 6
    with pytest.raises(FrozenInstanceError):
        end.mtu = 1400  # type: ignore[misc]
    data = as_json(have)
    assert json.loads(json.dumps(data)) == data and data["facts"]["veth-old"]["hairpin"] is True


def item(**kw):
    return {"name": "veth-a", "peer": "eth0", "peer_namespace": "c1", "master": "br0", **kw}


def plan_of(items, state="present", exclusive=False, **kw):
    resource = veth.VethResource(SOCKETS, items, state, exclusive, None, **kw)
    return resource, resource.plan()


def test_facts_that_match_the_spec_plan_nothing(links):
    assert plan_of([item(), item(name="veth-old", peer="eth1")])[1].changes == []


def test_an_mtu_is_a_field_update_of_both_ends(links):
    (change,) = plan_of([item(mtu=1400)])[1].changes
    assert (change.action, change.name) == ("update", "(host)/veth-a")
    assert change.before == {"mtu": 1500, "peer_mtu": 1500} and change.after == {"mtu": 1400, "peer_mtu": 1400}


def test_another_peer_name_is_a_rename_and_hairpin_is_compared_on_a_port(links):
    plan = plan_of([item(peer="eth7", hairpin=True)])[1]
    assert plan.summary() == ["update veth '(host)/veth-a': peer 'eth0' -> 'eth7', hairpin False -> True"]


def test_a_lost_peer_rebuilds_the_pair_showing_every_observed_field(links):
    del links["c1"]["eth0"]
    (change,) = plan_of([item()])[1].changes
    assert change.action == "update"
    assert change.before == {
        "peer": None,
        "mtu": 1500,
        "peer_mtu": None,
        "mac": "02:00:00:00:00:04",
        "peer_mac": None,
        "master": "br0",
        "hairpin": False,
        "up": False,
    }


def test_exclusive_removes_an_unwanted_pair_once_without_its_bridge_in_the_diff(links):
    plan = plan_of([item()], exclusive=True)[1]
    assert plan.summary() == ["delete veth '(host)/veth-old'"]
    assert plan.changes[0].before == {
        "peer": None,
        "mtu": 1500,
        "peer_mtu": None,
        "mac": "02:00:00:00:00:05",
        "peer_mac": None,
        "master": None,
        "hairpin": None,
        "up": False,
    }


def test_exclusive_leaves_the_ends_of_a_vanishing_namespace(links):
    resource = veth.VethResource(SOCKETS, [item()], "present", True, None, exclusive_namespaces=[None])
    resource.vanishing_nsids = {0}
    assert resource.plan().changes == []


def test_absent_deletes_the_pair_and_refuses_anothers_or_another_kind(links):
    plan = plan_of([item()], state="absent")[1]
    assert plan.summary() == ["delete veth '(host)/veth-a'"]
    assert plan.changes[0].before is not None and plan.changes[0].before["peer"] == "eth0"
    assert plan.changes[0].before["master"] is None
    with pytest.raises(ValidationError) as raised:
        plan_of([item(name="veth-x", peer="p1"), item(name="br0", peer="p2")], state="absent")
    assert raised.value.errors == [
        "veths[0].name: interface 'veth-x' in namespace (host) exists but was not created by wharf.network;"
        " refusing to remove it",
        "veths[1].name: interface 'br0' in namespace (host) exists but is not a veth; refusing to remove it",
    ]


def test_a_master_that_is_no_bridge_and_a_taken_peer_name_are_refused(links):
    with pytest.raises(ValidationError) as raised:
        plan_of(
            [
                item(name="v1", peer="p1", master="eth0"),
                item(name="v2", peer="p2", master="veth-x"),
                item(name="v3", peer="p3", master="br9"),
                item(name="v4", peer="eth1"),
            ]
        )
    assert raised.value.errors == [
        "veths[0].master: bridge 'eth0' in namespace (host) is a plain link, not a bridge",
        "veths[1].master: bridge 'veth-x' in namespace (host) is a veth link, not a bridge",
        "veths[2].master: bridge 'br9' in namespace (host) does not exist",
        "veths[3].peer: interface 'eth1' already exists in namespace c1",
    ]


def test_kept_peer_names_take_the_lowest_free_ethN(links):
    resource, plan = plan_of([item(), item(name="v2", peer="lo")], exclusive=True, keep_peer_names=True)
    assert resource.actual_peer_names == {("c1", "lo"): "eth1"}  # eth1 is freed: its pair is pruned
    assert plan.summary() == ["delete veth '(host)/veth-old'", "create veth '(host)/v2'"]
