"""wharf.network.converge: check mode predicts exactly the changes the real run then makes."""

from __future__ import annotations

import copy

import pytest

pytestmark = pytest.mark.integration

BASE = {
    "networks": {"front": {"subnet": "10.71.0.0/24"}, "back": {"subnet": "10.72.0.0/24"}},
    "containers": {
        "app": {"networks": ["front", "back"]},
        "db": {"networks": ["back"]},
        "web": {"networks": ["front"]},
        "side": {"network_mode": "container:app"},
    },
}


def converge(sandbox, topology, check=False):
    result = sandbox.module("converge", {"topology": topology, "host": sandbox.name}, check=check)
    assert not result.failed, result.output[-3000:]
    return result.result


def edits():
    pruned = copy.deepcopy(BASE)
    del pruned["containers"]["db"]
    pruned["prune"] = True
    disconnected = copy.deepcopy(BASE)
    disconnected["containers"]["app"]["networks"] = ["back"]
    absent = copy.deepcopy(BASE)
    absent["containers"]["web"]["state"] = "absent"
    teardown = {**copy.deepcopy(BASE), "state": "absent"}
    return {"prune a container": pruned, "disconnect the first network": disconnected,
            "one container absent": absent, "teardown": teardown}  # fmt: skip


@pytest.mark.parametrize("edit", list(edits()))
def test_check_mode_predicts_the_real_run(sandbox, edit):
    first = converge(sandbox, BASE)
    assert first["changed"]
    assert not converge(sandbox, BASE)["changed"]
    edited = edits()[edit]
    predicted = converge(sandbox, edited, check=True)
    applied = converge(sandbox, edited)
    assert predicted["changes"] == applied["changes"]
    assert applied["changed"]
    assert not converge(sandbox, edited)["changed"]


def test_invalid_topology_fails_before_any_change(sandbox):
    bad = copy.deepcopy(BASE)
    bad["networks"]["back"]["subnet"] = "10.71.0.128/25"
    bad["containers"]["db"]["networks"] = {"back": {"ipv4_address": "10.99.0.1"}}
    result = sandbox.module("converge", {"topology": bad, "host": sandbox.name})
    assert result.failed and not result.changed
    errors = result.result["errors"]
    assert any("overlap" in e for e in errors) and any("10.99.0.1" in e for e in errors), errors
    assert sandbox.netns() == [] and set(sandbox.links()) == {"lo"}


def test_a_late_conflict_reports_what_was_already_done(sandbox):
    sandbox.sh("ip link add br-front type bridge")  # someone else's bridge with the name we want
    result = sandbox.module("converge", {"topology": BASE, "host": sandbox.name})
    assert result.failed
    assert "step 'networks' refused" in result.result["msg"]
    assert "was not created by wharf.network" in result.result["msg"]
    assert result.result["changed"]  # the containers step did run: say so
    assert "create netns 'app'" in result.result["changes"]


def test_the_gateway_mac_stays_as_ports_come_and_go(sandbox):
    """A bridge left to the kernel takes its lowest port's MAC: a new port with a lower MAC, or the old lowest one
    leaving, would change the gateway's MAC under every container's ARP entry (lost for half a minute). The bridge
    has its gateway's MAC set, so neither moves it."""
    converge(sandbox, BASE)
    gateway_mac = "02:42:0a:47:00:01"  # 02:42: + 10.71.0.1
    assert sandbox.links()["br-front"]["address"] == gateway_mac
    sandbox.sh("ip netns exec web ping -c1 -W2 10.71.0.1")
    host_ends = [name for name, link in sandbox.links().items() if link.get("master") == "br-front"]
    assert len(host_ends) == 2, host_ends
    sandbox.sh(f"ip link set {host_ends[0]} address 02:00:00:00:00:01")  # a port lower than any other
    grown = copy.deepcopy(BASE)
    grown["containers"]["late"] = {"networks": ["front"]}
    converge(sandbox, grown)
    assert sandbox.links()["br-front"]["address"] == gateway_mac
    neighbours = sandbox.sh("ip -n web -j neigh show 10.71.0.1").stdout
    assert gateway_mac in neighbours, neighbours
    sandbox.sh("ip netns exec web ping -c1 -W2 10.71.0.1")
    assert not converge(sandbox, grown)["changed"]
