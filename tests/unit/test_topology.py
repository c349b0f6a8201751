"""The topology model: every validation error, defaults, address allocation and derived kernel names."""

from __future__ import annotations

import copy
import ipaddress
import random
import time

import pytest

from ansible_collections.wharf.network.plugins.module_utils._model import topology as topo
from ansible_collections.wharf.network.plugins.module_utils._model.topology import (
    TopologyError,
    allocate_addresses,
    bridge_name_for,
    host_veth_name,
    parse_topology,
    topology_errors,
)


def errors_of(doc: object) -> list[str]:
    with pytest.raises(TopologyError) as caught:
        parse_topology(doc)
    assert caught.value.errors == topology_errors(doc)
    return caught.value.errors


def assert_one_error(doc: object, *fragments: str) -> str:
    """Exactly one error, containing every fragment."""
    errors = errors_of(doc)
    assert len(errors) == 1, errors
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def net(subnet: str = "10.10.0.0/24", **extra: object) -> dict:
    return {"subnet": subnet, **extra}


def one_network(containers: dict, **network: object) -> dict:
    return {"networks": {"front": net(**network)}, "containers": containers}


def addresses(topology: topo.Topology) -> dict[tuple[str, str], str]:
    return {(c.name, e.network): str(e.address) for c in topology.containers.values() for e in c.endpoints}


# --- validation: networks --------------------------------------------------------------------------------


def test_overlapping_subnets_name_both_networks():
    doc = {"networks": {"shop": net("10.91.0.0/24"), "ledger": net("10.91.0.128/25")}}
    assert assert_one_error(doc) == "networks.ledger.subnet 10.91.0.128/25 overlaps networks.shop.subnet 10.91.0.0/24"


def test_overlap_with_the_implicit_default_network():
    doc = {"networks": {"big": net("172.31.5.0/24")}, "containers": {"c": {}}}
    assert_one_error(doc, "networks.bridge.subnet 172.31.0.0/16", "overlaps networks.big.subnet 172.31.5.0/24")


def test_absent_network_may_overlap():
    doc = {"networks": {"old": net("10.91.0.0/24", state="absent"), "new": net("10.91.0.0/24")}}
    assert parse_topology(doc).networks["old"].state == "absent"


def test_adjacent_subnets_do_not_overlap():
    parse_topology({"networks": {"a": net("10.0.0.0/25"), "b": net("10.0.0.128/25")}})


@pytest.mark.parametrize(
    ("network", "fragments"),
    [
        (net(gateway="10.10.1.1"), ("networks.front.gateway 10.10.1.1 is outside subnet 10.10.0.0/24",)),
        (net(gateway="10.10.0.0"), ("networks.front.gateway 10.10.0.0", "network or broadcast")),
        (net(gateway="10.10.0.255"), ("networks.front.gateway 10.10.0.255", "network or broadcast")),
        (net(gateway="nope"), ("networks.front.gateway nope is not an IPv4 address",)),
        (net(ip_range="10.10.1.0/25"), ("networks.front.ip_range 10.10.1.0/25 is outside subnet 10.10.0.0/24",)),
        (net(ip_range="10.10.0.1/25"), ("networks.front.ip_range 10.10.0.1/25 has host bits set",)),
        (net("10.10.0.1/24"), ("networks.front.subnet 10.10.0.1/24 has host bits set", "10.10.0.0/24")),
        (net("fd00::/64"), ("networks.front.subnet fd00::/64 is not an IPv4 subnet",)),
        (net("10.10.0.0/31"), ("networks.front.subnet 10.10.0.0/31 is too small",)),
        (net("10.10.0.0"), ("networks.front.subnet",)),  # a bare address is a /32: too small
        (net(24), ("networks.front.subnet 24 must be a subnet in CIDR form, not an integer",)),
        ({"driver": "bridge"}, ("networks.front.subnet is required for driver bridge",)),
        ({"driver": "overlay"}, ("networks.front.subnet is required for driver overlay",)),
        ({"driver": "macvlan", "parent": "eth1"}, ("networks.front.subnet is required for driver macvlan",)),
        ({"driver": "ipvlan", "parent": "eth1"}, ("networks.front.subnet is required for driver ipvlan",)),
        (net(driver="vxlan"), ("networks.front.driver vxlan must be one of bridge, overlay, macvlan, ipvlan",)),
        (net(mtu="1500"), ('networks.front.mtu "1500" must be an integer, not a string',)),
        (net(mtu=True), ("networks.front.mtu true must be an integer, not a boolean",)),
        (net(mtu=67), ("networks.front.mtu 67 is out of range (68-65535)",)),
        (net(internal="yes"), ('networks.front.internal "yes" must be true or false, not a string',)),
        (net(icc=1), ("networks.front.icc 1 must be true or false, not an integer",)),
        (net(internal=True, masquerade=True), ("networks.front.masquerade true contradicts internal",)),
        (net(state="gone"), ("networks.front.state gone must be one of present, absent",)),
        (net(bridge_name="br-this-is-too-long"), ("networks.front.bridge_name br-this-is-too-long is 19 char",)),
        (net(bridge_name="br front"), ('networks.front.bridge_name "br front" is not a valid interface name',)),
        (net(bridge_name="ve-mine"), ("networks.front.bridge_name ve-mine starts with 've-'",)),
        (net(vni=42), ("networks.front.vni applies to driver overlay only, not bridge",)),
        (net(driver="overlay", vni=0), ("networks.front.vni 0 is out of range",)),
        (net(driver="overlay", vni=2**24), ("networks.front.vni 16777216 is out of range",)),
        (net(parent="eth1"), ("networks.front.parent applies to drivers macvlan and ipvlan only",)),
        (net(mode="bridge"), ("networks.front.mode applies to drivers macvlan and ipvlan only",)),
        (net(driver="macvlan"), ("networks.front.parent is required for driver macvlan",)),
        (net(driver="macvlan", parent="eth1", mode="l2"), ("networks.front.mode l2 must be one of bridge,",)),
        (net(driver="ipvlan", parent="eth1", mode="bridge"), ("networks.front.mode bridge must be one of l2, l3",)),
        (net(driver="ipvlan", parent="e" * 16), ("networks.front.parent", "is 16 characters")),
        (net(driver="macvlan", parent="eth1", bridge_name="br-x"), ("bridge_name applies to drivers bridge and",)),
        (net(subent="10.0.0.0/24"), ("networks.front.subent is not a known key (did you mean subnet?)",)),
        (net(colour="blue"), ("networks.front.colour is not a known key (known keys: driver, subnet",)),
        (["10.0.0.0/24"], ("networks.front", "must be a mapping, not a list")),
    ],
)
def test_network_errors(network, fragments):
    assert_one_error({"networks": {"front": network}}, *fragments)


@pytest.mark.parametrize("name", ["Front", "-front", "_x", "front end", "front/end", "é", ""])
def test_invalid_network_names(name):
    assert_one_error({"networks": {name: net()}}, "is not a valid network name")


def test_non_string_network_name():
    assert_one_error({"networks": {7: net()}}, "networks.7 is not a valid network name")


def test_unknown_top_level_key_and_bad_top_level_values():
    assert_one_error({"network": {}}, "wharf_topology.network is not a known key (did you mean networks?)")
    assert_one_error({"state": "down"}, "state down must be one of present, absent")
    assert_one_error({"prune": "yes"}, 'prune "yes" must be true or false')
    assert_one_error({"networks": ["a"]}, "networks", "must be a mapping, not a list")
    assert_one_error({"containers": "web"}, 'containers "web" must be a mapping, not a string')
    assert_one_error(None, "wharf_topology null must be a mapping")
    assert_one_error([], "wharf_topology [] must be a mapping")


def test_bridge_name_collisions():
    doc = {"networks": {"a": net("10.0.0.0/24", bridge_name="br-x"), "b": net("10.0.1.0/24", bridge_name="br-x")}}
    assert_one_error(doc, "networks.b.bridge_name br-x is also the interface name of networks.a (bridge)")
    doc = {"networks": {"front": net("10.0.0.0/24"), "other": net("10.0.1.0/24", bridge_name="br-front")}}
    assert_one_error(doc, "br-front is also the interface name of networks.front")
    doc = {"networks": {"x": net("10.0.0.0/24", bridge_name="wharf0")}, "containers": {"c": {}}}
    assert_one_error(doc, "wharf0 is also the interface name of networks.x")


def test_every_error_is_reported_at_once():
    doc = {
        "networks": {
            "shop": net("10.91.0.0/24"),
            "ledger": net("10.91.0.128/25", mtu="big"),
            "Bad": net(),
            "nosub": {},
        },
        "containers": {
            "web": {"networks": {"shop": {"ipv4_address": "10.91.0.1"}, "missing": {}}, "colour": "red"},
            "side": {"network_mode": "container:nobody"},
            "api": {"ports": ["80:80/icmp"]},
        },
    }
    errors = errors_of(doc)
    expected = [
        'networks.ledger.mtu "big" must be an integer',
        "networks.Bad is not a valid network name",
        "networks.nosub.subnet is required",
        "containers.web.colour is not a known key",
        "containers.api.ports[0] 80:80/icmp: protocol icmp must be one of tcp, udp, sctp",
        "containers.side.network_mode container:nobody: no container nobody",
        "containers.web.networks.missing: no network missing",
        "containers.web.networks.shop.ipv4_address 10.91.0.1 is the gateway of network shop",
    ]
    for fragment in expected:
        assert any(fragment in e for e in errors), (fragment, errors)
    assert len(errors) == len(expected), errors


def test_error_message_is_the_exception_text():
    with pytest.raises(TopologyError) as caught:
        parse_topology({"networks": {"a": {}}, "containers": {"B": {}}})
    assert str(caught.value).startswith("invalid topology:\n- ")
    assert len(caught.value.errors) == 2


# --- validation: containers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("container", "fragments"),
    [
        ({"networks": {"front": {"ipv4_address": "10.10.1.5"}}}, ("ipv4_address 10.10.1.5 is outside subnet",)),
        ({"networks": {"front": {"ipv4_address": "10.10.0.1"}}}, ("ipv4_address 10.10.0.1 is the gateway",)),
        ({"networks": {"front": {"ipv4_address": "10.10.0.0"}}}, ("10.10.0.0 is the network or broadcast",)),
        ({"networks": {"front": {"ipv4_address": "10.10.0.255"}}}, ("10.10.0.255 is the network or broadcast",)),
        ({"networks": {"front": {"ipv4_address": "10.10.0.300"}}}, ("10.10.0.300 is not an IPv4 address",)),
        ({"networks": {"front": {"ipv4_address": 167772165}}}, ("must be an IPv4 address string",)),
        ({"networks": {"front": {"ipv4": "10.10.0.5"}}}, ("networks.front.ipv4 is not a known key (did you mean",)),
        ({"networks": {"front": {"aliases": "web"}}}, ('networks.front.aliases "web" must be a list',)),
        ({"networks": {"front": {"aliases": ["web site"]}}}, ('aliases[0] "web site" is not a valid DNS name',)),
        ({"networks": {"front": {"aliases": [5]}}}, ("aliases[0] 5 must be a non-empty string",)),
        ({"networks": {"front": {"mac_address": "02:42:ac"}}}, ("mac_address 02:42:ac is not of the form",)),
        ({"networks": {"front": {"mac_address": "01:00:5e:00:00:01"}}}, ("is a multicast address",)),
        ({"networks": {"front": {"interface_name": "e" * 16}}}, ("interface_name", "is 16 characters")),
        ({"networks": {"front": []}}, ("containers.web.networks.front [] must be a mapping, not a list",)),
        ({"networks": "front"}, ('containers.web.networks "front" must be a mapping, not a string',)),
        ({"networks": ["front", "front"]}, ("containers.web.networks[1] network front is listed twice",)),
        ({"networks": ["fronte"]}, ("containers.web.networks.fronte: no network fronte (did you mean front?)",)),
        ({"networks": ["front", 3]}, ("containers.web.networks[1] 3 must be a non-empty string",)),
        ({"network_mode": "bridged"}, ("network_mode bridged must be one of bridge, none, host, container:NAME",)),
        ({"network_mode": "container:web"}, ("network_mode container:web names the container itself",)),
        ({"network_mode": "container:Bad!"}, ("does not name a container",)),
        ({"network_mode": "none", "networks": ["front"]}, ("networks is not allowed with network_mode none",)),
        ({"network_mode": "host", "networks": ["front"]}, ("networks is not allowed with network_mode host",)),
        ({"network_mode": "host", "ports": ["80"]}, ("ports is not allowed with network_mode host",)),
        ({"network_mode": "none", "ports": ["80"]}, ("ports is not allowed with network_mode none",)),
        ({"network_mode": "host", "hostname": "x"}, ("hostname is not allowed with network_mode host",)),
        ({"network_mode": "host", "dns": ["1.1.1.1"]}, ("dns is not allowed with network_mode host",)),
        ({"network_mode": "host", "extra_hosts": ["a:1.2.3.4"]}, ("extra_hosts is not allowed with network_mode",)),
        ({"hostname": "bad host"}, ('hostname "bad host" is not a valid hostname',)),
        ({"hostname": "h" * 65}, ("is not a valid hostname (at most 64)",)),
        ({"hostname": ""}, ("containers.web.hostname must not be empty",)),
        ({"host": ["node1"]}, ('containers.web.host ["node1"] must be a non-empty string, not a list',)),
        ({"state": "stopped"}, ("containers.web.state stopped must be one of present, absent",)),
        ({"dns": ["8.8.8"]}, ("containers.web.dns[0] 8.8.8 is not an IP address",)),
        ({"dns": "8.8.8.8"}, ('containers.web.dns "8.8.8.8" must be a list',)),
        ({"dns_search": ["bad domain"]}, ('dns_search[0] "bad domain" is not a valid search domain',)),
        ({"dns_options": ["ndots 1"]}, ('dns_options[0] "ndots 1" is not a resolver option',)),
        ({"extra_hosts": ["myapp.local"]}, ("extra_hosts[0] myapp.local must be NAME:ADDRESS",)),
        ({"extra_hosts": ["myapp:999.1.1.1"]}, ("extra_hosts[0] 999.1.1.1 is not an IP address",)),
        ({"extra_hosts": ["my app:1.1.1.1"]}, ('extra_hosts[0] "my app" is not a valid host name',)),
        ({"extra_hosts": {"db": "nope"}}, ("extra_hosts.db nope is not an IP address",)),
        ({"extra_hosts": "db:1.1.1.1"}, ('extra_hosts "db:1.1.1.1" must be a list of NAME:ADDRESS or a mapping',)),
        ({"extra_host": []}, ("containers.web.extra_host is not a known key (did you mean extra_hosts?)",)),
        ("web", ('containers.web "web" must be a mapping, not a string',)),
    ],
)
def test_container_errors(container, fragments):
    assert_one_error(one_network({"web": container}), *fragments)


@pytest.mark.parametrize("name", ["Web", "-web", "web@1", "web:1", "a" * 64])
def test_invalid_container_names(name):
    assert_one_error(one_network({name: {"networks": ["front"]}}), f"containers.{name}", "container name")


def test_container_name_of_63_characters_is_valid_and_its_names_fit():
    name = "a" * 63
    topology = parse_topology(one_network({name: {"networks": ["front"]}}))
    endpoint = topology.containers[name].endpoints[0]
    assert len(endpoint.host_interface) == 15
    assert topology.containers[name].hostname == name


def test_duplicate_fixed_addresses():
    doc = one_network(
        {
            "a": {"networks": {"front": {"ipv4_address": "10.10.0.5"}}},
            "b": {"networks": {"front": {"ipv4_address": "10.10.0.5"}}},
        }
    )
    assert_one_error(
        doc, "containers.b.networks.front.ipv4_address 10.10.0.5 is also the address of containers.a.networks.front"
    )


def test_same_address_on_two_networks_is_fine_when_subnets_differ():
    doc = {
        "networks": {"a": net("10.0.0.0/24"), "b": net("10.0.1.0/24")},
        "containers": {
            "x": {"networks": {"a": {"ipv4_address": "10.0.0.5"}}},
            "y": {"networks": {"b": {"ipv4_address": "10.0.1.5"}}},
        },
    }
    parse_topology(doc)


def test_container_references():
    assert_one_error(
        one_network({"web": {"network_mode": "container:wbe"}, "wbe2": {"networks": ["front"]}}),
        "containers.web.network_mode container:wbe: no container wbe (did you mean container:wbe2?)",
    )


def test_container_cycle_of_two_is_reported_once():
    doc = {"containers": {"a": {"network_mode": "container:b"}, "b": {"network_mode": "container:a"}}}
    assert assert_one_error(doc) == "containers.a.network_mode container:b forms a cycle: a -> b -> a"


def test_container_cycle_of_three_with_a_tail():
    doc = {
        "containers": {
            "tail": {"network_mode": "container:x"},
            "x": {"network_mode": "container:y"},
            "y": {"network_mode": "container:z"},
            "z": {"network_mode": "container:x"},
        }
    }
    assert assert_one_error(doc) == "containers.x.network_mode container:y forms a cycle: x -> y -> z -> x"


def test_container_mode_across_hosts_and_states():
    assert_one_error(
        {"containers": {"a": {"host": "n1"}, "b": {"host": "n2", "network_mode": "container:a"}}},
        "containers.b.network_mode container:a: b lives on n2 but a on n1",
    )
    assert_one_error(
        {"containers": {"a": {"host": "n1"}, "b": {"network_mode": "container:a"}}},
        "b lives on every host but a on n1",
    )
    assert_one_error(
        {"containers": {"a": {"state": "absent"}, "b": {"network_mode": "container:a"}}},
        "containers.b.network_mode container:a: a is absent",
    )
    parse_topology({"containers": {"a": {"state": "absent"}, "b": {"network_mode": "container:a", "state": "absent"}}})


def test_container_on_absent_network():
    doc = {"networks": {"old": net(state="absent")}, "containers": {"web": {"networks": ["old"]}}}
    assert_one_error(doc, "containers.web.networks.old: network old is absent but web is present")
    doc["containers"]["web"]["state"] = "absent"
    parse_topology(doc)


def test_duplicate_mac_addresses_on_a_network():
    # b's fixed MAC equals the MAC a derives from its fixed address
    doc = one_network(
        {
            "a": {"networks": {"front": {"ipv4_address": "10.10.0.5"}}},
            "b": {"networks": {"front": {"mac_address": "02:42:0A:0A:00:05"}}},
        }
    )
    assert_one_error(doc, "containers.b.networks.front.mac_address 02:42:0a:0a:00:05 is also the MAC of containers.a")


def test_interface_name_pinned_twice():
    doc = {
        "networks": {"a": net("10.0.0.0/24"), "b": net("10.0.1.0/24")},
        "containers": {"x": {"networks": {"a": {"interface_name": "lan"}, "b": {"interface_name": "lan"}}}},
    }
    assert_one_error(doc, "containers.x.networks.b.interface_name lan is also the interface of containers.x.networks.a")


def test_pool_exhausted():
    # /29: 8 addresses minus network, broadcast, gateway = 5
    containers = {f"c{i}": {"networks": ["front"]} for i in range(5)}
    parse_topology(one_network(containers, subnet="10.10.0.0/29"))
    containers["c5"] = {"networks": ["front"]}
    assert_one_error(
        one_network(containers, subnet="10.10.0.0/29"),
        "networks.front.ip_range 10.10.0.0/29 is too small: 6 addresses are needed but only 5 are free",
    )


def test_fixed_addresses_count_against_the_pool():
    containers = {f"c{i}": {"networks": ["front"]} for i in range(4)}
    containers["pinned"] = {"networks": {"front": {"ipv4_address": "10.10.0.3"}}}
    parse_topology(one_network(containers, subnet="10.10.0.0/29"))
    containers["pinned2"] = {"networks": {"front": {"ipv4_address": "10.10.0.4"}}}
    assert_one_error(one_network(containers, subnet="10.10.0.0/29"), "4 addresses are needed but only 3 are free")


def test_bridge_holds_at_most_1023_endpoints():
    containers = {f"c{i:04d}": {"networks": ["front"]} for i in range(1023)}
    parse_topology(one_network(containers, subnet="10.10.0.0/20"))
    containers["c1023"] = {"networks": ["front"]}
    assert_one_error(
        one_network(containers, subnet="10.10.0.0/20"),
        "networks.front has 1024 endpoints on every host, more than a bridge holds (1023)",
    )


def test_bridge_endpoints_are_counted_per_host():
    containers = {f"a{i:04d}": {"networks": ["front"], "host": "n1"} for i in range(700)}
    containers.update({f"b{i:04d}": {"networks": ["front"], "host": "n2"} for i in range(700)})
    parse_topology(one_network(containers, subnet="10.10.0.0/20"))
    containers.update({f"e{i:04d}": {"networks": ["front"]} for i in range(324)})
    errors = errors_of(one_network(containers, subnet="10.10.0.0/20"))
    assert errors == [
        "networks.front has 1024 endpoints on host n1, more than a bridge holds (1023)",
        "networks.front has 1024 endpoints on host n2, more than a bridge holds (1023)",
    ]


def test_absent_containers_do_not_count_against_the_bridge():
    containers = {f"c{i:04d}": {"networks": ["front"]} for i in range(1023)}
    containers["gone"] = {"networks": ["front"], "state": "absent"}
    parse_topology(one_network(containers, subnet="10.10.0.0/20"))


def test_host_veth_collision_is_an_error():
    # find two long, similar names whose derived veth names clash (a 1-in-16.7M chance per pair)
    seen: dict[str, str] = {}
    for index in range(200000):
        name = f"collide-{index}"
        veth = host_veth_name(name, "front")
        if veth in seen:
            first, second = seen[veth], name
            break
        seen[veth] = name
    else:
        pytest.fail("no clash found")
    doc = one_network({first: {"networks": ["front"]}, second: {"networks": ["front"]}}, subnet="10.10.0.0/24")
    assert_one_error(
        doc,
        f"containers.{second}.networks.front host veth {veth} is also the interface name of "
        f"containers.{first}.networks.front (host veth); rename one of them",
    )


# --- validation: ports -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("80", (None, None, (80, 80), "tcp")),
        (80, (None, None, (80, 80), "tcp")),
        ("8080:80", (None, (8080, 8080), (80, 80), "tcp")),
        ("127.0.0.1:5432:5432/tcp", ("127.0.0.1", (5432, 5432), (5432, 5432), "tcp")),
        ("127.0.0.1::80", ("127.0.0.1", None, (80, 80), "tcp")),
        ("9000-9002:9000-9002/udp", (None, (9000, 9002), (9000, 9002), "udp")),
        ("53:53/UDP", (None, (53, 53), (53, 53), "udp")),
        ("3868:3868/sctp", (None, (3868, 3868), (3868, 3868), "sctp")),
        ("[::1]:8080:80", ("::1", (8080, 8080), (80, 80), "tcp")),
        (
            {"host_ip": "0.0.0.0", "published": 8443, "target": 443, "protocol": "tcp"},
            ("0.0.0.0", (8443,) * 2, (443,) * 2, "tcp"),
        ),
        ({"target": 80}, (None, None, (80, 80), "tcp")),
        ({"published": "8000-8001", "target": "80-81", "protocol": "udp"}, (None, (8000, 8001), (80, 81), "udp")),
    ],
)
def test_valid_port_specs(spec, expected):
    topology = parse_topology(one_network({"web": {"networks": ["front"], "ports": [spec]}}))
    mapping = topology.containers["web"].ports[0]
    host_ip = str(mapping.host_ip) if mapping.host_ip is not None else None
    assert (host_ip, mapping.published, mapping.target, mapping.protocol) == expected


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("80:80/tcpx", "protocol tcpx must be one of tcp, udp, sctp"),
        ("0:80", "host port 0 is out of range (1-65535)"),
        ("65536:80", "host port 65536 is out of range"),
        ("80:0", "container port 0 is out of range"),
        ("a:80", "host port a is not a port or a range"),
        ("127.0.0.1:80", "host port 127.0.0.1 is not a port"),  # Docker reads IP:PORT as HOST_PORT:PORT
        ("8000-8010:80", "host ports and container ports must be ranges of the same length"),
        ("80:9000-9001", "host ports and container ports must be ranges of the same length"),
        ("9001-9000:80-81", "host port 9001-9000 is a range that ends before it starts"),
        ("1:2:3:4", "is not a port spec [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]"),
        (":80", "has an empty host port"),
        ("[::1:80:80", "is not a port spec"),
        ("[::1]:80", "is not a port spec"),
        ("300.1.1.1:80:80", "host address 300.1.1.1 is not an IP address"),
        ("", "container port"),
        (True, "must be a port spec string or a mapping, not a boolean"),
        ({"published": 80}, "containers.web.ports[0].target is required"),
        ({"target": 80, "mode": "host"}, "containers.web.ports[0].mode is not a known key"),
        ({"target": True}, "containers.web.ports[0].target true must be a port or a range, not a boolean"),
        ({"target": 80, "published": 70000}, "host port 70000 is out of range"),
        ({"target": 80, "host_ip": 1}, "containers.web.ports[0].host_ip 1 must be an IP address string"),
        ({"target": 80, "protocol": "icmp"}, "protocol icmp must be one of"),
    ],
)
def test_bad_port_specs(spec, fragment):
    error = assert_one_error(one_network({"web": {"networks": ["front"], "ports": [spec]}}), fragment)
    assert error.startswith("containers.web.ports[0]")


def test_ports_must_be_a_list():
    assert_one_error(one_network({"web": {"ports": "80:80"}}), 'containers.web.ports "80:80" must be a list')


def ports_doc(a: dict, b: dict) -> dict:
    return one_network({"a": {"networks": ["front"], **a}, "b": {"networks": ["front"], **b}})


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"ports": ["8080:80"]}, {"ports": ["8080:8080"]}),
        ({"ports": ["0.0.0.0:8080:80"]}, {"ports": ["127.0.0.1:8080:80"]}),
        ({"ports": ["127.0.0.1:8080:80"]}, {"ports": ["8080:80"]}),
        ({"ports": ["9000-9010:9000-9010"]}, {"ports": ["9010:80"]}),
        ({"ports": ["53:53/udp"]}, {"ports": [{"published": 53, "target": 5353, "protocol": "udp"}]}),
        ({"ports": ["8080:80"], "host": "n1"}, {"ports": ["8080:80"]}),  # b lives on every host, n1 too
    ],
)
def test_duplicate_published_ports(a, b):
    assert_one_error(ports_doc(a, b), "containers.b.ports[0]", "already published by containers.a")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"ports": ["8080:80"]}, {"ports": ["8080:80/udp"]}),
        ({"ports": ["127.0.0.1:8080:80"]}, {"ports": ["127.0.0.2:8080:80"]}),
        ({"ports": ["9000-9010:9000-9010"]}, {"ports": ["9011:80"]}),
        ({"ports": ["8080:80"], "host": "n1"}, {"ports": ["8080:80"], "host": "n2"}),
        ({"ports": ["8080:80"]}, {"ports": ["8080:80"], "state": "absent"}),
        ({"ports": ["80"]}, {"ports": ["80"]}),  # ephemeral host ports never clash here
    ],
)
def test_publishes_that_do_not_clash(a, b):
    parse_topology(ports_doc(a, b))


def test_same_container_publishing_twice():
    doc = one_network({"a": {"networks": ["front"], "ports": ["8080:80", "8080:81"]}})
    assert_one_error(doc, "containers.a.ports[1] 8080:81 publishes 0.0.0.0:8080/tcp, already published by containers.a")


# --- defaults --------------------------------------------------------------------------------------------


def test_network_defaults():
    topology = parse_topology(
        {
            "networks": {
                "front": net("172.28.0.0/24"),
                "over": net("10.1.0.0/16", driver="overlay"),
                "mac": net("192.168.5.0/24", driver="macvlan", parent="eth1"),
                "ipv": net("192.168.6.0/24", driver="ipvlan", parent="eth1.10"),
                "closed": net("10.2.0.0/24", internal=True),
            }
        }
    )
    front = topology.networks["front"]
    assert (front.driver, str(front.gateway), str(front.ip_range)) == ("bridge", "172.28.0.1", "172.28.0.0/24")
    assert (front.internal, front.icc, front.masquerade, front.mtu) == (False, True, True, 1500)
    assert (front.bridge_name, front.vni, front.parent, front.mode, front.state) == (
        "br-front",
        None,
        None,
        None,
        "present",
    )
    assert front.gateway_interface == "172.28.0.1/24"
    over = topology.networks["over"]
    assert over.mtu == 1450 and over.bridge_name == "br-over" and over.bridged
    assert over.vni == topo.default_vni("over") == 5305463
    assert topology.networks["mac"].mode == "bridge" and topology.networks["mac"].bridge_name is None
    assert not topology.networks["mac"].bridged
    assert topology.networks["ipv"].mode == "l2" and topology.networks["ipv"].parent == "eth1.10"
    assert topology.networks["closed"].masquerade is False
    assert "bridge" not in topology.networks  # the default network exists only when used
    assert list(topology.networks) == sorted(topology.networks)


def test_explicit_network_values_win():
    topology = parse_topology(
        {
            "networks": {
                "front": net("172.28.0.0/24", gateway="172.28.0.254", ip_range="172.28.0.128/25", mtu=9000),
                "over": net("10.1.0.0/16", driver="overlay", vni=4242, mtu=1400, bridge_name="ovl0"),
                "open": net("10.3.0.0/24", icc=False, masquerade=False),
            }
        }
    )
    front, over, open_ = (topology.networks[n] for n in ("front", "over", "open"))
    assert (str(front.gateway), str(front.ip_range), front.mtu) == ("172.28.0.254", "172.28.0.128/25", 9000)
    assert (over.vni, over.mtu, over.bridge_name) == (4242, 1400, "ovl0")
    assert (open_.icc, open_.masquerade) == (False, False)


def test_null_bodies_take_every_default():
    topology = parse_topology({"networks": {"bridge": None}, "containers": {"web": None}})
    assert str(topology.networks["bridge"].subnet) == "172.31.0.0/16"
    assert topology.networks["bridge"].declared is True
    assert topology.containers["web"].endpoints[0].network == "bridge"


def test_container_without_networks_joins_the_default_network():
    topology = parse_topology({"containers": {"solo": {}, "explicit": {"network_mode": "bridge", "networks": {}}}})
    default = topology.networks["bridge"]
    assert (default.bridge_name, str(default.subnet), str(default.gateway)) == ("wharf0", "172.31.0.0/16", "172.31.0.1")
    assert default.declared is False
    for name in ("solo", "explicit"):
        (endpoint,) = topology.containers[name].endpoints
        assert (endpoint.network, endpoint.interface, endpoint.default_route) == ("bridge", "eth0", True)
        assert ipaddress.IPv4Address(endpoint.address) in default.subnet


def test_declared_default_network_overrides_the_default_subnet():
    topology = parse_topology({"networks": {"bridge": net("10.200.0.0/24", mtu=1400)}, "containers": {"solo": {}}})
    default = topology.networks["bridge"]
    assert (str(default.subnet), default.bridge_name, default.mtu, default.declared) == (
        "10.200.0.0/24",
        "wharf0",
        1400,
        True,
    )
    assert str(topology.containers["solo"].endpoints[0].address).startswith("10.200.0.")


def test_naming_the_default_network_explicitly():
    topology = parse_topology({"networks": {"front": net()}, "containers": {"c": {"networks": ["front", "bridge"]}}})
    assert [e.network for e in topology.containers["c"].endpoints] == ["front", "bridge"]
    assert topology.networks["bridge"].bridge_name == "wharf0"


def test_container_defaults_and_modes():
    topology = parse_topology(
        {
            "containers": {
                "web": {},
                "named": {"hostname": "www.example.test"},
                "loner": {"network_mode": "none"},
                "hosted": {"network_mode": "host"},
                "side": {"network_mode": "container:web"},
                "side2": {"network_mode": "container:side"},
                "onhost": {"network_mode": "container:hosted"},
            }
        }
    )
    c = topology.containers
    assert (c["web"].hostname, c["web"].namespace, c["web"].own_namespace, c["web"].host) == ("web", "web", True, None)
    assert c["named"].hostname == "www.example.test"
    assert (c["loner"].namespace, c["loner"].hostname, c["loner"].endpoints) == ("loner", "loner", ())
    assert (c["hosted"].namespace, c["hosted"].hostname, c["hosted"].own_namespace) == (None, None, False)
    assert (c["side"].namespace, c["side"].hostname, c["side"].shares_with) == ("web", "web", "web")
    assert (c["side2"].namespace, c["side2"].network_mode, c["side2"].endpoints) == ("web", "container:side", ())
    assert (c["onhost"].namespace, c["onhost"].hostname) == (None, None)
    assert list(c) == sorted(c)


def test_interfaces_follow_the_order_of_networks_and_pins_are_skipped():
    doc = {
        "networks": {"a": net("10.0.0.0/24"), "b": net("10.0.1.0/24"), "c": net("10.0.2.0/24")},
        "containers": {
            "listed": {"networks": ["c", "a", "b"]},
            "mapped": {"networks": {"b": {}, "c": {}, "a": {}}},
            "pinned": {"networks": {"a": {}, "b": {"interface_name": "eth0"}, "c": {}}},
        },
    }
    c = parse_topology(doc).containers
    assert [(e.network, e.interface) for e in c["listed"].endpoints] == [("c", "eth0"), ("a", "eth1"), ("b", "eth2")]
    assert [(e.network, e.interface) for e in c["mapped"].endpoints] == [("b", "eth0"), ("c", "eth1"), ("a", "eth2")]
    assert [(e.network, e.interface) for e in c["pinned"].endpoints] == [("a", "eth1"), ("b", "eth0"), ("c", "eth2")]


def test_default_route_is_the_first_non_internal_network():
    doc = {
        "networks": {"a": net("10.0.0.0/24"), "b": net("10.0.1.0/24"), "i": net("10.0.2.0/24", internal=True)},
        "containers": {
            "first": {"networks": ["b", "a"]},
            "internal_first": {"networks": ["i", "a", "b"]},
            "only_internal": {"networks": ["i"]},
        },
    }
    c = parse_topology(doc).containers
    assert [(e.network, e.default_route, str(e.gateway)) for e in c["first"].endpoints] == [
        ("b", True, "10.0.1.1"),
        ("a", False, "10.0.0.1"),
    ]
    assert [e.default_route for e in c["internal_first"].endpoints] == [False, True, False]
    assert [e.default_route for e in c["only_internal"].endpoints] == [False]


def test_macs_derive_from_addresses_unless_fixed():
    doc = one_network(
        {
            "a": {"networks": {"front": {"ipv4_address": "10.10.0.10"}}},
            "b": {"networks": {"front": {"ipv4_address": "10.10.0.11", "mac_address": "02:AA:bb:cc:dd:ee"}}},
        }
    )
    c = parse_topology(doc).containers
    assert c["a"].endpoints[0].mac_address == "02:42:0a:0a:00:0a"
    assert c["b"].endpoints[0].mac_address == "02:aa:bb:cc:dd:ee"
    assert topo.mac_for(ipaddress.IPv4Address("172.17.0.2")) == "02:42:ac:11:00:02"  # Docker's first container


def test_endpoint_details():
    doc = one_network({"web": {"networks": {"front": {"ipv4_address": "10.10.0.10", "aliases": ["www", "web.local"]}}}})
    (endpoint,) = parse_topology(doc).containers["web"].endpoints
    assert endpoint.address_interface == "10.10.0.10/24"
    assert (endpoint.aliases, endpoint.address_fixed, endpoint.container) == (("www", "web.local"), True, "web")


def test_extra_hosts_and_dns_are_kept():
    doc = one_network(
        {
            "a": {
                "extra_hosts": ["myapp.local:192.0.2.100", "v6:::1", "gw:host-gateway", "eq=192.0.2.7"],
                "dns": ["1.1.1.1", "2606:4700::1111"],
                "dns_search": ["example.test"],
                "dns_options": ["ndots:1", "rotate"],
            },
            "b": {"extra_hosts": {"db": "192.0.2.5", "v6": "[2001:db8::1]"}},
        }
    )
    c = parse_topology(doc).containers
    assert c["a"].extra_hosts == (
        ("myapp.local", "192.0.2.100"),
        ("v6", "::1"),
        ("gw", "host-gateway"),
        ("eq", "192.0.2.7"),
    )
    assert (c["a"].dns, c["a"].dns_search, c["a"].dns_options) == (
        ("1.1.1.1", "2606:4700::1111"),
        ("example.test",),
        ("ndots:1", "rotate"),
    )
    assert c["b"].extra_hosts == (("db", "192.0.2.5"), ("v6", "2001:db8::1"))


def test_state_and_prune():
    doc = {"networks": {"front": net()}, "containers": {"a": {"networks": ["front"]}, "b": {"state": "absent"}}}
    topology = parse_topology(doc)
    assert (topology.state, topology.prune) == ("present", False)
    assert (topology.containers["a"].state, topology.containers["b"].state) == ("present", "absent")
    gone = parse_topology({**doc, "state": "absent", "prune": True})
    assert (gone.state, gone.prune) == ("absent", True)
    assert {c.state for c in gone.containers.values()} == {"absent"}
    assert {n.state for n in gone.networks.values()} == {"absent"}
    assert addresses(gone) == addresses(topology)  # teardown computes the same names and addresses


def test_containers_on_a_host():
    topology = parse_topology({"containers": {"a": {"host": "n1"}, "b": {"host": "n2"}, "c": {}}})
    assert [c.name for c in topology.containers_on("n1")] == ["a", "c"]
    assert [c.name for c in topology.containers_on("n3")] == ["c"]


def test_input_is_not_modified():
    doc = {"networks": {"front": net()}, "containers": {"a": {"networks": ["front"], "ports": [{"target": 80}]}}}
    before = copy.deepcopy(doc)
    parse_topology(doc)
    assert doc == before


# --- address allocation ----------------------------------------------------------------------------------

GOLDEN = {
    "networks": {"front": net("172.28.0.0/24"), "back": net("10.20.0.0/16", ip_range="10.20.5.0/24")},
    "containers": {
        "web1": {"networks": ["front", "back"]},
        "web2": {"networks": ["front"]},
        "db": {"networks": {"back": {"ipv4_address": "10.20.5.5"}}},
        "solo": {},
    },
}


def test_golden_addresses_and_names():
    """Pinned values: a change here renumbers every deployed topology, so it must be deliberate."""
    topology = parse_topology(GOLDEN)
    got = {
        (c.name, e.network): (str(e.address), e.host_interface, e.mac_address)
        for c in topology.containers.values()
        for e in c.endpoints
    }
    assert got == {
        ("db", "back"): ("10.20.5.5", "ve-db-5e205c459", "02:42:0a:14:05:05"),
        ("solo", "bridge"): ("172.31.232.195", "ve-solo-87bb73c", "02:42:ac:1f:e8:c3"),
        ("web1", "front"): ("172.28.0.11", "ve-web1-ca9b62c", "02:42:ac:1c:00:0b"),
        ("web1", "back"): ("10.20.5.97", "ve-web1-b7c61ee", "02:42:0a:14:05:61"),
        ("web2", "front"): ("172.28.0.37", "ve-web2-372e073", "02:42:ac:1c:00:25"),
    }


def shuffled(doc: dict, rng: random.Random) -> dict:
    """The same topology with every mapping in another order (except endpoint order, which is meaningful)."""
    networks = list(doc["networks"].items())
    containers = list(doc["containers"].items())
    rng.shuffle(networks)
    rng.shuffle(containers)
    return {"containers": dict(containers), "networks": dict(networks)}


def test_allocation_ignores_mapping_order():
    rng = random.Random(7)
    reference = parse_topology(GOLDEN)
    for _attempt in range(10):
        assert parse_topology(shuffled(GOLDEN, rng)) == reference


def test_fixed_address_always_wins():
    reference = parse_topology(one_network({"x": {"networks": ["front"]}}))
    taken = str(reference.containers["x"].endpoints[0].address)
    doc = one_network({"x": {"networks": ["front"]}, "a": {"networks": {"front": {"ipv4_address": taken}}}})
    result = addresses(parse_topology(doc))
    assert result[("a", "front")] == taken
    assert result[("x", "front")] != taken


def test_allocated_addresses_avoid_gateway_network_broadcast_and_fixed():
    # a /29 whose 5 free addresses are all used: every reserved one must be avoided
    containers = {f"c{i}": {"networks": ["front"]} for i in range(4)}
    containers["pinned"] = {"networks": {"front": {"ipv4_address": "10.10.0.6"}}}
    result = addresses(parse_topology(one_network(containers, subnet="10.10.0.0/29", gateway="10.10.0.3")))
    assert sorted(result.values()) == ["10.10.0.1", "10.10.0.2", "10.10.0.4", "10.10.0.5", "10.10.0.6"]


def test_allocation_stays_in_ip_range():
    containers = {f"c{i}": {"networks": ["front"]} for i in range(40)}
    result = addresses(parse_topology(one_network(containers, subnet="10.10.0.0/16", ip_range="10.10.7.64/26")))
    pool = ipaddress.IPv4Network("10.10.7.64/26")
    assert all(ipaddress.IPv4Address(a) in pool for a in result.values())
    assert len(set(result.values())) == 40


def test_allocate_addresses_directly():
    pool = ipaddress.IPv4Network("10.0.0.0/30")
    reserved = [ipaddress.IPv4Address("10.0.0.0"), ipaddress.IPv4Address("10.0.0.3"), ipaddress.IPv4Address("9.9.9.9")]
    assert allocate_addresses("n", pool, reserved, ["b", "a"]) == {
        "a": ipaddress.IPv4Address("10.0.0.1"),
        "b": ipaddress.IPv4Address("10.0.0.2"),
    }
    with pytest.raises(ValueError, match="3 addresses are needed but only 2 are free"):
        allocate_addresses("n", pool, reserved, ["a", "b", "c"])
    assert allocate_addresses("n", pool, reserved, []) == {}


def random_names(rng: random.Random, count: int) -> list[str]:
    names: set[str] = set()
    while len(names) < count:
        stem = rng.choice(["web", "api", "db", "cache", "worker", "service-backend", "x"])
        names.add(f"{stem}{rng.randrange(10000)}")
    return sorted(names)


@pytest.mark.parametrize("seed", range(40))
def test_adding_a_container_never_moves_one_that_sorts_before_it(seed):
    rng = random.Random(seed)
    prefix = rng.choice([24, 26, 27, 28])  # small pools force collisions and the linear fallback
    pool = ipaddress.IPv4Network(f"10.{seed}.0.0/{prefix}")
    reserved = {pool.network_address, pool.broadcast_address, pool.network_address + 1}
    capacity = pool.num_addresses - len(reserved)
    names = random_names(rng, rng.randrange(1, capacity))
    before = allocate_addresses("net", pool, reserved, names)
    newcomer = random_names(rng, 1)[0]
    while newcomer in before:
        newcomer = random_names(rng, 1)[0]
    after = allocate_addresses("net", pool, reserved, [*names, newcomer])

    assert len(set(after.values())) == len(after) == len(names) + 1
    assert not set(after.values()) & reserved
    assert all(address in pool for address in after.values())
    assert all(after[name] == before[name] for name in names if name < newcomer)
    moved = [name for name in names if after[name] != before[name]]
    if moved:  # only by taking exactly a later container's address, which then moves along
        assert after[newcomer] in before.values()
    assert allocate_addresses("net", pool, reserved, list(reversed([*names, newcomer]))) == after


@pytest.mark.parametrize("seed", range(40))
def test_removing_a_container_never_moves_one_that_sorts_before_it(seed):
    rng = random.Random(1000 + seed)
    pool = ipaddress.IPv4Network(f"10.{seed}.0.0/{rng.choice([24, 27])}")
    reserved = {pool.network_address, pool.broadcast_address, pool.network_address + 1}
    names = random_names(rng, rng.randrange(2, pool.num_addresses - 3))
    before = allocate_addresses("net", pool, reserved, names)
    gone = rng.choice(names)
    after = allocate_addresses("net", pool, reserved, [n for n in names if n != gone])
    assert all(after[name] == before[name] for name in names if name < gone)


def test_additions_rarely_move_anything_in_a_roomy_pool():
    """The limit of a stateless allocator, measured: in a /16 with 100 containers, adding one moves nobody in
    nearly every case (expected about 1 in 1300)."""
    rng = random.Random(42)
    pool = ipaddress.IPv4Network("172.31.0.0/16")
    reserved = {pool.network_address, pool.broadcast_address, pool.network_address + 1}
    disturbed = 0
    for _attempt in range(200):
        names = random_names(rng, 101)
        newcomer = names.pop(rng.randrange(len(names)))
        before = allocate_addresses("bridge", pool, reserved, names)
        after = allocate_addresses("bridge", pool, reserved, [*names, newcomer])
        disturbed += any(after[n] != before[n] for n in names)
    assert disturbed <= 2


def test_whole_topology_stability_under_additions():
    rng = random.Random(3)
    doc = {
        "networks": {"a": net("10.0.0.0/24"), "b": net("10.0.1.0/26"), "c": net("10.0.2.0/24", internal=True)},
        "containers": {
            name: {"networks": rng.sample(["a", "b", "c"], rng.randrange(1, 4))} for name in random_names(rng, 30)
        },
    }
    before = parse_topology(doc)
    grown = copy.deepcopy(doc)
    grown["containers"]["zzz-new"] = {"networks": ["a", "b"]}  # sorts after every existing name
    grown["containers"]["zz-only-c"] = {"networks": ["c"]}
    after = parse_topology(grown)
    for name, container in before.containers.items():
        assert after.containers[name] == container


def test_networks_allocate_independently():
    doc = {
        "networks": {"a": net("10.0.0.0/28"), "b": net("10.0.1.0/28")},
        "containers": {f"c{i}": {"networks": ["a"]} for i in range(8)},
    }
    doc["containers"].update({f"d{i}": {"networks": ["b"]} for i in range(8)})
    before = addresses(parse_topology(doc))
    doc["containers"]["a0"] = {"networks": ["b"]}  # sorts before everyone, on network b only
    after = addresses(parse_topology(doc))
    assert {k: v for k, v in after.items() if k[1] == "a"} == {k: v for k, v in before.items() if k[1] == "a"}


def test_connecting_a_network_leaves_the_other_endpoints_alone():
    doc = {
        "networks": {"a": net("10.0.0.0/24"), "b": net("10.0.1.0/24")},
        "containers": {"web": {"networks": ["a"]}, "db": {"networks": ["a"]}},
    }
    before = parse_topology(doc).containers["web"].endpoints[0]
    doc["containers"]["web"]["networks"] = ["a", "b"]
    after = parse_topology(doc).containers["web"].endpoints
    assert after[0] == before
    assert (after[1].network, after[1].interface, after[1].default_route) == ("b", "eth1", False)


def test_marking_a_container_absent_moves_nobody():
    containers = {f"c{i}": {"networks": ["front"]} for i in range(5)}
    before = addresses(parse_topology(one_network(containers, subnet="10.10.0.0/29")))
    containers["c0"]["state"] = "absent"
    assert addresses(parse_topology(one_network(containers, subnet="10.10.0.0/29"))) == before


# --- derived names ---------------------------------------------------------------------------------------


def test_bridge_names():
    assert bridge_name_for("bridge") == "wharf0"
    assert bridge_name_for("front") == "br-front"
    assert bridge_name_for("a" * 12) == "br-" + "a" * 12
    long_name = bridge_name_for("production-backend")
    assert long_name == "br-produ-f66feb" and len(long_name) == 15
    similar = {bridge_name_for(f"production-backend-{i}") for i in range(500)}
    assert len(similar) == 500 and all(len(n) == 15 for n in similar)


def test_host_veth_names_are_15_characters_stable_and_readable():
    assert host_veth_name("web1", "frontend") == "ve-web1-83ebf05"
    assert host_veth_name("x", "a") == host_veth_name("x", "a")
    for container in ("a", "web1", "abcde", "abcdef", "a" * 63, "a.b_c-d"):
        name = host_veth_name(container, "net")
        assert len(name) == 15 and name.startswith("ve-" + container[:5] + "-"), name


def test_host_veth_names_stay_unique_for_many_similar_long_names():
    names = [f"service-backend-{i:04d}" for i in range(1000)]
    veths = {host_veth_name(c, n) for c in names for n in ("front", "back", "frontend")}
    assert len(veths) == 3000


def test_short_names_never_clash_across_containers():
    # names of at most 5 characters appear whole; the hash only tells a container's own endpoints apart
    names = [f"c{i}" for i in range(3000)]
    assert len({host_veth_name(c, "n") for c in names}) == 3000


def test_derived_names_in_a_topology_are_unique_and_short():
    doc = {
        "networks": {f"network-with-a-long-name-{i}": net(f"10.{i}.0.0/24") for i in range(5)},
        "containers": {
            f"a-rather-long-container-name-{i:03d}": {"networks": [f"network-with-a-long-name-{j}" for j in range(5)]}
            for i in range(100)
        },
    }
    topology = parse_topology(doc)
    bridges = [n.bridge_name for n in topology.networks.values()]
    veths = [e.host_interface for c in topology.containers.values() for e in c.endpoints]
    assert len(set(bridges + veths)) == 5 + 500
    assert all(len(name) <= 15 for name in bridges + veths)
    assert [e.interface for e in topology.containers["a-rather-long-container-name-000"].endpoints] == [
        "eth0",
        "eth1",
        "eth2",
        "eth3",
        "eth4",
    ]


def test_macvlan_endpoints_have_no_host_veth():
    doc = {
        "networks": {"lan": net("192.168.5.0/24", driver="macvlan", parent="eth1"), "front": net()},
        "containers": {"c": {"networks": ["lan", "front"]}},
    }
    lan, front = parse_topology(doc).containers["c"].endpoints
    assert (lan.interface, lan.host_interface) == ("eth0", None)
    assert front.interface == "eth1" and front.host_interface.startswith("ve-c-")


def test_250_containers_over_5_networks_parse_quickly():
    doc = {
        "networks": {f"n{i}": net(f"10.{i}.0.0/24") for i in range(5)},
        "containers": {f"c{i:03d}": {"networks": [f"n{i % 5}", f"n{(i + 1) % 5}"]} for i in range(250)},
    }
    start = time.perf_counter()
    topology = parse_topology(doc)
    assert time.perf_counter() - start < 1.0
    assert len(topology.containers) == 250


def test_names_the_embedded_dns_cannot_serve_are_errors_before_anything_changes():
    """Labels of at most 63 characters, none empty, names of at most 253 with the ``.NETWORK`` suffix: the resolver
    refuses a whole state otherwise (dnspython), after the module already wrote the containers' files."""
    long_label = "x" * 64
    assert_one_error(one_network({"c": {"hostname": long_label}}), "containers.c.hostname", long_label[:20], "63")
    assert_one_error(one_network({"c": {"hostname": "a..b"}}), "containers.c.hostname a..b", "empty label")
    assert_one_error(one_network({"a..b": {}}), "containers.a..b", "empty label")
    alias = ".".join(["y" * 63] * 3) + "." + "z" * 58  # 250 characters: fits alone, not as alias.front
    doc = one_network({"c": {"networks": {"front": {"aliases": [alias]}}}})
    message = assert_one_error(doc, "containers.c.networks.front", "256 characters", "at most 253")
    assert f"{alias}.front"[-30:] in message and "NAME.NETWORK" in message
    label = "q" * 64 + ".example"
    doc = one_network({"c": {"networks": {"front": {"aliases": [label]}}}})
    assert_one_error(doc, "containers.c.networks.front.aliases[0]", "63")
    # the longest valid ones pass, and the resolver loads what they give
    longest = ".".join(["y" * 63] * 3) + "." + "z" * 55  # 247 + ".front" = 253
    ok = one_network({"c": {"hostname": "h" * 63, "networks": {"front": {"aliases": [longest]}}}})
    from ansible_collections.wharf.network.plugins.module_utils._dns.daemon import render_state
    from ansible_collections.wharf.network.plugins.module_utils._dns.server.tables import load_tables
    from ansible_collections.wharf.network.plugins.module_utils._dns.state import HostResolvConf, resolver_state

    state = resolver_state(topo.parse_topology(ok), "h", HostResolvConf())
    assert f"{longest}.front" in load_tables(render_state(state).encode()).hidden
