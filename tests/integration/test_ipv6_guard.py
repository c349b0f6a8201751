"""No IPv6 where a network has none, and router advertisements refused: a container that turns IPv6 back on in
its own namespace and forges router advertisements gives its neighbours and the host no address and no route."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

RAPROBE = Path(__file__).with_name("raprobe.py")
FORGED = "2001:db8:bad::/64"
TOPOLOGY = {
    "networks": {"front": {"subnet": "10.84.0.0/24"}},
    "containers": {"evil": {"networks": ["front"]}, "victim": {"networks": ["front"]}},
}


def converge(sandbox):
    result = sandbox.module("converge", {"topology": TOPOLOGY, "host": sandbox.name})
    assert not result.failed, result.output[-3000:]
    return result.result


def ipv6_conf(sandbox, namespace, ifname):
    prefix = f"ip netns exec {namespace} " if namespace else ""
    conf = f"/proc/sys/net/ipv6/conf/{ifname}"
    out = sandbox.sh(f"{prefix}cat {conf}/disable_ipv6 {conf}/accept_ra")
    return tuple(int(v) for v in out.stdout.split())


def ipv6_addresses(sandbox, namespace, ifname):
    prefix = f"-n {namespace} " if namespace else ""
    links = json.loads(sandbox.sh(f"ip {prefix}-j -6 addr show dev {ifname}").stdout)
    return [f"{a['local']}/{a['prefixlen']}" for link in links for a in link.get("addr_info", [])]


def ipv6_default_routes(sandbox, namespace):
    prefix = f"-n {namespace} " if namespace else ""
    return json.loads(sandbox.sh(f"ip {prefix}-j -6 route show default").stdout)


def forge_router_advertisements(sandbox):
    """evil turns IPv6 back on in its own namespace (its root user may) and advertises itself as the router."""
    sandbox.sh(
        "ip netns exec evil sh -c 'echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad; "
        "echo 0 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6'"
    )
    deadline = time.monotonic() + 10
    while not [a for a in ipv6_addresses(sandbox, "evil", "eth0") if a.startswith("fe80:")]:
        assert time.monotonic() < deadline, "evil's eth0 got no link-local address"
        time.sleep(0.1)
    sandbox.sh(f"ip netns exec evil {sys.executable} {RAPROBE} eth0 {FORGED}")
    time.sleep(1.5)  # what a receiver would take, it takes at once; give it time all the same


def forged_addresses(sandbox, namespace, ifname):
    return [a for a in ipv6_addresses(sandbox, namespace, ifname) if a.startswith("2001:db8:bad:")]


def test_no_ipv6_on_an_ipv4_network_and_forged_router_advertisements_change_nothing(sandbox):
    first = converge(sandbox)
    assert first["changed"]
    for namespace, ifname in (("evil", "eth0"), ("victim", "eth0"), (None, "br-front")):
        assert ipv6_conf(sandbox, namespace, ifname) == (1, 0), (namespace, ifname)  # disable_ipv6, accept_ra
        assert ipv6_addresses(sandbox, namespace, ifname) == [], (namespace, ifname)  # not even link-local
    sandbox.sh("ip netns exec victim ping -c1 -W2 10.84.0.1")  # IPv4 as ever
    assert not converge(sandbox)["changed"]

    forge_router_advertisements(sandbox)
    assert forged_addresses(sandbox, "victim", "eth0") == []
    assert ipv6_default_routes(sandbox, "victim") == []
    assert forged_addresses(sandbox, None, "br-front") == []
    assert ipv6_default_routes(sandbox, None) == []

    # the probe is real: a neighbour left as the kernel makes it (IPv6 on, accept_ra 1) takes the forged prefix
    sandbox.sh("ip netns exec victim sh -c 'echo 1 > /proc/sys/net/ipv6/conf/eth0/accept_ra; "
               "echo 0 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6'")  # fmt: skip
    time.sleep(0.5)
    sandbox.sh(f"ip netns exec evil {sys.executable} {RAPROBE} eth0 {FORGED}")
    deadline = time.monotonic() + 10
    while not forged_addresses(sandbox, "victim", "eth0"):
        assert time.monotonic() < deadline, "an unguarded neighbour did not take the forged prefix: the probe is broken"
        time.sleep(0.2)
    assert ipv6_default_routes(sandbox, "victim")

    # the next converge finds both interfaces changed and turns IPv6 off again
    again = converge(sandbox)
    assert sorted(c.split(":")[0] for c in again["changes"]) == [
        "update ip_addr 'evil/eth0'",
        "update ip_addr 'victim/eth0'",
    ], again["changes"]
    assert all("off, accept_ra 0" in c for c in again["changes"]), again["changes"]
    for namespace in ("evil", "victim"):
        assert ipv6_conf(sandbox, namespace, "eth0") == (1, 0)
        assert ipv6_addresses(sandbox, namespace, "eth0") == []
    assert ipv6_default_routes(sandbox, "victim") == []
    assert not converge(sandbox)["changed"]
