"""wharf.network.netns on real namespaces inside a sandbox host."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_netns_lifecycle(sandbox):
    items = [
        {"name": "web1", "hostname": "web1.example", "sysctls": {"net.ipv4.ip_forward": 1}},
        {"name": "db1"},
    ]
    first = sandbox.module("netns", {"namespaces": items})
    assert not first.failed, first.output
    assert first.changed
    assert first.result["changes"] == ["create netns 'web1'", "create netns 'db1'"]
    assert sandbox.netns() == ["db1", "web1"]
    assert "UP" in sandbox.sh("ip -n web1 -br link show lo").stdout
    assert sandbox.sh("nsenter --uts=/run/wharf/uts/web1 hostname").stdout.strip() == "web1.example"
    assert sandbox.sh("ip netns exec web1 sysctl -n net.ipv4.ip_forward").stdout.strip() == "1"
    # the sysctl was set inside the namespace only
    assert sandbox.sh("ip netns exec db1 sysctl -n net.ipv4.ip_forward").stdout.strip() == "0"

    again = sandbox.module("netns", {"namespaces": items})
    assert not again.failed, again.output
    assert not again.changed, again.result["changes"]

    # check mode on changed input predicts the change and changes nothing
    edited = [{**items[0], "hostname": "web1.new"}, items[1], {"name": "cache1"}]
    predicted = sandbox.module("netns", {"namespaces": edited}, check=True, diff=True)
    assert predicted.changed
    assert predicted.result["changes"] == [
        "update netns 'web1': hostname 'web1.example' -> 'web1.new'",
        "create netns 'cache1'",
    ]
    assert "hostname: web1.example" in predicted.result["diff"]["before"]
    assert "hostname: web1.new" in predicted.result["diff"]["after"]
    assert "netns cache1: absent" in predicted.result["diff"]["before"]
    assert sandbox.netns() == ["db1", "web1"]
    assert sandbox.sh("nsenter --uts=/run/wharf/uts/web1 hostname").stdout.strip() == "web1.example"

    # the real run does exactly what check mode said
    applied = sandbox.module("netns", {"namespaces": edited}, diff=True)
    assert applied.result["changes"] == predicted.result["changes"]
    assert applied.result["diff"] == predicted.result["diff"]
    assert sandbox.netns() == ["cache1", "db1", "web1"]
    assert sandbox.sh("nsenter --uts=/run/wharf/uts/web1 hostname").stdout.strip() == "web1.new"

    removed = sandbox.module("netns", {"namespaces": edited, "state": "absent"})
    assert removed.changed and not removed.failed, removed.output
    assert sandbox.netns() == []
    assert sandbox.sh("ls -A /run/wharf").stdout.strip() == ""  # no bookkeeping left behind
    gone_again = sandbox.module("netns", {"namespaces": edited, "state": "absent"})
    assert not gone_again.changed and not gone_again.failed


def test_netns_loopback_drift_is_repaired(sandbox):
    sandbox.module("netns", {"namespaces": [{"name": "app"}]})
    sandbox.sh("ip -n app link set lo down")
    drift = sandbox.module("netns", {"namespaces": [{"name": "app"}]}, check=True)
    assert drift.result["changes"] == ["update netns 'app': loopback 'down' -> 'up'"]
    fixed = sandbox.module("netns", {"namespaces": [{"name": "app"}]})
    assert fixed.changed
    assert "UP" in sandbox.sh("ip -n app -br link show lo").stdout


def test_netns_exclusive_prunes_only_its_own(sandbox):
    sandbox.module("netns", {"namespaces": [{"name": "keep"}, {"name": "stale"}]})
    sandbox.sh("ip netns add foreign")
    pruned = sandbox.module("netns", {"namespaces": [{"name": "keep"}], "exclusive": True})
    assert pruned.result["changes"] == ["delete netns 'stale'"], pruned.output
    assert sandbox.netns() == ["foreign", "keep"]


def test_netns_refuses_foreign_namespace(sandbox):
    sandbox.sh("ip netns add foreign")
    result = sandbox.module("netns", {"namespaces": [{"name": "foreign"}], "state": "absent"})
    assert result.failed
    assert "namespace 'foreign' exists but was not created by wharf.network" in result.result["msg"]
    assert sandbox.netns() == ["foreign"]


def test_netns_bad_input_changes_nothing(sandbox):
    bad = [
        {"name": "good"},
        {"name": "bad/name"},
        {"name": "x", "hostname": "has space"},
        {"name": "y", "sysctls": {"kernel.hostname": "nope"}},
        {"name": "good"},
    ]
    result = sandbox.module("netns", {"namespaces": bad})
    assert result.failed
    errors = result.result["errors"]
    assert any("namespaces[1].name" in e and "'bad/name'" in e for e in errors), errors
    assert any("namespaces[2].hostname" in e for e in errors), errors
    assert any("kernel.hostname" in e and "only net.*" in e for e in errors), errors
    assert any("listed twice" in e for e in errors), errors
    assert sandbox.netns() == []


def test_netns_share_with_names_the_same_namespace(sandbox):
    items = [{"name": "sidecar", "share_with": "app"}, {"name": "app"}]
    made = sandbox.module("netns", {"namespaces": items})
    assert made.result["changes"] == ["create netns 'app'", "create netns 'sidecar'"], made.output
    sandbox.sh("ip -n app link add probe0 type veth peer name probe1")
    # the same kernel namespace under two names
    assert "probe0" in sandbox.links("sidecar")
    assert not sandbox.module("netns", {"namespaces": items}).changed
    removed = sandbox.module("netns", {"namespaces": [{"name": "sidecar"}], "state": "absent"})
    assert removed.changed
    assert sandbox.netns() == ["app"] and "probe0" in sandbox.links("app")
    missing = sandbox.module("netns", {"namespaces": [{"name": "x", "share_with": "nope"}]})
    assert missing.failed and "share_with: namespace 'nope' does not exist" in missing.result["msg"]


def test_a_foreign_namespace_under_our_name_is_not_ours(sandbox):
    sandbox.module("netns", {"namespaces": [{"name": "app"}]})
    sandbox.sh("ip netns del app && ip netns add app")  # someone else's namespace now carries the name
    refused = sandbox.module("netns", {"namespaces": [{"name": "app"}], "state": "absent"})
    assert refused.failed and "was not created by wharf.network" in refused.result["msg"]
    pruned = sandbox.module("netns", {"namespaces": [], "exclusive": True})
    assert not pruned.changed
    assert sandbox.netns() == ["app"]
