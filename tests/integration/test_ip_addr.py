"""wharf.network.ip_addr on real interfaces inside a sandbox host."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


def addresses(sandbox, namespace, ifname):
    out = sandbox.sh(f"ip -n {namespace} -j addr show dev {ifname}").stdout
    return sorted(f"{a['local']}/{a['prefixlen']}" for a in json.loads(out)[0]["addr_info"] if a.get("scope") != "link")


def routes(sandbox, namespace, family="-4"):
    out = sandbox.sh(f"ip -n {namespace} {family} -j route show proto static").stdout
    return sorted((r["dst"], r.get("gateway")) for r in json.loads(out))


@pytest.fixture
def endpoint(sandbox):
    sandbox.module("netns", {"namespaces": [{"name": "c1"}]})
    sandbox.module("veth", {"veths": [{"name": "ve-c1", "peer": "eth0", "peer_namespace": "c1"}]})
    return sandbox


def test_ip_addr_lifecycle(endpoint):
    sandbox = endpoint
    items = [
        {"name": "ve-c1", "addresses": ["192.0.2.1/24"]},
        {
            "name": "eth0",
            "namespace": "c1",
            "addresses": ["192.0.2.10/24", "2001:db8:10::10/64"],
            "routes": [
                {"dest": "default", "gateway": "192.0.2.1"},
                {"dest": "198.51.100.0/24", "gateway": "192.0.2.1"},
            ],
        },
    ]
    first = sandbox.module("ip_addr", {"interfaces": items})
    assert not first.failed, first.output
    assert first.changed
    assert addresses(sandbox, "c1", "eth0") == ["192.0.2.10/24", "2001:db8:10::10/64"]
    assert routes(sandbox, "c1") == [("198.51.100.0/24", "192.0.2.1"), ("default", "192.0.2.1")]
    assert sandbox.sh("ip netns exec c1 ping -c1 -W2 192.0.2.1").returncode == 0

    assert not sandbox.module("ip_addr", {"interfaces": items}).changed

    edited = [items[0], {**items[1], "addresses": ["192.0.2.11/24"], "routes": [{"gateway": "192.0.2.1"}]}]
    predicted = sandbox.module("ip_addr", {"interfaces": edited, "exclusive": True}, check=True, diff=True)
    assert predicted.result["changes"] == [
        "update ip_addr 'c1/eth0': addresses ['192.0.2.10/24', '2001:db8:10::10/64'] -> ['192.0.2.11/24'], "
        "routes ['198.51.100.0/24 via 192.0.2.1', 'default via 192.0.2.1'] -> ['default via 192.0.2.1']"
    ]
    assert "192.0.2.10/24" in predicted.result["diff"]["before"]
    assert addresses(sandbox, "c1", "eth0") == ["192.0.2.10/24", "2001:db8:10::10/64"]
    applied = sandbox.module("ip_addr", {"interfaces": edited, "exclusive": True})
    assert applied.result["changes"] == predicted.result["changes"]
    assert addresses(sandbox, "c1", "eth0") == ["192.0.2.11/24"]
    assert routes(sandbox, "c1") == [("default", "192.0.2.1")]
    # the kernel's link-local IPv6 address and connected route survive exclusive
    assert "fe80::" in sandbox.sh("ip -n c1 -6 addr show dev eth0").stdout
    assert "192.0.2.0/24 dev eth0 proto kernel" in sandbox.sh("ip -n c1 route").stdout
    assert not sandbox.module("ip_addr", {"interfaces": edited, "exclusive": True}).changed

    removed = sandbox.module("ip_addr", {"interfaces": edited, "state": "absent"})
    assert removed.changed
    assert addresses(sandbox, "c1", "eth0") == []
    assert not sandbox.module("ip_addr", {"interfaces": edited, "state": "absent"}).changed


def test_ip_addr_ipv6_default_route_is_idempotent(endpoint):
    sandbox = endpoint
    items = [
        {"name": "ve-c1", "addresses": ["2001:db8:1::1/64"]},
        {
            "name": "eth0",
            "namespace": "c1",
            "addresses": ["2001:db8:1::10/64"],
            "routes": [{"dest": "default", "gateway": "2001:db8:1::1"}],
        },
    ]
    assert sandbox.module("ip_addr", {"interfaces": items}).changed
    assert "default via 2001:db8:1::1" in sandbox.sh("ip -n c1 -6 route").stdout
    assert not sandbox.module("ip_addr", {"interfaces": items}).changed
    assert sandbox.sh("ip netns exec c1 ping -6 -c1 -W2 2001:db8:1::1").returncode == 0


def test_ip_addr_bad_input_changes_nothing(endpoint):
    sandbox = endpoint
    bad = [
        {"name": "eth0", "namespace": "c1", "addresses": ["192.0.2.300/24", "192.0.2.5"]},
        {"name": "eth0", "namespace": "c1", "routes": [{"dest": "10.0.0.1/8"}]},
    ]
    result = sandbox.module("ip_addr", {"interfaces": bad})
    assert result.failed
    errors = result.result["errors"]
    assert any("interfaces[0].addresses[0]" in e and "192.0.2.300/24" in e for e in errors), errors
    assert any("interfaces[0].addresses[1]" in e and "CIDR" in e for e in errors), errors
    assert any("interfaces[1].routes[0].dest" in e for e in errors), errors
    missing = sandbox.module(
        "ip_addr",
        {
            "interfaces": [
                {"name": "eth0", "namespace": "c1", "addresses": ["192.0.2.10/24"]},
                {"name": "eth7", "namespace": "c1", "addresses": ["192.0.2.11/24"]},
                {"name": "eth0", "namespace": "nope", "addresses": ["192.0.2.12/24"]},
            ]
        },
    )
    assert missing.failed
    assert "interface 'eth7' does not exist in namespace c1" in missing.result["msg"]
    assert "namespace 'nope' does not exist" in missing.result["msg"]
    assert addresses(sandbox, "c1", "eth0") == []


def test_ip_addr_unreachable_gateway_is_named(endpoint):
    sandbox = endpoint
    result = sandbox.module(
        "ip_addr",
        {
            "interfaces": [
                {"name": "eth0", "namespace": "c1", "routes": [{"dest": "default", "gateway": "203.0.113.1"}]}
            ]
        },
    )
    assert result.failed
    assert "interface 'c1/eth0': add route default via 203.0.113.1 failed" in result.result["msg"]
    assert "Traceback" not in result.output


def test_ip_addr_ipv6_default_without_gateway_stays_ipv6(endpoint):
    sandbox = endpoint
    items = [{"name": "eth0", "namespace": "c1", "addresses": ["2001:db8:2::10/64"], "routes": [{"dest": "::/0"}]}]
    assert sandbox.module("ip_addr", {"interfaces": items}).changed
    assert "default dev eth0" in sandbox.sh("ip -n c1 -6 route").stdout
    assert "default" not in sandbox.sh("ip -n c1 -4 route").stdout
    assert not sandbox.module("ip_addr", {"interfaces": items}).changed


def test_ip_addr_rejects_mixed_families_and_duplicates(endpoint):
    sandbox = endpoint
    bad = [
        {
            "name": "eth0",
            "namespace": "c1",
            "addresses": ["192.0.2.10/24", "192.0.2.10/24"],
            "routes": [
                {"dest": "198.51.100.0/24", "gateway": "2001:db8::1"},
                {"gateway": "192.0.2.1", "metric": 2**33},
            ],
        }
    ]
    result = sandbox.module("ip_addr", {"interfaces": bad})
    assert result.failed
    errors = result.result["errors"]
    assert any("listed twice" in e for e in errors), errors
    assert any("different IP families" in e for e in errors), errors
    assert any("metric" in e and "4294967295" in e for e in errors), errors
