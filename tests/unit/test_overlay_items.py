"""Overlay networks across hosts: the VXLAN items each host computes from the topology and the peers."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.wharf.network.plugins.module_utils._drivers.overlay import overlay_errors
from ansible_collections.wharf.network.plugins.module_utils._model.host_plan import host_items
from ansible_collections.wharf.network.plugins.module_utils._model.topology import TopologyError, parse_topology

PEERS = {"node1": "10.77.0.1", "node2": "10.77.0.2", "node3": "10.77.0.3"}

TOPOLOGY = {
    "networks": {
        "front": {"driver": "overlay", "subnet": "172.30.0.0/24", "vni": 4242},
        "back": {"driver": "overlay", "subnet": "172.30.1.0/24", "vni": 4343, "mtu": 1400},
        "local": {"subnet": "172.29.0.0/24"},
    },
    "containers": {
        "web1": {"host": "node1", "networks": {"front": {"ipv4_address": "172.30.0.11"}}},
        "web2": {"host": "node2", "networks": {"front": {"ipv4_address": "172.30.0.12"}}},
        "db": {"host": "node3", "networks": {"back": {"ipv4_address": "172.30.1.10"}}},
        "api": {"host": "node2", "networks": {"front": {"ipv4_address": "172.30.0.20"}, "back": {}}},
        "tool": {"host": "node3", "networks": ["local"]},
    },
}


def items(host: str, topology: dict | None = None, peers: dict | None = None, alone: bool = False) -> dict:
    peers = None if alone else (peers if peers is not None else PEERS)
    return host_items(parse_topology(topology if topology is not None else TOPOLOGY), host, peers)


def test_each_host_gets_a_device_per_overlay_it_carries_with_every_remote_entry():
    node1 = items("node1")
    assert node1["vxlans"] == [
        {
            "name": "vx-4242",
            "vni": 4242,
            "local": "10.77.0.1",
            "master": "br-front",
            "mtu": 1450,
            "peers": ["10.77.0.2"],  # node3 has no container on front: no tunnel to it
            "remotes": [
                {"mac": "02:42:ac:1e:00:0c", "address": "172.30.0.12", "peer": "10.77.0.2"},
                {"mac": "02:42:ac:1e:00:14", "address": "172.30.0.20", "peer": "10.77.0.2"},
            ],
        }
    ]
    node2 = items("node2")
    assert [(v["name"], v["peers"]) for v in node2["vxlans"]] == [
        ("vx-4343", ["10.77.0.3"]),
        ("vx-4242", ["10.77.0.1"]),
    ]
    back = node2["vxlans"][0]
    assert back["mtu"] == 1400 and back["master"] == "br-back"
    assert back["remotes"] == [{"mac": "02:42:ac:1e:01:0a", "address": "172.30.1.10", "peer": "10.77.0.3"}]


def test_remote_entries_agree_with_what_the_owning_host_builds():
    """The MAC node1 programs for a container of node2 is the MAC node2 gives that container's interface."""
    node2_macs = {v["peer_mac"] for v in items("node2")["veths"]}
    remote_macs = {r["mac"] for v in items("node1")["vxlans"] for r in v["remotes"] if r["peer"] == "10.77.0.2"}
    assert remote_macs <= node2_macs


def test_remote_containers_list_only_overlay_endpoints_of_other_hosts():
    remote = items("node3")["remote_containers"]
    assert [c["name"] for c in remote] == ["api"]
    assert [e["network"] for e in remote[0]["endpoints"]] == ["back"]
    assert remote[0]["host"] == "node2"


def test_gateway_is_the_same_address_and_mac_everywhere():
    bridges = [b for host in PEERS for b in items(host)["bridges"] if b["name"] == "br-front"]
    assert len(bridges) == 3
    assert {b["mac"] for b in bridges} == {"02:42:ac:1e:00:01"}
    local = [b for b in items("node1")["bridges"] if b["name"] == "br-local"]
    assert local[0]["mac"] == "02:42:ac:1d:00:01"  # a local bridge too has its gateway's MAC


def test_without_peers_or_alone_overlays_stay_local_bridges():
    assert items("node1", alone=True)["vxlans"] == []
    assert items("node1", peers={"node1": "10.77.0.1"})["vxlans"][0]["peers"] == []
    assert items("node9")["vxlans"] == []


def test_a_host_that_left_the_peers_is_dropped_from_every_table():
    peers = {k: v for k, v in PEERS.items() if k != "node2"}
    node1 = items("node1", peers=peers)
    assert node1["vxlans"][0]["peers"] == []
    assert node1["vxlans"][0]["remotes"] == []


def test_absent_containers_and_networks_leave_the_tables():
    topology = copy.deepcopy(TOPOLOGY)  # web1 and web2 are changed below
    topology["containers"]["web2"]["state"] = "absent"
    remotes = items("node1", topology)["vxlans"][0]["remotes"]
    assert [r["address"] for r in remotes] == ["172.30.0.20"]
    topology["containers"]["api"] = {"host": "node2", "networks": ["back"]}
    topology["containers"]["web1"]["state"] = "absent"
    # node1 no longer has a container on front: no device (the converge removes the old one)
    assert items("node1", topology)["vxlans"] == []


def test_a_container_without_host_on_a_spanning_overlay_is_refused():
    topology = {**TOPOLOGY, "containers": {**TOPOLOGY["containers"], "everywhere": {"networks": ["front"]}}}
    errors = overlay_errors(parse_topology(topology), PEERS)
    assert errors == [
        "containers.everywhere.host is needed: it is on overlay network front, which spans the hosts node1, node2,"
        " node3, and without a host it would be on all of them with one address"
    ]
    assert overlay_errors(parse_topology(topology), {"node1": "10.77.0.1"}) == []


def test_two_overlays_with_one_vni_are_refused():
    topology = {"networks": {"a": {"driver": "overlay", "subnet": "10.1.0.0/24", "vni": 7},
                             "b": {"driver": "overlay", "subnet": "10.2.0.0/24", "vni": 7}}}  # fmt: skip
    with pytest.raises(TopologyError) as caught:
        parse_topology(topology)
    assert caught.value.errors == ["networks.b.vni 7 is also the vni of networks.a"]


def test_the_firewall_drops_vxlan_from_non_peers_only_on_overlay_hosts():
    from ansible_collections.wharf.network.plugins.module_utils._firewall.model import parse_networks
    from ansible_collections.wharf.network.plugins.module_utils._firewall.render import render

    networks = parse_networks([{"bridge": "br-front", "subnet": "172.30.0.0/24"}])
    plain = render(networks, [])
    assert "vxlan-peers" not in plain and "hook input" not in plain
    table = render(networks, [], ["10.77.0.3", "10.77.0.2", "10.77.0.10"], "10.77.0.1")
    assert "\t\telements = {\n\t\t\t10.77.0.2,\n\t\t\t10.77.0.3,\n\t\t\t10.77.0.10\n\t\t}" in table
    assert "\t\ttype filter hook input priority filter; policy accept;\n" in table
    # only VXLAN to this host's underlay address is filtered; no IPv6 rule (wharf's devices are IPv4 only)
    input_chain = table.split("chain input {")[1].split("}")[0]
    assert [line.strip() for line in input_chain.splitlines() if line.strip() and "type filter" not in line] == [
        "ip daddr 10.77.0.1 udp dport 4789 ip saddr != @vxlan-peers drop"
    ]
    assert render(networks, [], ["10.77.0.2", "10.77.0.3", "10.77.0.10"], "10.77.0.1") == table  # canonical
    alone = render(networks, [], [], "10.77.0.1")
    assert "set vxlan-peers {\n\t\ttype ipv4_addr\n\t}" in alone  # no peer: every VXLAN packet is dropped


def test_underlay_port_names_are_stable_and_fit_an_interface_name():
    from ansible_collections.wharf.network.plugins.module_utils._lab.sandbox import underlay_port_name

    assert underlay_port_name("node1") == underlay_port_name("node1")
    assert underlay_port_name("node1") != underlay_port_name("node2")
    assert len(underlay_port_name("a" * 63)) <= 15


def test_peer_errors_name_the_host_and_the_bad_or_shared_address():
    from ansible_collections.wharf.network.plugins.module_utils._drivers.overlay import peer_errors as _peer_errors

    assert _peer_errors(PEERS) == []
    assert _peer_errors({"node1": "10.77.0.1", "node2": "10.77.0.256", "node3": None}) == [
        "peers.node2: underlay address '10.77.0.256' is not an IPv4 address",
        "peers.node3: underlay address None is not an IPv4 address",
    ]
    assert _peer_errors({"node1": "10.77.0.1", "node2": "10.77.0.01", "node3": "10.77.0.1"}) == [
        "peers.node2: underlay address '10.77.0.01' is not an IPv4 address",
        "peers.node3: underlay address 10.77.0.1 is also the address of node1",
    ]


def test_peer_errors_are_raised_before_the_kernel_is_read():
    from ansible_collections.wharf.network.plugins.module_utils._converge import converge
    from ansible_collections.wharf.network.plugins.module_utils._engine.errors import ValidationError

    with pytest.raises(ValidationError) as caught:
        converge(TOPOLOGY, "node1", True, peers={"node1": "10.77.0.1", "node2": "10.77.0.1"})
    assert caught.value.errors == ["peers.node2: underlay address 10.77.0.1 is also the address of node1"]


def test_only_a_host_with_an_overlay_container_must_be_among_the_peers():
    """A shared inventory gives every host the overlay hosts' peers: a host with nothing on an overlay is simply
    not on it; one with an overlay container but no underlay address is an error."""
    from ansible_collections.wharf.network.plugins.module_utils._converge import converge
    from ansible_collections.wharf.network.plugins.module_utils._drivers.overlay import (
        has_overlay_container as _has_overlay_container,
    )
    from ansible_collections.wharf.network.plugins.module_utils._engine.errors import ValidationError

    model = parse_topology(TOPOLOGY)
    assert _has_overlay_container(model, "node1")
    assert not _has_overlay_container(model, "elsewhere")
    with pytest.raises(ValidationError) as caught:
        converge(TOPOLOGY, "node1", True, peers={"node2": "10.77.0.2", "node3": "10.77.0.3"})
    assert caught.value.errors == [
        "peers: this host 'node1' has a container on an overlay network but is not among the peers"
        " (set its wharf_underlay_address)"
    ]
