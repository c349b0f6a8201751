"""wharf.network.overlay_vxlan between sandbox hosts on one underlay segment, with real packets across."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import COLLECTIONS

pytestmark = pytest.mark.integration

GATEWAY_MAC = "02:42:0a:0a:00:01"


def container_mac(index: int) -> str:
    return f"02:42:0a:0a:00:{10 + index:02x}"


def container_ip(index: int) -> str:
    return f"10.10.0.{10 + index}"


def build_host(host, index: int, mtu: int = 1450) -> None:
    """A bridge with the distributed gateway and one container `c<index>` on it, by hand (not under test)."""
    host.sh(
        f"ip link add br0 mtu {mtu} address {GATEWAY_MAC} type bridge && ip addr add 10.10.0.1/24 dev br0"
        " && ip link set br0 up"
        f" && ip netns add c{index} && ip link add vc{index} mtu {mtu} type veth peer name eth0 netns c{index}"
        f" && ip link set vc{index} master br0 up"
        f" && ip -n c{index} link set eth0 address {container_mac(index)} mtu {mtu} up"
        f" && ip -n c{index} addr add {container_ip(index)}/24 dev eth0"
        f" && ip -n c{index} route add default via 10.10.0.1"
    )


def item(fleet, index: int, others: list[int], **extra) -> dict:
    return {
        "name": "vx-4242",
        "vni": 4242,
        "local": fleet.underlay(index),
        "master": "br0",
        "mtu": 1450,
        "peers": [fleet.underlay(o) for o in others],
        "remotes": [{"mac": container_mac(o), "address": container_ip(o), "peer": fleet.underlay(o)} for o in others],
        **extra,
    }


def joined_pair(fleet):
    """Two hosts, each with c1/c2 on br0, joined by the overlay (each module call must change something)."""
    one, two = fleet.add(1), fleet.add(2)
    build_host(one, 1)
    build_host(two, 2)
    assert one.module("overlay_vxlan", {"vxlans": [item(fleet, 1, [2])]}).changed
    assert two.module("overlay_vxlan", {"vxlans": [item(fleet, 2, [1])]}).changed
    return one, two


def fdb(host) -> list[str]:
    entries = json.loads(host.sh("bridge -j fdb show dev vx-4242").stdout)
    return sorted(f"{e['mac']} dst {e['dst']}" for e in entries if "dst" in e)


def neighbours(host) -> list[str]:
    entries = json.loads(host.sh("ip -j neigh show dev vx-4242").stdout)
    return sorted(f"{e['dst']} lladdr {e['lladdr']}" for e in entries)


def bridge_fdb(host) -> list[str]:
    """The bridge's static entries on the VXLAN port (not the device's own table)."""
    entries = json.loads(host.sh("bridge -j fdb show br br0").stdout)
    return sorted(e["mac"] for e in entries if e.get("ifname") == "vx-4242" and e.get("state") == "static")


def port_learning(host) -> bool:
    link = json.loads(host.sh("ip -d -j link show vx-4242").stdout)[0]
    return link["linkinfo"]["info_slave_data"]["learning"]


def ping(host, source: str, destination: str, size: int | None = None) -> tuple[bool, str]:
    df = f" -M do -s {size}" if size is not None else ""
    proc = host.sh(f"ip netns exec {source} ping -n -c1 -W1{df} {destination}", check=False)
    return proc.returncode == 0, proc.stdout + proc.stderr


def test_two_hosts_reach_each_other_over_a_static_overlay(fleet):
    one, two = fleet.add(1), fleet.add(2)
    build_host(one, 1)
    build_host(two, 2)
    assert not ping(one, "c1", container_ip(2))[0]  # nothing joins the two bridges yet

    predicted = one.module("overlay_vxlan", {"vxlans": [item(fleet, 1, [2])]}, check=True, diff=True)
    assert predicted.changed and predicted.result["changes"] == ["create vxlan '(host)/vx-4242'"]
    assert "vx-4242" not in one.links()
    assert "10.10.0.12 lladdr 02:42:0a:0a:00:0c" in predicted.result["diff"]["after"]

    made = one.module("overlay_vxlan", {"vxlans": [item(fleet, 1, [2])]})
    assert made.result["changes"] == predicted.result["changes"], made.output
    assert two.module("overlay_vxlan", {"vxlans": [item(fleet, 2, [1])]}).changed

    link = one.links()["vx-4242"]
    data = link["linkinfo"]["info_data"]
    assert (data["id"], data["local"], data["port"], data["learning"], data["proxy"]) == (
        4242,
        "10.77.0.1",
        4789,
        False,
        True,
    )
    assert link["master"] == "br0" and link["mtu"] == 1450 and link["ifalias"] == "wharf.network"
    assert fdb(one) == ["00:00:00:00:00:00 dst 10.77.0.2", "02:42:0a:0a:00:0c dst 10.77.0.2"]
    assert neighbours(one) == ["10.10.0.12 lladdr 02:42:0a:0a:00:0c"]
    # the bridge does not learn on the VXLAN port and knows the remote MAC statically there
    assert port_learning(one) is False and bridge_fdb(one) == ["02:42:0a:0a:00:0c"]

    assert not one.module("overlay_vxlan", {"vxlans": [item(fleet, 1, [2])]}).changed
    assert not two.module("overlay_vxlan", {"vxlans": [item(fleet, 2, [1])]}).changed

    for source_host, source, destination in ((one, "c1", 2), (two, "c2", 1)):
        reached, output = ping(source_host, source, container_ip(destination))
        assert reached, output
    # ARP for the remote container was answered on this host (proxy), from the static entry
    arp = json.loads(one.sh("ip -n c1 -j neigh show 10.10.0.12").stdout)
    assert arp and arp[0]["lladdr"] == container_mac(2)

    # MTU: a DF packet of exactly the overlay MTU crosses the tunnel; one byte more is refused where it starts,
    # with the MTU named, instead of vanishing on the underlay
    reached, output = ping(one, "c1", container_ip(2), size=1450 - 28)
    assert reached, output
    reached, output = ping(one, "c1", container_ip(2), size=1451 - 28)
    assert not reached and "mtu=1450" in output, output


def test_a_routed_sender_gets_frag_needed_at_the_overlay_mtu(fleet):
    """Traffic routed into the overlay from a 1500-byte link: DF at 1450 passes, 1451 gets ICMP frag needed."""
    one, two = joined_pair(fleet)
    # a client behind node1 with a 1500-byte link, routed by node1 into the overlay network
    one.sh(
        "ip netns add client && ip link add vclient type veth peer name eth0 netns client"
        " && ip addr add 192.0.2.1/24 dev vclient && ip link set vclient up"
        " && ip -n client addr add 192.0.2.2/24 dev eth0 && ip -n client link set eth0 up"
        " && ip -n client route add default via 192.0.2.1"
        " && sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.br0.forwarding=1"
    )
    # the reply leaves through node2's own gateway (the same address and MAC: a distributed gateway), routed
    # back over the underlay
    two.sh("sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.br0.forwarding=1 && ip route add 192.0.2.0/24 via 10.77.0.1")
    reached, output = ping(one, "client", container_ip(2), size=1450 - 28)
    assert reached, output
    reached, output = ping(one, "client", container_ip(2), size=1451 - 28)
    assert not reached and "Frag needed and DF set (mtu = 1450)" in output, output


def test_hosts_and_containers_that_leave_are_removed_from_the_tables(fleet):
    one, two, three = fleet.add(1), fleet.add(2), fleet.add(3)
    for index, host in enumerate((one, two, three), start=1):
        build_host(host, index)
    everyone = [1, 2, 3]
    for index, host in enumerate((one, two, three), start=1):
        assert host.module(
            "overlay_vxlan", {"vxlans": [item(fleet, index, [o for o in everyone if o != index])]}
        ).changed
    assert ping(one, "c1", container_ip(3))[0]
    assert len(fdb(one)) == 4 and len(neighbours(one)) == 2 and len(bridge_fdb(one)) == 2

    # node3 leaves: its peer entry, its container's FDB, neighbour and bridge entries go in one run, as predicted
    expected = [
        "update vxlan '(host)/vx-4242': fdb ['00:00:00:00:00:00 dst 10.77.0.2', '00:00:00:00:00:00 dst 10.77.0.3',"
        " '02:42:0a:0a:00:0c dst 10.77.0.2', '02:42:0a:0a:00:0d dst 10.77.0.3'] -> ['00:00:00:00:00:00 dst"
        " 10.77.0.2', '02:42:0a:0a:00:0c dst 10.77.0.2'], neighbours ['10.10.0.12 lladdr 02:42:0a:0a:00:0c',"
        " '10.10.0.13 lladdr 02:42:0a:0a:00:0d'] -> ['10.10.0.12 lladdr 02:42:0a:0a:00:0c'], bridge_fdb"
        " ['02:42:0a:0a:00:0c', '02:42:0a:0a:00:0d'] -> ['02:42:0a:0a:00:0c']"
    ]
    predicted = one.module("overlay_vxlan", {"vxlans": [item(fleet, 1, [2])]}, check=True, diff=True)
    assert predicted.result["changes"] == expected
    assert len(fdb(one)) == 4  # check mode changed nothing
    left = one.module("overlay_vxlan", {"vxlans": [item(fleet, 1, [2])]}, diff=True)
    assert left.result["changes"] == expected
    assert fdb(one) == ["00:00:00:00:00:00 dst 10.77.0.2", "02:42:0a:0a:00:0c dst 10.77.0.2"]
    assert neighbours(one) == ["10.10.0.12 lladdr 02:42:0a:0a:00:0c"]
    assert bridge_fdb(one) == ["02:42:0a:0a:00:0c"]
    assert not ping(one, "c1", container_ip(3))[0]
    assert ping(one, "c1", container_ip(2))[0]

    # a container moves to another host with its address and MAC: the entry follows, no stale VTEP
    two.sh("ip netns del c2")
    three.sh(
        "ip netns add c2 && ip link add vm2 mtu 1450 type veth peer name eth0 netns c2"
        f" && ip link set vm2 master br0 up && ip -n c2 link set eth0 address {container_mac(2)} mtu 1450 up"
        f" && ip -n c2 addr add {container_ip(2)}/24 dev eth0"
    )
    moved = item(fleet, 1, [2, 3])
    moved["remotes"] = [{"mac": container_mac(2), "address": container_ip(2), "peer": fleet.underlay(3)}]
    assert one.module("overlay_vxlan", {"vxlans": [moved]}).changed
    assert not one.module("overlay_vxlan", {"vxlans": [moved]}).changed
    assert fdb(one) == [
        "00:00:00:00:00:00 dst 10.77.0.2",
        "00:00:00:00:00:00 dst 10.77.0.3",
        "02:42:0a:0a:00:0c dst 10.77.0.3",
    ]
    reached, output = ping(one, "c1", container_ip(2))  # answered by the container on its new host
    assert reached, output
    assert '"02:42:0a:0a:00:0c"' in three.sh("bridge -j fdb show br br0 brport vm2").stdout


def test_drift_is_predicted_in_check_mode_and_repaired(fleet):
    """A device set down, a neighbour entry deleted and port learning turned back on by hand: check mode names
    exactly what the real run then repairs, and the run after that changes nothing."""
    one, _two = joined_pair(fleet)
    one.sh(
        "ip neigh del 10.10.0.12 dev vx-4242 && ip link set vx-4242 type bridge_slave learning on"
        " && ip link set vx-4242 down"
    )
    assert not ping(one, "c1", container_ip(2))[0]
    predicted = one.module("overlay_vxlan", {"vxlans": [item(fleet, 1, [2])]}, check=True, diff=True)
    assert predicted.result["changes"] == [
        "update vxlan '(host)/vx-4242': port_learning True -> False, up False -> True, neighbours [] ->"
        " ['10.10.0.12 lladdr 02:42:0a:0a:00:0c']"
    ], predicted.output
    assert "UP" not in one.links()["vx-4242"]["flags"]
    repaired = one.module("overlay_vxlan", {"vxlans": [item(fleet, 1, [2])]})
    assert repaired.result["changes"] == predicted.result["changes"]
    assert not one.module("overlay_vxlan", {"vxlans": [item(fleet, 1, [2])]}).changed
    assert neighbours(one) == ["10.10.0.12 lladdr 02:42:0a:0a:00:0c"] and port_learning(one) is False
    reached, output = ping(one, "c1", container_ip(2))
    assert reached, output


def forge(host, namespace: str, source_mac: str) -> None:
    """Send one broadcast frame with a forged source MAC (a raw socket: no ARP, nothing a container answers)."""
    source = source_mac.replace(":", "")
    frame = f"bytes.fromhex('ffffffffffff') + bytes.fromhex('{source}') + b'\\x88\\xb5' + bytes(46)"
    host.sh(
        f'ip netns exec {namespace} python3 -c "import socket; s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW);'
        f" s.bind(('eth0', 0)); s.send({frame})\""
    )


def test_a_remote_container_forging_a_local_mac_cannot_take_local_traffic(fleet):
    """The bridge port of the VXLAN device does not learn: a frame from a remote container with the source MAC of
    a local one does not move that MAC to the tunnel, so local traffic to it keeps flowing."""
    one, two = fleet.add(1), fleet.add(2)
    build_host(one, 1)
    build_host(two, 2)
    # a second local container on node1, which knows c1's MAC already (no ARP that would re-teach the bridge)
    one.sh(
        "ip netns add l1 && ip link add vl1 mtu 1450 type veth peer name eth0 netns l1 && ip link set vl1 master br0 up"
        " && ip -n l1 link set eth0 mtu 1450 up && ip -n l1 addr add 10.10.0.50/24 dev eth0"
        f" && ip -n l1 neigh replace {container_ip(1)} lladdr {container_mac(1)} dev eth0 nud permanent"
    )
    assert one.module("overlay_vxlan", {"vxlans": [item(fleet, 1, [2])]}).changed
    assert two.module("overlay_vxlan", {"vxlans": [item(fleet, 2, [1])]}).changed
    reached, output = ping(one, "l1", container_ip(1))
    assert reached, output

    received = json.loads(one.sh("ip -j -s link show vx-4242").stdout)[0]["stats64"]["rx"]["packets"]
    forge(two, "c2", container_mac(1))
    # the frame did cross the tunnel (flooded to the peer), and the bridge still has c1 on its own port only
    assert json.loads(one.sh("ip -j -s link show vx-4242").stdout)[0]["stats64"]["rx"]["packets"] > received
    entries = json.loads(one.sh("bridge -j fdb show br br0").stdout)
    ports = {e["ifname"] for e in entries if e["mac"] == container_mac(1)}
    assert ports == {"vc1"}, ports
    reached, output = ping(one, "l1", container_ip(1))
    assert reached, output


def test_bad_input_and_foreign_devices_are_refused_before_any_change(fleet):
    one = fleet.add(1, mtu=1400)
    build_host(one, 1, mtu=1400)
    bad = item(fleet, 1, [2], mtu=1400, vni=0)
    bad["remotes"].append({"mac": "01:00:5e:00:00:01", "address": "10.10.0.99", "peer": "10.77.0.9"})
    refused = one.module("overlay_vxlan", {"vxlans": [bad]})
    assert refused.failed and not refused.changed
    message = refused.result["msg"]
    assert "vxlans[0].vni: 0 must be an integer between 1 and 16777215" in message
    assert "vxlans[0].remotes[1].mac: MAC address '01:00:5e:00:00:01' is a multicast address" in message
    assert "vxlans[0].remotes[1].peer: 10.77.0.9 is not one of vxlans[0].peers" in message

    too_big = one.module("overlay_vxlan", {"vxlans": [item(fleet, 1, [2], mtu=1380)]})
    assert too_big.failed
    assert (
        "vxlans[0].mtu: 1380 does not fit the underlay: eth0 has mtu 1400, and VXLAN adds 50 bytes, so at most 1350"
        in too_big.result["msg"]
    )
    not_here = one.module("overlay_vxlan", {"vxlans": [item(fleet, 1, [2], local="10.77.0.5", mtu=1350)]})
    assert not_here.failed and "10.77.0.5 is not an address of any interface" in not_here.result["msg"]

    one.sh("ip link add vx-4242 type vxlan id 7 dstport 4789 local 10.77.0.1 dev eth0")
    foreign = one.module("overlay_vxlan", {"vxlans": [item(fleet, 1, [2], mtu=1350)]})
    assert foreign.failed and "was not created by wharf.network" in foreign.result["msg"]
    assert one.links()["vx-4242"]["linkinfo"]["info_data"]["id"] == 7
    assert not one.module("overlay_vxlan", {"vxlans": [], "exclusive": True}).changed  # never pruned

    zero = one.module("overlay_vxlan", {"vxlans": [item(fleet, 1, [2], mtu=1350, port=0)]})
    assert zero.failed and "vxlans[0].port: 0 must be a UDP port between 1 and 65535" in zero.result["msg"]


def test_identity_changes_remake_the_device_and_absent_removes_it(fleet):
    one = fleet.add(1)
    build_host(one, 1)
    assert one.module("overlay_vxlan", {"vxlans": [item(fleet, 1, [2])]}).changed
    index = one.links()["vx-4242"]["ifindex"]
    changed = one.module("overlay_vxlan", {"vxlans": [item(fleet, 1, [2], port=8472)]})
    assert changed.result["changes"] == ["update vxlan '(host)/vx-4242': port 4789 -> 8472"]
    link = one.links()["vx-4242"]
    assert link["linkinfo"]["info_data"]["port"] == 8472 and link["ifindex"] != index
    assert fdb(one) == ["00:00:00:00:00:00 dst 10.77.0.2", "02:42:0a:0a:00:0c dst 10.77.0.2"]
    assert link["master"] == "br0" and "UP" in link["flags"]

    pruned = one.module("overlay_vxlan", {"vxlans": [], "exclusive": True})
    assert pruned.result["changes"] == ["delete vxlan '(host)/vx-4242'"]
    assert "vx-4242" not in one.links()
    assert one.module("overlay_vxlan", {"vxlans": [item(fleet, 1, [2])]}).changed
    gone = one.module("overlay_vxlan", {"vxlans": [item(fleet, 1, [2])], "state": "absent"})
    assert gone.result["changes"] == ["delete vxlan '(host)/vx-4242'"]
    assert not one.module("overlay_vxlan", {"vxlans": [item(fleet, 1, [2])], "state": "absent"}).changed


# run inside a sandbox host: plan with bridge br0 present, then lose it before the apply (renamed away, as a
# concurrent change would), so creating the device fails half-way, after the device exists
HALF_MADE = """
import json, subprocess, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.wharf.network.plugins.module_utils._kernel.namespace import NamespaceSockets
from ansible_collections.wharf.network.plugins.module_utils._kernel.vxlan import VxlanResource
with NamespaceSockets() as sockets:
    plan = VxlanResource(sockets, [json.loads(sys.argv[2])], "present", False).plan()
    subprocess.run(["ip", "link", "set", "br0", "name", "br9"], check=True)
    try:
        plan.apply()
    except Exception as exc:
        print(f"apply failed: {exc!r}")
"""


def test_a_device_whose_creation_fails_half_way_is_still_ours_and_completed_by_the_next_run(fleet):
    """The owner mark is set on its own right after the device is made: when a later part of the creation fails,
    the half-made device is wharf's, and the next run completes it instead of refusing it as foreign."""
    one = fleet.add(1)
    build_host(one, 1)
    proc = one.sh(f"{sys.executable} -c '{HALF_MADE}' {COLLECTIONS} '{json.dumps(item(fleet, 1, [2]))}'")
    assert "apply failed" in proc.stdout, proc.stdout + proc.stderr
    assert one.links()["vx-4242"]["ifalias"] == "wharf.network"
    one.sh("ip link set br9 name br0")
    repaired = one.module("overlay_vxlan", {"vxlans": [item(fleet, 1, [2])]})
    assert not repaired.failed and repaired.changed, repaired.output
    link = one.links()["vx-4242"]
    assert link["master"] == "br0" and "UP" in link["flags"] and port_learning(one) is False
    assert fdb(one) == ["00:00:00:00:00:00 dst 10.77.0.2", "02:42:0a:0a:00:0c dst 10.77.0.2"]
    assert bridge_fdb(one) == ["02:42:0a:0a:00:0c"]
    assert not one.module("overlay_vxlan", {"vxlans": [item(fleet, 1, [2])]}).changed
