"""The converge module with peers: overlay networks across sandbox hosts, and VXLAN from non-peers dropped."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


def topology(hosts: list[str]) -> dict:
    return {
        "networks": {"over": {"driver": "overlay", "subnet": "172.30.0.0/24", "vni": 4242}},
        "containers": {
            f"c{index}": {"host": host, "networks": {"over": {"ipv4_address": f"172.30.0.1{index}"}}}
            for index, host in enumerate(hosts, start=1)
        },
    }


def converge(host, hosts: list[str], peers: dict[str, str], check: bool = False):
    return host.module(
        "converge", {"topology": topology(hosts), "host": host.name, "peers": peers}, check=check, diff=check
    )


def heard_of(host, namespace: str) -> set[str]:
    """The MACs a container has neighbour entries for (an ARP request it received leaves one of its sender)."""
    return {e.get("lladdr") for e in json.loads(host.sh(f"ip -n {namespace} -j neigh show").stdout)}


def test_overlay_across_hosts_and_vxlan_from_a_non_peer_is_dropped(fleet):
    one, two, outsider = fleet.add(1), fleet.add(2), fleet.add(3)
    hosts = [one.name, two.name]
    peers = {one.name: fleet.underlay(1), two.name: fleet.underlay(2)}

    predicted = converge(one, hosts, peers, check=True)
    assert not predicted.failed, predicted.output
    assert "create vxlan '(host)/vx-4242'" in predicted.result["changes"]
    assert "create vxlan peers 'udp/4789'" in predicted.result["changes"]
    made = converge(one, hosts, peers)
    assert made.result["changes"] == predicted.result["changes"], made.output
    assert converge(two, hosts, peers).changed
    assert not converge(one, hosts, peers).changed
    assert one.links()["br-over"]["address"] == two.links()["br-over"]["address"] == "02:42:ac:1e:00:01"

    assert one.sh("ip netns exec c1 ping -n -c1 -W1 172.30.0.12", check=False).returncode == 0
    # the distributed gateway answers on each host with the same MAC
    assert one.sh("ip netns exec c1 ping -n -c1 -W1 172.30.0.1", check=False).returncode == 0
    arp = json.loads(one.sh("ip -n c1 -j neigh show 172.30.0.1").stdout)
    assert arp[0]["lladdr"] == "02:42:ac:1e:00:01"

    # a host on the underlay that is no peer builds the same VNI by hand and sends into it
    outsider.sh(
        "ip link add hvx type vxlan id 4242 dstport 4789 local 10.77.0.3 dev eth0"
        " && ip link add hbr type bridge && ip link set hvx master hbr up && ip link set hbr up"
        " && bridge fdb append 00:00:00:00:00:00 dev hvx dst 10.77.0.1"
        " && ip netns add intruder && ip link add vi type veth peer name eth0 netns intruder"
        " && ip link set vi master hbr up && ip -n intruder link set eth0 address 02:00:00:00:0b:ad up"
        " && ip -n intruder addr add 172.30.0.99/24 dev eth0"
    )
    outsider.sh("ip netns exec intruder ping -n -c2 -W1 172.30.0.11", check=False)
    assert "02:00:00:00:0b:ad" not in heard_of(one, "c1")  # nothing of it reached the container
    counters = json.loads(one.sh("ip -j -s link show vx-4242").stdout)[0]["stats64"]["rx"]

    # the same packets from an address that is a peer get through: the filter is what kept them out
    with_outsider = {**peers, outsider.name: fleet.underlay(3)}
    assert "update vxlan peers 'udp/4789'" in " ".join(converge(one, hosts, with_outsider).result["changes"])
    outsider.sh("ip netns exec intruder ping -n -c2 -W1 172.30.0.11", check=False)
    assert "02:00:00:00:0b:ad" in heard_of(one, "c1")  # its ARP request reached c1
    assert json.loads(one.sh("ip -j -s link show vx-4242").stdout)[0]["stats64"]["rx"]["packets"] > counters["packets"]


def test_a_container_without_host_on_a_spanning_overlay_is_refused_before_any_change(fleet):
    one = fleet.add(1)
    peers = {one.name: fleet.underlay(1), "elsewhere": fleet.underlay(2)}
    spread = topology([one.name])
    spread["containers"]["c9"] = {"networks": ["over"]}
    refused = one.module("converge", {"topology": spread, "host": one.name, "peers": peers})
    assert refused.failed and not refused.changed
    assert "containers.c9.host is needed: it is on overlay network over" in refused.result["msg"]
    bad_peer = one.module("converge", {"topology": topology([one.name]), "host": one.name, "peers": {"x": "1.2.3"}})
    assert (
        bad_peer.failed and "has a container on an overlay network but is not among the peers" in bad_peer.result["msg"]
    )
    assert set(one.links()) == {"lo", "eth0"} and one.netns() == []


def test_a_wrong_underlay_is_refused_before_any_change_with_the_users_fields(fleet):
    one = fleet.add(1)
    wrong = {one.name: "10.77.0.9", "node2": fleet.underlay(2)}
    refused = converge(one, [one.name, "node2"], wrong)
    assert refused.failed and not refused.changed
    message = refused.result["msg"]
    assert f"peers.{one.name} (the inventory variable wharf_underlay_address): 10.77.0.9 is not an address" in message
    assert "vxlans[" not in message and "changes were applied" not in message, message
    assert set(one.links()) == {"lo", "eth0"} and one.netns() == []

    small = fleet.add(2, mtu=1400)
    refused = converge(small, [small.name, one.name], {small.name: fleet.underlay(2), one.name: fleet.underlay(1)})
    assert refused.failed and not refused.changed
    message = refused.result["msg"]
    assert (
        "networks.over.mtu: 1450 does not fit the underlay: eth0 has mtu 1400, and VXLAN adds 50 bytes, so at most"
        " 1350" in message
    ), message
    assert "changes were applied" not in message
    assert set(small.links()) == {"lo", "eth0"} and small.netns() == []


def test_hosts_without_an_overlay_remove_the_vxlan_devices_wharf_left(fleet):
    one, two, plain = fleet.add(1), fleet.add(2), fleet.add(3)
    hosts = [one.name, two.name]
    peers = {one.name: fleet.underlay(1), two.name: fleet.underlay(2)}
    assert converge(one, hosts, peers).changed and converge(two, hosts, peers).changed
    assert "vx-4242" in one.links() and "vx-4242" in two.links()

    # node1's container leaves and so does node1 from the overlay (no wharf_underlay_address any more), but the
    # shared inventory still gives it node2's peers: not an error, and its device goes with its entries
    remaining = {two.name: fleet.underlay(2)}
    gone = topology([two.name])
    args = {"topology": gone, "host": one.name, "peers": remaining}
    predicted = one.module("converge", args, check=True)
    assert not predicted.failed, predicted.output
    assert "delete vxlan '(host)/vx-4242'" in predicted.result["changes"]
    assert "vx-4242" in one.links()
    left = one.module("converge", args)
    assert left.result["changes"] == predicted.result["changes"], left.output
    assert "vx-4242" not in one.links()
    assert not one.module("converge", args).changed

    # state: absent without peers: the device goes in the same run that drops the firewall's VXLAN filter
    removed = two.module("converge", {"topology": {**topology(hosts), "state": "absent"}, "host": two.name})
    assert "delete vxlan '(host)/vx-4242'" in removed.result["changes"], removed.output
    assert not any(name.startswith("vx-") for name in two.links())
    assert two.sh("nft list table inet wharf", check=False).returncode != 0

    # a host that never had a VXLAN device: the overlay step costs nothing and changes nothing
    bridged = {"networks": {"front": {"subnet": "172.31.0.0/24"}}, "containers": {"w": {"networks": ["front"]}}}
    assert plain.module("converge", {"topology": bridged, "host": plain.name}).changed
    again = plain.module("converge", {"topology": bridged, "host": plain.name})
    assert not again.changed, again.result["changes"]
