"""wharf.network.bridge on real bridges inside a sandbox host."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_bridge_lifecycle(sandbox):
    items = [{"name": "br-front", "mtu": 1400, "stp": True, "mac": "02:42:c0:a8:00:01"}, {"name": "br-back"}]
    first = sandbox.module("bridge", {"bridges": items})
    assert not first.failed, first.output
    assert first.result["changes"] == ["create bridge '(host)/br-front'", "create bridge '(host)/br-back'"]
    links = sandbox.links()
    front = links["br-front"]
    assert front["linkinfo"]["info_kind"] == "bridge"
    assert front["mtu"] == 1400
    assert front["address"] == "02:42:c0:a8:00:01"
    assert front["linkinfo"]["info_data"]["stp_state"] == 1
    assert front["ifalias"] == "wharf.network"
    assert "UP" in front["flags"]

    assert not sandbox.module("bridge", {"bridges": items}).changed

    edited = [{**items[0], "mtu": 1450, "stp": False}, {"name": "br-back", "up": False}]
    predicted = sandbox.module("bridge", {"bridges": edited}, check=True, diff=True)
    assert predicted.changed
    assert predicted.result["changes"] == [
        "update bridge '(host)/br-front': mtu 1400 -> 1450, stp True -> False",
        "update bridge '(host)/br-back': up True -> False",
    ]
    assert "mtu: 1400" in predicted.result["diff"]["before"]
    assert "mtu: 1450" in predicted.result["diff"]["after"]
    assert sandbox.links()["br-front"]["mtu"] == 1400

    applied = sandbox.module("bridge", {"bridges": edited})
    assert applied.result["changes"] == predicted.result["changes"]
    links = sandbox.links()
    assert links["br-front"]["mtu"] == 1450
    assert links["br-front"]["linkinfo"]["info_data"]["stp_state"] == 0
    assert "UP" not in links["br-back"]["flags"]
    assert not sandbox.module("bridge", {"bridges": edited}).changed

    removed = sandbox.module("bridge", {"bridges": edited, "state": "absent"})
    assert removed.changed
    assert set(sandbox.links()) == {"lo"}
    assert not sandbox.module("bridge", {"bridges": edited, "state": "absent"}).changed


def test_bridge_in_named_namespace_and_exclusive(sandbox):
    sandbox.module("netns", {"namespaces": [{"name": "lab"}]})
    sandbox.sh("ip -n lab link add foreign0 type bridge")
    made = sandbox.module("bridge", {"namespace": "lab", "bridges": [{"name": "br-a"}, {"name": "br-b"}]})
    assert made.result["changes"] == ["create bridge 'lab/br-a'", "create bridge 'lab/br-b'"]
    pruned = sandbox.module("bridge", {"namespace": "lab", "bridges": [{"name": "br-a"}], "exclusive": True})
    assert pruned.result["changes"] == ["delete bridge 'lab/br-b'"]
    assert set(sandbox.links("lab")) == {"lo", "br-a", "foreign0"}
    refused = sandbox.module("bridge", {"namespace": "lab", "bridges": [{"name": "foreign0"}], "state": "absent"})
    assert refused.failed
    assert "exists but was not created by wharf.network" in refused.result["msg"]
    assert "foreign0" in sandbox.links("lab")


def test_bridge_bad_input_changes_nothing(sandbox):
    bad = [
        {"name": "br-this-name-is-too-long"},
        {"name": "br-ok", "mtu": 10},
        {"name": "br-ok2", "mac": "01:00:5e:00:00:01"},
        {"name": "br-x", "namespace": "missing-ns"},
    ]
    result = sandbox.module("bridge", {"bridges": bad})
    assert result.failed
    errors = result.result["errors"]
    assert any("bridges[0].name" in e and "at most 15" in e for e in errors), errors
    assert any("bridges[1].mtu" in e for e in errors), errors
    assert any("bridges[2].mac" in e and "multicast" in e for e in errors), errors
    assert set(sandbox.links()) == {"lo"}
    # a missing namespace is found at observe time, still before any change
    missing = sandbox.module("bridge", {"bridges": [{"name": "br-ok"}, {"name": "br-x", "namespace": "missing-ns"}]})
    assert missing.failed
    assert "bridge 'br-x': namespace 'missing-ns' does not exist" in missing.result["msg"]
    assert set(sandbox.links()) == {"lo"}


def test_bridge_kernel_refusal_is_named(sandbox):
    """A kernel refusal (here: VLAN filtering on a kernel without it, or an MTU the kernel rejects) names the object."""
    result = sandbox.module("bridge", {"bridges": [{"name": "br-vf", "vlan_filtering": True}]})
    if not result.failed:
        assert sandbox.links()["br-vf"]["linkinfo"]["info_data"]["vlan_filtering"] == 1
        return
    assert result.result["msg"].startswith("bridge '(host)/br-vf': create failed")
    assert "Traceback" not in result.output


def test_bridge_forwarding_isolates_what_is_behind_it(sandbox):
    sandbox.sh("sysctl -qw net.ipv4.ip_forward=1")
    sandbox.module("netns", {"namespaces": [{"name": "a"}, {"name": "b"}]})
    bridges = [{"name": "br-a", "forwarding": False}, {"name": "br-b", "forwarding": False}]
    made = sandbox.module("bridge", {"bridges": bridges})
    assert not made.failed, made.output
    sandbox.module(
        "veth",
        {"veths": [
            {"name": "ve-a", "peer": "eth0", "peer_namespace": "a", "master": "br-a"},
            {"name": "ve-b", "peer": "eth0", "peer_namespace": "b", "master": "br-b"},
        ]},
    )  # fmt: skip
    sandbox.module(
        "ip_addr",
        {"interfaces": [
            {"name": "br-a", "addresses": ["192.0.2.1/25"]},
            {"name": "br-b", "addresses": ["192.0.2.129/25"]},
            {"name": "eth0", "namespace": "a", "addresses": ["192.0.2.10/25"], "routes": [{"gateway": "192.0.2.1"}]},
            {"name": "eth0", "namespace": "b", "addresses": ["192.0.2.130/25"], "routes": [{"gateway": "192.0.2.129"}]},
        ]},
    )  # fmt: skip
    assert sandbox.sh("cat /proc/sys/net/ipv4/conf/br-a/forwarding").stdout.strip() == "0"
    assert sandbox.sh("ip netns exec a ping -c1 -W1 192.0.2.130", check=False).returncode != 0
    # flipping the host's global switch resets per-interface values: the next run sees and repairs it
    sandbox.sh("sysctl -qw net.ipv4.ip_forward=0 && sysctl -qw net.ipv4.ip_forward=1")
    drift = sandbox.module("bridge", {"bridges": bridges}, check=True)
    assert drift.result["changes"] == [
        "update bridge '(host)/br-a': forwarding True -> False",
        "update bridge '(host)/br-b': forwarding True -> False",
    ]
    assert sandbox.module("bridge", {"bridges": bridges}).changed
    assert sandbox.sh("ip netns exec a ping -c1 -W1 192.0.2.130", check=False).returncode != 0
    # and turned on, the host routes between them: the switch really is what isolates
    sandbox.module("bridge", {"bridges": [{**b, "forwarding": True} for b in bridges]})
    assert sandbox.sh("ip netns exec a ping -c1 -W2 192.0.2.130", check=False).returncode == 0


def test_bridge_mtu_is_kept_when_its_ports_change(sandbox):
    sandbox.module("netns", {"namespaces": [{"name": "c"}]})
    bridges = [{"name": "br-m", "mtu": 1400}]
    sandbox.module("bridge", {"bridges": bridges})
    pair = {"name": "ve-m", "peer": "eth0", "peer_namespace": "c", "master": "br-m", "mtu": 9000}
    sandbox.module("veth", {"veths": [pair]})
    assert not sandbox.module("bridge", {"bridges": bridges}).changed
    sandbox.module("veth", {"veths": [pair], "state": "absent"})
    assert not sandbox.module("bridge", {"bridges": bridges}).changed
    assert sandbox.links()["br-m"]["mtu"] == 1400
