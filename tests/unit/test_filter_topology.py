"""The topology filters: the module item lists for one host, and the error list."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.wharf.network.plugins.filter import topology as topology_filter
from ansible_collections.wharf.network.plugins.filter.topology import (
    FilterModule,
    wharf_host_items,
    wharf_topology_errors,
)

REPO = Path(__file__).resolve().parents[2]

FLEET = {
    "networks": {
        "front": {"subnet": "172.28.0.0/24"},
        "back": {"subnet": "172.29.0.0/24", "internal": True},
        "over": {"subnet": "10.50.0.0/24", "driver": "overlay", "mtu": 1400},
        "lan": {"subnet": "192.168.5.0/24", "driver": "macvlan", "parent": "eth1"},
    },
    "containers": {
        "web1": {
            "host": "node1",
            "networks": {"front": {"ipv4_address": "172.28.0.10", "aliases": ["web"]}, "back": {}},
        },
        "web2": {"host": "node2", "networks": {"front": {"ipv4_address": "172.28.0.11"}}},
        "db": {"host": "node1", "networks": {"back": {"ipv4_address": "172.29.0.5"}}},
        "everywhere": {"networks": ["over"]},
        "solo": {"host": "node1"},
        "loner": {"host": "node1", "network_mode": "none", "hostname": "quiet"},
        "sidecar": {"host": "node1", "network_mode": "container:web1"},
        "hosted": {"host": "node1", "network_mode": "host"},
        "macv": {"host": "node2", "networks": ["lan", "front"]},
    },
}

VETH_KEYS = {"name", "peer", "peer_namespace", "master", "mtu", "peer_mac", "hairpin"}


def items_for(topology: dict, host: str) -> dict:
    return wharf_host_items(topology, host)


def by_name(items: list[dict], **match: object) -> dict:
    found = [i for i in items if all(i.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (match, items)
    return found[0]


def test_filters_are_registered():
    assert FilterModule().filters() == {
        "wharf_host_items": wharf_host_items,
        "wharf_topology_errors": wharf_topology_errors,
        "wharf_underlay_peers": topology_filter.wharf_underlay_peers,
    }


def test_output_has_every_list_and_is_plain_data():
    items = items_for(FLEET, "node1")
    assert set(items) == {*topology_filter.ITEM_LISTS, "prune"}
    assert json.loads(json.dumps(items)) == items  # nothing but str/int/bool/None/list/dict
    assert items_for(FLEET, "node1") == items


def test_containers_of_other_hosts_are_skipped():
    node1 = items_for(FLEET, "node1")
    node2 = items_for(FLEET, "node2")
    assert [n["name"] for n in node1["namespaces"]] == ["db", "everywhere", "loner", "sidecar", "solo", "web1"]
    assert [n["name"] for n in node2["namespaces"]] == ["everywhere", "macv", "web2"]
    assert [c["name"] for c in node1["containers"]] == [
        "db",
        "everywhere",
        "hosted",
        "loner",
        "sidecar",
        "solo",
        "web1",
    ]
    assert [n["name"] for n in items_for(FLEET, "elsewhere")["namespaces"]] == ["everywhere"]


def test_namespaces():
    namespaces = items_for(FLEET, "node1")["namespaces"]
    assert by_name(namespaces, name="web1") == {"name": "web1", "hostname": "web1"}
    assert by_name(namespaces, name="loner") == {"name": "loner", "hostname": "quiet"}
    # container:web1 gets a second name for web1's namespace; host mode gets none
    assert by_name(namespaces, name="sidecar") == {"name": "sidecar", "share_with": "web1"}
    assert not [n for n in namespaces if n["name"] == "hosted"]


def test_bridges_declared_everywhere_default_only_where_used():
    node1 = items_for(FLEET, "node1")
    node2 = items_for(FLEET, "node2")
    assert node1["bridges"] == [
        # every bridge has its gateway's MAC (02:42: + the gateway address), set, so it never follows a port's
        {"name": "br-back", "mtu": 1500, "forwarding": True, "mac": "02:42:ac:1d:00:01"},
        # solo uses the default network on node1
        {"name": "wharf0", "mtu": 1500, "forwarding": True, "mac": "02:42:ac:1f:00:01"},
        {"name": "br-front", "mtu": 1500, "forwarding": True, "mac": "02:42:ac:1c:00:01"},
        # overlay: the distributed gateway's MAC, the same on every host
        {"name": "br-over", "mtu": 1400, "forwarding": True, "mac": "02:42:0a:32:00:01"},
    ]
    assert [b["name"] for b in node2["bridges"]] == ["br-back", "br-front", "br-over"]
    assert node1["absent_bridges"] == node2["absent_bridges"] == []


def test_veths():
    node1 = items_for(FLEET, "node1")
    web1 = [v for v in node1["veths"] if v["peer_namespace"] == "web1"]
    assert all(set(v) == VETH_KEYS for v in node1["veths"])
    assert web1 == [
        {
            "name": "ve-web1-ca9b62c",
            "peer": "eth0",
            "peer_namespace": "web1",
            "master": "br-front",
            "mtu": 1500,
            "peer_mac": "02:42:ac:1c:00:0a",
            "hairpin": True,
        },
        {
            "name": web1[1]["name"],
            "peer": "eth1",
            "peer_namespace": "web1",
            "master": "br-back",
            "mtu": 1500,
            "peer_mac": web1[1]["peer_mac"],
            "hairpin": True,
        },
    ]
    assert web1[1]["name"].startswith("ve-web1-") and len(web1[1]["name"]) == 15
    assert by_name(node1["veths"], peer_namespace="everywhere")["master"] == "br-over"
    assert by_name(node1["veths"], peer_namespace="everywhere")["mtu"] == 1400
    assert by_name(node1["veths"], peer_namespace="solo")["master"] == "wharf0"
    assert not [v for v in node1["veths"] if v["peer_namespace"] in ("loner", "sidecar", "hosted")]
    assert len({v["name"] for v in node1["veths"]}) == len(node1["veths"]) == 5


def test_interfaces():
    interfaces = items_for(FLEET, "node1")["interfaces"]
    assert interfaces[:4] == [
        # IPv4-only networks: no IPv6 on the bridges nor in the containers (and no router advertisement taken)
        {"name": "br-back", "addresses": ["172.29.0.1/24"], "ipv6": False},
        {"name": "wharf0", "addresses": ["172.31.0.1/16"], "ipv6": False},
        {"name": "br-front", "addresses": ["172.28.0.1/24"], "ipv6": False},
        {"name": "br-over", "addresses": ["10.50.0.1/24"], "ipv6": False},
    ]
    assert by_name(interfaces, namespace="web1", name="eth0") == {
        "name": "eth0",
        "namespace": "web1",
        "addresses": ["172.28.0.10/24"],
        "routes": [{"dest": "default", "gateway": "172.28.0.1"}],
        "ipv6": False,
    }
    eth1 = by_name(interfaces, namespace="web1", name="eth1")
    assert set(eth1) == {"name", "namespace", "addresses", "ipv6"}
    assert eth1["addresses"][0].startswith("172.29.0.") and eth1["addresses"][0].endswith("/24")
    # db is only on an internal network: an address, no default route (as in Docker)
    db = {"name": "eth0", "namespace": "db", "addresses": ["172.29.0.5/24"], "ipv6": False}
    assert by_name(interfaces, namespace="db") == db
    assert not [i for i in interfaces if i.get("namespace") in ("loner", "sidecar", "hosted")]


def test_macvlan_endpoints_are_sub_interfaces():
    node2 = items_for(FLEET, "node2")
    (sub,) = node2["sub_interfaces"]
    assert sub["name"] == "eth0" and sub["namespace"] == "macv"
    assert (sub["kind"], sub["parent"], sub["mode"], sub["mtu"]) == ("macvlan", "eth1", "bridge", 1500)
    assert sub["addresses"][0].startswith("192.168.5.")
    assert sub["routes"] == [{"dest": "default", "gateway": "192.168.5.1"}]
    assert sub["mac"] == "02:42:" + ":".join(f"{int(b):02x}" for b in sub["addresses"][0].split("/")[0].split("."))
    veth = by_name(node2["veths"], peer_namespace="macv")
    assert (veth["peer"], veth["master"]) == ("eth1", "br-front")
    assert not [i for i in node2["interfaces"] if i.get("namespace") == "macv" and i["name"] == "eth0"]
    assert items_for(FLEET, "node1")["sub_interfaces"] == []


def test_container_summaries():
    summaries = items_for(FLEET, "node1")["containers"]
    web1 = by_name(summaries, name="web1")
    assert {k: v for k, v in web1.items() if k != "endpoints"} == {
        "name": "web1",
        "namespace": "web1",
        "hostname": "web1",
        "network_mode": "bridge",
        "host": "node1",
    }
    assert web1["endpoints"][0] == {
        "network": "front",
        "interface": "eth0",
        "host_interface": "ve-web1-ca9b62c",
        "address": "172.28.0.10",
        "prefixlen": 24,
        "gateway": "172.28.0.1",
        "mac": "02:42:ac:1c:00:0a",
        "aliases": ["web"],
        "internal": False,
        "driver": "bridge",
        "icc": True,
    }
    assert web1["endpoints"][1]["network"] == "back" and web1["endpoints"][1]["internal"] is True
    assert by_name(summaries, name="sidecar") == {
        "name": "sidecar",
        "namespace": "web1",
        "hostname": "web1",
        "network_mode": "container:web1",
        "host": "node1",
        "endpoints": [],
    }
    assert by_name(summaries, name="hosted") == {
        "name": "hosted",
        "namespace": None,
        "hostname": None,
        "network_mode": "host",
        "host": "node1",
        "endpoints": [],
    }
    assert by_name(summaries, name="loner")["endpoints"] == []


def test_every_host_computes_the_same_addresses():
    node1 = {c["name"]: c for c in items_for(FLEET, "node1")["containers"]}
    node2 = {c["name"]: c for c in items_for(FLEET, "node2")["containers"]}
    assert node1["everywhere"] == node2["everywhere"]


def test_absent_container():
    topology = json.loads(json.dumps(FLEET))
    topology["containers"]["web1"]["state"] = "absent"
    topology["containers"]["sidecar"]["state"] = "absent"
    topology["containers"]["loner"]["state"] = "absent"
    items = items_for(topology, "node1")
    assert "web1" not in [n["name"] for n in items["namespaces"]]
    assert items["absent_namespaces"] == [
        {"name": "loner", "hostname": "quiet"},
        {"name": "sidecar", "share_with": "web1"},
        {"name": "web1", "hostname": "web1"},
    ]
    assert [(v["peer_namespace"], v["peer"], v["master"]) for v in items["absent_veths"]] == [
        ("web1", "eth0", "br-front"),
        ("web1", "eth1", "br-back"),
    ]
    assert all(set(v) == VETH_KEYS for v in items["absent_veths"])
    assert not [v for v in items["veths"] if v["peer_namespace"] == "web1"]
    assert not [i for i in items["interfaces"] if i.get("namespace") == "web1"]
    assert "web1" not in [c["name"] for c in items["containers"]]
    assert [b["name"] for b in items["bridges"]] == ["br-back", "wharf0", "br-front", "br-over"]
    # node2 does not carry web1, so it has nothing to remove
    assert items_for(topology, "node2")["absent_namespaces"] == []


def test_absent_network():
    topology = {
        "networks": {"old": {"subnet": "10.1.0.0/24", "state": "absent"}, "new": {"subnet": "10.2.0.0/24"}},
        "containers": {"c": {"networks": ["new"]}},
    }
    items = items_for(topology, "any")
    assert items["absent_bridges"] == [{"name": "br-old", "mtu": 1500, "forwarding": True, "mac": "02:42:0a:01:00:01"}]
    assert items["bridges"] == [{"name": "br-new", "mtu": 1500, "forwarding": True, "mac": "02:42:0a:02:00:01"}]
    assert {"name": "br-old", "addresses": ["10.1.0.1/24"]} not in items["interfaces"]


def test_whole_topology_absent():
    topology = {**json.loads(json.dumps(FLEET)), "state": "absent", "prune": True}
    present = items_for(FLEET, "node1")
    items = items_for(topology, "node1")
    for key in ("namespaces", "bridges", "veths", "interfaces", "sub_interfaces", "containers"):
        assert items[key] == [], key
    assert items["absent_namespaces"] == present["namespaces"]
    assert items["absent_bridges"] == present["bridges"]
    assert items["absent_veths"] == present["veths"]
    assert items["prune"] is True


def test_default_network_torn_down_only_where_it_was_used():
    topology = {"state": "absent", "containers": {"a": {"host": "n1"}, "b": {"host": "n2", "network_mode": "none"}}}
    wharf0 = {"name": "wharf0", "mtu": 1500, "forwarding": True, "mac": "02:42:ac:1f:00:01"}
    assert items_for(topology, "n1")["absent_bridges"] == [wharf0]
    assert items_for(topology, "n2")["absent_bridges"] == []
    assert items_for(topology, "n2")["absent_namespaces"] == [{"name": "b", "hostname": "b"}]


def test_default_network_stays_when_only_an_absent_container_used_it():
    topology = {"containers": {"a": {"state": "absent"}}}
    items = items_for(topology, "n1")
    assert items["bridges"] == [] and items["absent_bridges"] == []  # prune removes it; Docker keeps docker0
    assert [v["peer_namespace"] for v in items["absent_veths"]] == ["a"]


def test_empty_topology():
    items = items_for({}, "n1")
    assert all(items[key] == [] for key in topology_filter.ITEM_LISTS)
    assert items["prune"] is False


def test_invalid_topology_raises_with_every_error():
    bad = {
        "networks": {"shop": {"subnet": "10.91.0.0/24"}, "ledger": {"subnet": "10.91.0.128/25"}},
        "containers": {"web": {"networks": ["nope"]}},
    }
    with pytest.raises(AnsibleFilterError) as caught:
        wharf_host_items(bad, "n1")
    message = str(caught.value)
    assert "networks.ledger.subnet 10.91.0.128/25 overlaps networks.shop.subnet 10.91.0.0/24" in message
    assert "containers.web.networks.nope: no network nope" in message
    assert wharf_topology_errors(bad) == [
        "networks.ledger.subnet 10.91.0.128/25 overlaps networks.shop.subnet 10.91.0.0/24",
        "containers.web.networks.nope: no network nope",
    ]


def test_topology_errors_is_empty_for_a_valid_topology():
    assert wharf_topology_errors(FLEET) == []
    assert wharf_topology_errors(None) == ["wharf_topology null must be a mapping, not null"]


@pytest.mark.parametrize("host", ["", None, 3])
def test_host_name_is_required(host):
    with pytest.raises(AnsibleFilterError, match="needs an inventory hostname"):
        wharf_host_items(FLEET, host)


ANSIBLE_BIN = REPO / ".venv" / "bin"


@pytest.mark.ansible
@pytest.mark.skipif(not (ANSIBLE_BIN / "ansible-playbook").exists(), reason="needs the project venv")
def test_filters_through_ansible(tmp_path):
    """The plugin loads by its collection name, its sidecar docs parse, and it works in a template."""
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".collections"), "ANSIBLE_NOCOLOR": "1"}
    for name in ("wharf_host_items", "wharf_topology_errors"):
        doc = subprocess.run(
            [ANSIBLE_BIN / "ansible-doc", "-t", "filter", "--json", f"wharf.network.{name}"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        assert json.loads(doc.stdout)[f"wharf.network.{name}"]["doc"]["name"] == name
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        textwrap.dedent(
            """
            - hosts: localhost
              gather_facts: false
              vars:
                wharf_topology:
                  networks: {front: {subnet: 10.9.0.0/24}}
                  containers: {web: {networks: {front: {ipv4_address: 10.9.0.7}}}}
              tasks:
                - ansible.builtin.assert:
                    that:
                      - (wharf_topology | wharf.network.wharf_topology_errors) == []
                      - items.veths[0].peer_namespace == 'web'
                      - items.interfaces[1].addresses == ['10.9.0.7/24']
                  vars:
                    items: "{{ wharf_topology | wharf.network.wharf_host_items(inventory_hostname) }}"
            """
        )
    )
    run = subprocess.run(
        [ANSIBLE_BIN / "ansible-playbook", "-i", "localhost,", "-c", "local", str(playbook)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_firewall_networks_are_the_bridged_networks_of_the_host():
    networks = items_for(FLEET, "node1")["firewall_networks"]
    assert [n["bridge"] for n in networks] == ["br-back", "wharf0", "br-front", "br-over"]
    back = by_name(networks, bridge="br-back")
    assert back == {
        "bridge": "br-back",
        "subnet": "172.29.0.0/24",
        "internal": True,
        "icc": True,
        "masquerade": False,
        "gateway": "172.29.0.1",
    }
    assert by_name(networks, bridge="br-front")["masquerade"] is True


def test_ports_become_publishes_to_the_address_of_the_first_non_internal_network():
    topology = {
        "networks": {"back": {"subnet": "172.29.0.0/24", "internal": True}, "front": {"subnet": "172.28.0.0/24"}},
        "containers": {
            "web": {
                "networks": {"back": {"ipv4_address": "172.29.0.9"}, "front": {"ipv4_address": "172.28.0.9"}},
                "ports": [
                    "8080:80",
                    "127.0.0.1:5432:5432/tcp",
                    "9000-9001:9000-9001/udp",
                    "53/udp",
                    {"host_ip": "0.0.0.0", "published": 8443, "target": 443, "protocol": "sctp"},
                ],
            }
        },
    }
    publishes = items_for(topology, "n1")["publishes"]
    assert publishes == [
        {
            "address": "172.28.0.9",
            "host_ip": None,
            "published": "8080",
            "target": "80",
            "protocol": "tcp",
            "source": "containers.web.ports[0]",
        },
        {
            "address": "172.28.0.9",
            "host_ip": "127.0.0.1",
            "published": "5432",
            "target": "5432",
            "protocol": "tcp",
            "source": "containers.web.ports[1]",
        },
        {
            "address": "172.28.0.9",
            "host_ip": None,
            "published": "9000-9001",
            "target": "9000-9001",
            "protocol": "udp",
            "source": "containers.web.ports[2]",
        },
        {
            "address": "172.28.0.9",
            "host_ip": None,
            "published": None,
            "target": "53",
            "protocol": "udp",
            "source": "containers.web.ports[3]",
        },
        {
            "address": "172.28.0.9",
            "host_ip": "0.0.0.0",
            "published": "8443",
            "target": "443",
            "protocol": "sctp",
            "source": "containers.web.ports[4]",
        },
    ]


def test_ports_of_a_container_only_on_internal_networks_are_refused():
    topology = {
        "networks": {"back": {"subnet": "172.29.0.0/24", "internal": True}},
        "containers": {"db": {"networks": ["back"], "ports": ["5432:5432"]}},
    }
    errors = wharf_topology_errors(topology)
    assert errors == [
        "containers.db.ports: publishing needs a network with ingress, and every network of this container is "
        "internal (back)"
    ]
