"""Verify scenario `default` on the real kernel, inside the sandbox host, with real packets.

testinfra's ansible backend runs each command with `ansible -m shell` against Molecule's inventory; as the host's
ansible_connection is wharf.network.sandbox (not one testinfra maps to its own backends), the command goes through
the collection's connection plugin and so runs inside the sandbox host, never in the machine's own namespaces.
Each `host.run` costs one `ansible` process (about a second), so the kernel state is read in one command and the
reachability matrix is measured in another, with every probe running at once.

Expected values come from vars/topology.yml through the collection's own filter (`wharf_host_items`), plus a few
literal ones (fixed address, default network) that do not depend on the filter being right.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import testinfra
import yaml

SCENARIO = Path(__file__).resolve().parents[1]
REPO = SCENARIO.parents[1]
if str(REPO / ".collections") not in sys.path:
    sys.path.insert(0, str(REPO / ".collections"))

from ansible_collections.wharf.network.plugins.filter.topology import wharf_host_items

TOPOLOGY = yaml.safe_load((SCENARIO / "vars" / "topology.yml").read_text())["wharf_topology"]


@pytest.fixture(scope="module")
def expected(host: testinfra.host.Host) -> dict[str, Any]:
    """The filter's item lists for this inventory host."""
    return wharf_host_items(TOPOLOGY, host.backend.get_hostname())


@pytest.fixture(scope="module")
def containers(expected: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in expected["containers"]}


def _sections(output: str) -> dict[str, str]:
    """Split `@@ KEY` marked output into {KEY: text}."""
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for line in output.splitlines():
        if line.startswith("@@ "):
            current = sections.setdefault(line[3:].strip(), [])
        else:
            current.append(line)
    return {key: "\n".join(lines).strip() for key, lines in sections.items()}


def _json(text: str) -> Any:
    return json.loads(text) if text else []


@pytest.fixture(scope="module")
def kernel(host: testinfra.host.Host, containers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The sandbox host's kernel state, read in one command: namespaces, links, and per container its UTS
    hostname, addresses and IPv4 routes."""
    script = ["echo '@@ netns'", "ip -j netns list", "echo '@@ links'", "ip -j -d link show", "echo '@@ addrs'"]
    script.append("ip -j addr show")
    for name in containers:
        ns = shlex.quote(name)
        script += [
            f"echo '@@ {name} hostname'",
            f"nsenter --uts=/run/wharf/uts/{ns} --net=/run/netns/{ns} hostname",
            f"echo '@@ {name} addr'",
            f"ip -n {ns} -j addr show",
            f"echo '@@ {name} route'",
            f"ip -n {ns} -j -4 route show table main",
        ]
    result = host.run("\n".join(script))
    sections = _sections(result.stdout)
    state: dict[str, Any] = {
        "rc": result.rc,
        "stderr": result.stderr,
        "netns": sorted(n["name"] for n in _json(sections.get("netns", ""))),
        "links": {link["ifname"]: link for link in _json(sections.get("links", ""))},
        "addrs": {link["ifname"]: link for link in _json(sections.get("addrs", ""))},
        "containers": {},
    }
    for name in containers:
        state["containers"][name] = {
            "hostname": sections.get(f"{name} hostname", ""),
            "addr": {link["ifname"]: link for link in _json(sections.get(f"{name} addr", ""))},
            "route": _json(sections.get(f"{name} route", "")),
        }
    return state


def _ipv4(link: dict[str, Any]) -> list[str]:
    return [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if a.get("family") == "inet"]


def test_read_kernel_state(kernel: dict[str, Any]) -> None:
    assert kernel["rc"] == 0, kernel["stderr"]


def test_runs_inside_the_sandbox_not_on_the_machine(host: testinfra.host.Host, containers) -> None:
    """The backend really enters the sandbox: its hostname, and the machine itself has none of the topology."""
    assert host.check_output("hostname") == host.backend.get_hostname()
    machine = testinfra.get_host("local://")
    machine_netns = machine.check_output("ip netns list")
    machine_links = machine.check_output("ip -o link show")
    for name in containers:
        assert f"{name} " not in f"{machine_netns} " and f"{name}\n" not in f"{machine_netns}\n"
    for bridge in ("wharf0", "br-public", "br-private", "br-wtmol-mgmt"):
        assert f": {bridge}:" not in machine_links


def test_every_container_is_a_namespace(kernel, containers) -> None:
    assert kernel["netns"] == sorted(containers)


def test_hostnames(kernel, containers) -> None:
    got = {name: kernel["containers"][name]["hostname"] for name in containers}
    assert got == {name: c["hostname"] for name, c in containers.items()}
    assert got["proxy"] == "proxy.mol"
    assert got["legacy"] == "legacy-box"
    assert got["edge"] == "edge"


def test_interfaces_addresses_and_macs(kernel, containers) -> None:
    for name, container in containers.items():
        links = kernel["containers"][name]["addr"]
        want = {e["interface"]: e for e in container["endpoints"]}
        assert sorted(links) == sorted(["lo", *want]), name
        for ifname, endpoint in want.items():
            link = links[ifname]
            assert _ipv4(link) == [f"{endpoint['address']}/{endpoint['prefixlen']}"], (name, ifname)
            assert link["address"] == endpoint["mac"], (name, ifname)
            assert "UP" in link["flags"] and link["operstate"] == "UP", (name, ifname, link["operstate"])
        assert "UP" in links["lo"]["flags"], name


def test_interface_order_and_fixed_address(kernel) -> None:
    """Literal values, independent of the filter: networks in declared order, the fixed address exactly."""
    proxy = kernel["containers"]["proxy"]["addr"]
    assert _ipv4(proxy["eth0"]) == ["10.77.0.10/24"]
    assert len(_ipv4(proxy["eth1"])) == 1
    assert ipaddress.ip_interface(_ipv4(proxy["eth1"])[0]) in ipaddress.ip_network("10.77.1.128/25")
    for name in ("app1", "app2"):  # ip_range of network private
        (address,) = _ipv4(kernel["containers"][name]["addr"]["eth0"])
        assert ipaddress.ip_interface(address).ip in ipaddress.ip_network("10.77.1.128/25"), name


def test_container_without_network_joins_default_bridge(kernel, containers) -> None:
    for name in ("legacy", "legacy2"):
        (address,) = _ipv4(kernel["containers"][name]["addr"]["eth0"])
        interface = ipaddress.ip_interface(address)
        assert interface.network == ipaddress.ip_network("172.31.0.0/16"), name
        (endpoint,) = containers[name]["endpoints"]
        assert kernel["links"][endpoint["host_interface"]]["master"] == "wharf0"
    assert _ipv4(kernel["addrs"]["wharf0"]) == ["172.31.0.1/16"]


def test_none_mode_has_only_loopback(kernel) -> None:
    assert sorted(kernel["containers"]["jobs"]["addr"]) == ["lo"]
    assert kernel["containers"]["jobs"]["route"] == []


def test_default_routes(kernel, expected, containers) -> None:
    want_routes = {(i["namespace"], i["name"]): i.get("routes", []) for i in expected["interfaces"] if "namespace" in i}
    for name, container in containers.items():
        defaults = [r for r in kernel["containers"][name]["route"] if r["dst"] == "default"]
        want = [
            {"gateway": r["gateway"], "dev": e["interface"]}
            for e in container["endpoints"]
            for r in want_routes[(name, e["interface"])]
            if r["dest"] == "default"
        ]
        assert [{"gateway": r.get("gateway"), "dev": r.get("dev")} for r in defaults] == want, name
    # literal: first network's gateway; an internal-only container has none
    assert [r.get("gateway") for r in kernel["containers"]["proxy"]["route"] if r["dst"] == "default"] == ["10.77.0.1"]
    assert [r.get("gateway") for r in kernel["containers"]["monitor"]["route"] if r["dst"] == "default"] == [
        "10.77.2.254"
    ]
    assert not [r for r in kernel["containers"]["app1"]["route"] if r["dst"] == "default"]


def test_bridges_gateways_and_ports(kernel, expected, containers) -> None:
    gateways = {i["name"]: i["addresses"] for i in expected["interfaces"] if "namespace" not in i}
    for bridge in expected["bridges"]:
        link = kernel["links"][bridge["name"]]
        assert link["linkinfo"]["info_kind"] == "bridge"
        assert _ipv4(kernel["addrs"][bridge["name"]]) == gateways[bridge["name"]]
    for veth in expected["veths"]:
        link = kernel["links"][veth["name"]]
        assert link["linkinfo"]["info_kind"] == "veth"
        assert link["master"] == veth["master"], veth["name"]
        assert link["operstate"] == "UP", veth["name"]


def test_reachability_with_real_packets(host: testinfra.host.Host, containers) -> None:
    """Every container pings every address of every other: answered exactly when they share that network."""
    probes = []
    for source, src in containers.items():
        if not src["endpoints"]:
            continue
        source_networks = {e["network"] for e in src["endpoints"]}
        for target, dst in containers.items():
            if target == source:
                continue
            for endpoint in dst["endpoints"]:
                probes.append((source, endpoint["address"], endpoint["network"] in source_networks, target))
    assert any(p[2] for p in probes) and not all(p[2] for p in probes)
    script = [
        'probe() { if ip netns exec "$1" ping -n -q -c 1 -w 2 "$2" >/dev/null 2>&1;'
        ' then echo "$1 $2 yes"; else echo "$1 $2 no"; fi; }'
    ]
    script += [f"probe {shlex.quote(probe[0])} {probe[1]} &" for probe in probes]
    script.append("wait")
    output = host.check_output("\n".join(script))
    measured = {(line.split()[0], line.split()[1]): line.split()[2] == "yes" for line in output.splitlines()}
    assert len(measured) == len(probes)
    mismatches = [
        f"{source} -> {target} {address}: expected {'reachable' if want else 'isolated'}"
        for source, address, want, target in probes
        if measured[(source, address)] != want
    ]
    assert not mismatches, "\n".join(mismatches)
    assert measured[("proxy", containers["app1"]["endpoints"][0]["address"])]  # the two-network container
    assert measured[("legacy", containers["legacy2"]["endpoints"][0]["address"])]  # default network
    assert not measured[("edge", containers["monitor"]["endpoints"][0]["address"])]
