"""wharf.network.veth on real veth pairs inside a sandbox host."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def two_containers(sandbox):
    sandbox.module("netns", {"namespaces": [{"name": "c1"}, {"name": "c2"}]})
    sandbox.module("bridge", {"bridges": [{"name": "br0"}, {"name": "br1"}]})
    return sandbox


def test_veth_lifecycle(two_containers):
    sandbox = two_containers
    items = [
        {
            "name": "ve-c1",
            "peer": "eth0",
            "peer_namespace": "c1",
            "master": "br0",
            "mtu": 1400,
            "peer_mac": "02:42:c0:00:02:0a",
        },
        {"name": "ve-c2", "peer": "eth0", "peer_namespace": "c2", "master": "br0"},
    ]
    first = sandbox.module("veth", {"veths": items})
    assert not first.failed, first.output
    assert first.result["changes"] == ["create veth '(host)/ve-c1'", "create veth '(host)/ve-c2'"]
    host = sandbox.links()
    inside = sandbox.links("c1")
    assert host["ve-c1"]["master"] == "br0" and host["ve-c1"]["mtu"] == 1400
    assert host["ve-c1"]["ifalias"] == "wharf.network"
    assert inside["eth0"]["address"] == "02:42:c0:00:02:0a" and inside["eth0"]["mtu"] == 1400
    assert "UP" in inside["eth0"]["flags"] and "UP" in host["ve-c1"]["flags"]
    assert "eth0" in sandbox.links("c2")
    assert "eth0" not in host  # the peer was made in its namespace, not left on the host

    assert not sandbox.module("veth", {"veths": items}).changed

    edited = [{**items[0], "master": "br1", "mtu": 1450}, items[1]]
    predicted = sandbox.module("veth", {"veths": edited}, check=True, diff=True)
    assert predicted.result["changes"] == [
        "update veth '(host)/ve-c1': master 'br0' -> 'br1', mtu 1400 -> 1450, peer_mtu 1400 -> 1450"
    ]
    assert "master: br0" in predicted.result["diff"]["before"]
    assert "master: br1" in predicted.result["diff"]["after"]
    assert sandbox.links()["ve-c1"]["master"] == "br0"
    applied = sandbox.module("veth", {"veths": edited})
    assert applied.result["changes"] == predicted.result["changes"]
    assert sandbox.links()["ve-c1"]["master"] == "br1"
    assert sandbox.links("c1")["eth0"]["mtu"] == 1450
    assert not sandbox.module("veth", {"veths": edited}).changed

    removed = sandbox.module("veth", {"veths": edited, "state": "absent"})
    assert removed.result["changes"] == ["delete veth '(host)/ve-c1'", "delete veth '(host)/ve-c2'"]
    assert "ve-c1" not in sandbox.links() and "eth0" not in sandbox.links("c1")
    assert not sandbox.module("veth", {"veths": edited, "state": "absent"}).changed


def test_veth_with_lost_peer_is_rebuilt(two_containers):
    sandbox = two_containers
    item = {"name": "ve-c1", "peer": "eth0", "peer_namespace": "c1"}
    sandbox.module("veth", {"veths": [item]})
    sandbox.sh("ip -n c1 link set eth0 name eth9")
    drift = sandbox.module("veth", {"veths": [item]}, check=True)
    assert drift.changed and drift.result["changes"][0].startswith("update veth '(host)/ve-c1'")
    fixed = sandbox.module("veth", {"veths": [item]})
    assert fixed.changed
    assert "eth0" in sandbox.links("c1") and "eth9" not in sandbox.links("c1")
    assert not sandbox.module("veth", {"veths": [item]}).changed


def test_veth_between_two_named_namespaces(two_containers):
    sandbox = two_containers
    item = {"name": "to-c2", "namespace": "c1", "peer": "to-c1", "peer_namespace": "c2"}
    assert sandbox.module("veth", {"veths": [item]}).changed
    assert "to-c2" in sandbox.links("c1") and "to-c1" in sandbox.links("c2")
    assert not sandbox.module("veth", {"veths": [item]}).changed


def test_veth_bad_input_changes_nothing(two_containers):
    sandbox = two_containers
    before = set(sandbox.links())
    bad = [
        {"name": "ve-this-is-far-too-long", "peer": "eth0", "peer_namespace": "c1"},
        {"name": "ve-ok", "peer": "eth0", "peer_namespace": "c2", "peer_mac": "zz:00:00:00:00:00"},
    ]
    result = sandbox.module("veth", {"veths": bad})
    assert result.failed
    assert any("veths[0].name" in e and "at most 15" in e for e in result.result["errors"])
    assert any("veths[1].peer_mac" in e for e in result.result["errors"])

    missing = sandbox.module(
        "veth",
        {
            "veths": [
                {"name": "ve-ok", "peer": "eth0", "peer_namespace": "c2"},
                {"name": "web1-eth0", "peer": "eth0", "peer_namespace": "web1"},
            ]
        },
    )
    assert missing.failed
    assert "veth 'web1-eth0': peer namespace 'web1' does not exist" in missing.result["msg"]

    unknown_bridge = sandbox.module(
        "veth", {"veths": [{"name": "ve-ok", "peer": "eth0", "peer_namespace": "c2", "master": "br-nope"}]}
    )
    assert unknown_bridge.failed
    assert "veths[0].master: bridge 'br-nope' in namespace (host) does not exist" in unknown_bridge.result["msg"]
    assert set(sandbox.links()) == before
    assert set(sandbox.links("c2")) == {"lo"}


def test_disconnecting_a_middle_network_renames_later_interfaces_in_place(sandbox):
    """Docker's `network disconnect`: only that endpoint goes; the others keep their addresses."""
    sandbox.module("netns", {"namespaces": [{"name": "web1"}]})
    sandbox.module("bridge", {"bridges": [{"name": "br-a"}, {"name": "br-b"}, {"name": "br-c"}]})
    three = [
        {"name": f"ve-web1-{n}", "peer": f"eth{i}", "peer_namespace": "web1", "master": f"br-{n}"}
        for i, n in enumerate("abc")
    ]
    sandbox.module("veth", {"veths": three})
    sandbox.sh("ip -n web1 addr add 203.0.113.7/24 dev eth2")
    index_before = sandbox.links("web1")["eth2"]["ifindex"]
    two = [three[0], {**three[2], "peer": "eth1"}]
    args = {"veths": two, "exclusive": True, "exclusive_namespaces": ["web1"]}
    predicted = sandbox.module("veth", args, check=True)
    assert predicted.result["changes"] == [
        "delete veth 'web1/eth1'",
        "update veth '(host)/ve-web1-c': peer 'eth2' -> 'eth1'",
    ], predicted.output
    applied = sandbox.module("veth", args)
    assert applied.result["changes"] == predicted.result["changes"]
    inside = sandbox.links("web1")
    assert set(inside) == {"lo", "eth0", "eth1"}
    assert inside["eth1"]["ifindex"] == index_before  # the same interface, renamed
    assert "UP" in inside["eth1"]["flags"]
    assert "203.0.113.7/24" in sandbox.sh("ip -n web1 addr show dev eth1").stdout
    assert "ve-web1-b" not in sandbox.links()
    assert not sandbox.module("veth", args).changed


def test_exclusive_namespaces_leaves_other_pairs_alone(two_containers):
    sandbox = two_containers
    pairs = [
        {"name": "ve-c1", "peer": "eth0", "peer_namespace": "c1"},
        {"name": "ve-c2", "peer": "eth0", "peer_namespace": "c2"},
    ]
    sandbox.module("veth", {"veths": pairs})
    result = sandbox.module("veth", {"veths": [pairs[0]], "exclusive": True, "exclusive_namespaces": ["c1"]})
    assert not result.changed, result.result["changes"]
    assert "ve-c2" in sandbox.links()
    pruned = sandbox.module("veth", {"veths": [pairs[0]], "exclusive": True})
    assert pruned.result["changes"] == ["delete veth '(host)/ve-c2'"]


def test_swapping_peer_names_renames_both_in_place(two_containers):
    sandbox = two_containers
    pairs = [
        {"name": "ve-a", "peer": "eth0", "peer_namespace": "c1", "master": "br0"},
        {"name": "ve-b", "peer": "eth1", "peer_namespace": "c1", "master": "br1"},
    ]
    sandbox.module("veth", {"veths": pairs})
    before = {name: link["ifindex"] for name, link in sandbox.links("c1").items()}
    swapped = [{**pairs[0], "peer": "eth1"}, {**pairs[1], "peer": "eth0"}]
    result = sandbox.module("veth", {"veths": swapped})
    assert not result.failed, result.output
    after = {name: link["ifindex"] for name, link in sandbox.links("c1").items()}
    assert after["eth0"] == before["eth1"] and after["eth1"] == before["eth0"]
    assert all("UP" in link["flags"] for name, link in sandbox.links("c1").items() if name != "lo")
    assert not sandbox.module("veth", {"veths": swapped}).changed


def hairpin_of(sandbox, name: str) -> bool:
    out = sandbox.sh(f"ip -d -j link show {name}").stdout
    return json.loads(out)[0]["linkinfo"]["info_slave_data"]["hairpin"]


def test_hairpin_mode_of_the_bridge_port(two_containers):
    sandbox = two_containers
    item = {"name": "ve-c1", "peer": "eth0", "peer_namespace": "c1", "master": "br0", "hairpin": True}
    check = sandbox.module("veth", {"veths": [item]}, check=True)
    assert check.result["changes"] == ["create veth '(host)/ve-c1'"]
    assert not sandbox.module("veth", {"veths": [item]}).failed
    assert hairpin_of(sandbox, "ve-c1") is True
    assert not sandbox.module("veth", {"veths": [item]}).changed
    # moved to another bridge: a new port starts with hairpin off, so it is set again
    moved = {**item, "master": "br1"}
    result = sandbox.module("veth", {"veths": [moved]}, diff=True)
    assert result.changed and hairpin_of(sandbox, "ve-c1") is True, result.output
    off = sandbox.module("veth", {"veths": [{**moved, "hairpin": False}]}, check=True, diff=True)
    assert off.result["changes"] == ["update veth '(host)/ve-c1': hairpin True -> False"], off.result
    assert not sandbox.module("veth", {"veths": [{**moved, "hairpin": False}]}).failed
    assert hairpin_of(sandbox, "ve-c1") is False
    bad = sandbox.module("veth", {"veths": [{**item, "master": None}]})
    assert bad.failed and "veths[0].hairpin applies to a veth with a bridge master" in bad.output
