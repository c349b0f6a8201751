"""Address families in the topology model: per-family subnets, allocation over any ``ipaddress`` network, and the
IPv4 compatibility properties callers use. The topology accepts IPv4 only (IPv6 is issue 13); these tests pin that
the machinery is generic while what a user sees stays the same."""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress

import pytest

from ansible_collections.wharf.network.plugins.module_utils._drivers.bridge import BridgeDriver, endpoint_interface
from ansible_collections.wharf.network.plugins.module_utils._drivers.overlay import OverlayDriver
from ansible_collections.wharf.network.plugins.module_utils._model import types
from ansible_collections.wharf.network.plugins.module_utils._model.containers import (
    ContainerSpec,
    EndpointSpec,
    build_containers,
    check_endpoints,
)
from ansible_collections.wharf.network.plugins.module_utils._model.fields import Fields
from ansible_collections.wharf.network.plugins.module_utils._model.ipam import allocate_addresses, allocate_endpoints
from ansible_collections.wharf.network.plugins.module_utils._model.items import PlanBuilder
from ansible_collections.wharf.network.plugins.module_utils._model.networks import read_subnet
from ansible_collections.wharf.network.plugins.module_utils._model.topology import (
    TopologyError,
    parse_topology,
)
from ansible_collections.wharf.network.plugins.module_utils._model.types import (
    FAMILIES,
    IPV4,
    Family,
    Subnet,
    family_of,
)

V4 = ipaddress.IPv4Network
V6 = ipaddress.IPv6Network
A4 = ipaddress.IPv4Address
A6 = ipaddress.IPv6Address

# A family the topology does not have yet, built here to show that adding one is a table entry.
TEST_IPV6 = Family(
    version=6,
    name="IPv6",
    subnet_key="ipv6_subnet",
    gateway_key="ipv6_gateway",
    range_key="ipv6_range",
    address_key="ipv6_address",
    broadcast=False,
    max_prefixlen=126,
    address_type=A6,
    network_type=V6,
    example_subnet="fd00:28::/64",
)


@pytest.fixture
def with_ipv6(monkeypatch):
    """The model as it is once issue 13 adds the family (only what reads :data:`FAMILIES` at call time)."""
    monkeypatch.setattr(types, "FAMILIES", (IPV4, TEST_IPV6))


def errors_of(doc: object) -> list[str]:
    with pytest.raises(TopologyError) as caught:
        parse_topology(doc)
    return caught.value.errors


# --- Family and Subnet -----------------------------------------------------------------------------------


def test_the_topology_knows_ipv4_only():
    assert FAMILIES == (IPV4,)
    assert family_of(4) is IPV4
    with pytest.raises(KeyError):
        family_of(6)


def test_subnet_of_ipv4():
    subnet = Subnet(network=V4("172.28.0.0/24"), gateway=A4("172.28.0.1"), ip_range=V4("172.28.0.128/25"))
    assert (subnet.version, subnet.family, subnet.prefixlen) == (4, IPV4, 24)
    assert subnet.gateway_interface == ipaddress.IPv4Interface("172.28.0.1/24")
    assert str(subnet.gateway_interface) == "172.28.0.1/24"
    assert subnet.interface(A4("172.28.0.10")) == ipaddress.IPv4Interface("172.28.0.10/24")
    assert subnet.reserved == {A4("172.28.0.0"), A4("172.28.0.1"), A4("172.28.0.255")}


def test_subnet_refuses_mixed_families():
    with pytest.raises(ValueError, match="mix families"):
        Subnet(network=V4("10.0.0.0/24"), gateway=A6("fd00::1"), ip_range=V4("10.0.0.0/24"))
    with pytest.raises(ValueError, match="mix families"):
        Subnet(network=V4("10.0.0.0/24"), gateway=A4("10.0.0.1"), ip_range=V6("fd00::/64"))


# --- compatibility properties ----------------------------------------------------------------------------


def parsed():
    doc = {
        "networks": {
            "front": {"subnet": "10.10.0.0/24", "gateway": "10.10.0.254", "ip_range": "10.10.0.128/25"},
            "back": {"subnet": "10.20.0.0/16", "internal": True},
        },
        "containers": {"web": {"networks": {"back": {}, "front": {"ipv4_address": "10.10.0.10"}}}},
    }
    return parse_topology(doc)


def test_network_compatibility_properties_are_the_ipv4_subnet():
    front = parsed().networks["front"]
    assert front.subnets == (
        Subnet(network=V4("10.10.0.0/24"), gateway=A4("10.10.0.254"), ip_range=V4("10.10.0.128/25")),
    )
    assert front.ipv4 is front.subnets[0] is front.subnet_for(4)
    assert front.subnet_for(6) is None
    assert (front.subnet, front.gateway, front.ip_range) == (
        V4("10.10.0.0/24"),
        A4("10.10.0.254"),
        V4("10.10.0.128/25"),
    )
    assert front.gateway_interface == "10.10.0.254/24"


def test_a_network_without_ipv4_says_so():
    front = parsed().networks["front"]
    bare = dataclasses.replace(front, subnets=())
    with pytest.raises(AttributeError, match="network front has no IPv4 subnet"):
        assert bare.subnet is None


def test_endpoint_compatibility_properties_are_the_ipv4_address():
    back, front = parsed().containers["web"].endpoints
    assert front.addresses == (ipaddress.IPv4Interface("10.10.0.10/24"),)
    assert front.gateways == (A4("10.10.0.254"),)
    assert (front.address, front.prefixlen, front.gateway) == (A4("10.10.0.10"), 24, A4("10.10.0.254"))
    assert front.address_interface == "10.10.0.10/24"
    assert front.address_for(4) == front.addresses[0] and front.address_for(6) is None
    assert front.address_fixed and not back.address_fixed
    # the first network is internal: the default route goes to the next one, per family
    assert (back.default_routes, back.default_route) == ((), False)
    assert (front.default_routes, front.default_route) == ((4,), True)
    assert back.address in V4("10.20.0.0/16") and back.prefixlen == 16


def test_endpoint_refuses_addresses_and_gateways_of_different_families():
    front = parsed().containers["web"].endpoints[1]
    with pytest.raises(ValueError, match="differ in families"):
        dataclasses.replace(front, gateways=(A6("fd00::1"),))


# --- allocation over any family --------------------------------------------------------------------------


def reference_offset(network: str, container: str, size: int) -> int:
    """The first hashed probe as the allocation rule states it (ipam.allocate_addresses)."""
    return int.from_bytes(hashlib.sha256(f"{network}/{container}/0".encode()).digest()[:8], "big") % size


def test_ipv4_allocation_follows_the_stated_rule():
    pool = V4("10.44.0.0/16")
    result = allocate_addresses("front", pool, [], ["web", "db"])
    assert result == {name: pool.network_address + reference_offset("front", name, 65536) for name in ("db", "web")}
    assert all(isinstance(address, A4) for address in result.values())


def test_allocation_for_an_ipv6_pool_uses_the_same_rule():
    pool = V6("fd00:28::/64")
    result = allocate_addresses("front", pool, [A4("10.0.0.1")], ["web", "db"])
    assert result == {name: pool.network_address + reference_offset("front", name, 2**64) for name in ("db", "web")}
    assert all(isinstance(address, A6) and address in pool for address in result.values())
    # a reserved address of the pool's family is skipped, one of another family ignored
    small = V6("fd00::/126")
    taken = allocate_addresses("n", small, [A6("fd00::"), A4("0.0.0.1")], ["a", "b", "c"])
    assert len(set(taken.values())) == 3 and A6("fd00::") not in taken.values()
    with pytest.raises(ValueError, match="4 addresses are needed but only 3 are free"):
        allocate_addresses("n", small, [A6("fd00::")], ["a", "b", "c", "d"])


def dual_stack_network():
    network = parsed().networks["front"]
    v6 = Subnet(network=V6("fd00:28::/64"), gateway=A6("fd00:28::1"), ip_range=V6("fd00:28::/120"))
    return dataclasses.replace(network, subnets=(network.ipv4, v6))


def test_allocation_of_endpoints_is_per_subnet(with_ipv6):
    network = dual_stack_network()
    containers = {
        "a": ContainerSpec(name="a", path="containers.a", endpoints=[EndpointSpec(network="front", path="p.a")]),
        "b": ContainerSpec(
            name="b",
            path="containers.b",
            endpoints=[EndpointSpec(network="front", path="p.b", fixed={6: A6("fd00:28::99")})],
        ),
    }
    fields = Fields()
    addresses = allocate_endpoints(fields, containers, {"front": network})
    assert fields.errors == []
    a4, a6 = addresses[("a", "front")]
    b4, b6 = addresses[("b", "front")]
    assert (a4.version, a6.version, b6) == (4, 6, ipaddress.IPv6Interface("fd00:28::99/64"))
    assert a4.ip in network.ip_range and b4.ip in network.ip_range and a6.ip in V6("fd00:28::/120")
    # the IPv4 addresses are those the network gets without a second family
    alone = allocate_endpoints(Fields(), containers, {"front": dataclasses.replace(network, subnets=(network.ipv4,))})
    assert (alone[("a", "front")], alone[("b", "front")]) == ((a4,), (b4,))

    model = build_containers(containers, {"front": network}, addresses)
    endpoint = model["a"].endpoints[0]
    assert endpoint.gateways == (A4("10.10.0.254"), A6("fd00:28::1"))
    assert endpoint.default_routes == (4, 6) and endpoint.address == a4.ip
    assert model["b"].endpoints[0].address_fixed


def test_a_too_small_range_of_one_family_leaves_the_endpoint_without_addresses(with_ipv6):
    network = dual_stack_network()
    tiny = Subnet(network=V6("fd00:28::/64"), gateway=A6("fd00:28::1"), ip_range=V6("fd00:28::10/127"))
    network = dataclasses.replace(network, subnets=(network.ipv4, tiny))
    containers = {
        name: ContainerSpec(name=name, path=f"containers.{name}", endpoints=[EndpointSpec(network="front", path="p")])
        for name in ("a", "b", "c")
    }
    fields = Fields()
    assert allocate_endpoints(fields, containers, {"front": network}) == {}
    assert fields.errors == [
        "networks.front.ipv6_range fd00:28::10/127 is too small: 3 addresses are needed but only 2 are free"
    ]


# --- reading a family's subnet ---------------------------------------------------------------------------


def test_read_subnet_of_another_family_reads_its_own_keys(with_ipv6):
    fields = Fields()
    spec = {"ipv6_subnet": "fd00:28::/64", "ipv6_range": "fd00:28::100/120", "subnet": "10.0.0.0/24"}
    subnet = read_subnet(fields, "networks.n", "n", spec, "bridge", TEST_IPV6, required=False)
    assert fields.errors == []
    assert subnet == Subnet(network=V6("fd00:28::/64"), gateway=A6("fd00:28::1"), ip_range=V6("fd00:28::100/120"))
    assert subnet.reserved == {A6("fd00:28::"), A6("fd00:28::1")}  # no broadcast in this family
    assert read_subnet(fields, "networks.n", "n", {}, "bridge", TEST_IPV6, required=False) is None
    assert fields.errors == []
    read_subnet(fields, "networks.n", "n", {"ipv6_subnet": "10.0.0.0/24"}, "bridge", TEST_IPV6, required=False)
    assert fields.errors == [
        "networks.n.ipv6_subnet 10.0.0.0/24 is not an IPv6 subnet in CIDR form (e.g. fd00:28::/64)"
    ]


# --- IPv6 input is refused as before (issue 13 lifts it) -------------------------------------------------


@pytest.mark.parametrize(
    ("network", "endpoint", "expected"),
    [
        (
            {"subnet": "fd00::/64"},
            {},
            "networks.front.subnet fd00::/64 is not an IPv4 subnet in CIDR form (e.g. 172.28.0.0/24)",
        ),
        ({"subnet": "10.0.0.0/24", "gateway": "fd00::1"}, {}, "networks.front.gateway fd00::1 is not an IPv4 address"),
        (
            {"subnet": "10.0.0.0/24", "ip_range": "fd00::/120"},
            {},
            "networks.front.ip_range fd00::/120 is not an IPv4 subnet in CIDR form (e.g. 172.28.0.0/24)",
        ),
        (
            {"subnet": "10.0.0.0/24"},
            {"ipv4_address": "fd00::5"},
            "containers.web.networks.front.ipv4_address fd00::5 is not an IPv4 address",
        ),
        (
            {"subnet": "10.0.0.0/24", "ipv6_subnet": "fd00::/64"},
            {},
            "networks.front.ipv6_subnet is not a known key (did you mean subnet?)",
        ),
        (
            {"subnet": "10.0.0.0/24"},
            {"ipv6_address": "fd00::5"},
            "containers.web.networks.front.ipv6_address is not a known key (did you mean ipv4_address?)",
        ),
    ],
)
def test_ipv6_input_is_refused_as_before(network, endpoint, expected):
    doc = {"networks": {"front": network}, "containers": {"web": {"networks": {"front": endpoint}}}}
    assert errors_of(doc) == [expected]


# --- drivers: gateways and routes per family -------------------------------------------------------------


def dual_stack_endpoint(default_routes: tuple[int, ...]):
    topology = parsed()
    container = topology.containers["web"]
    endpoint = dataclasses.replace(
        container.endpoints[1],
        addresses=(ipaddress.IPv4Interface("10.10.0.10/24"), ipaddress.IPv6Interface("fd00:28::10/64")),
        gateways=(A4("10.10.0.254"), A6("fd00:28::1")),
        default_routes=default_routes,
    )
    return container, endpoint


def test_endpoint_interface_has_an_address_and_a_default_route_per_family():
    container, endpoint = dual_stack_endpoint((4, 6))
    item = endpoint_interface(container, endpoint).as_item()
    assert item == {
        "name": "eth1",
        "namespace": "web",
        "addresses": ["10.10.0.10/24", "fd00:28::10/64"],
        "routes": [{"dest": "default", "gateway": "10.10.0.254"}, {"dest": "default", "gateway": "fd00:28::1"}],
        "ipv6": True,
    }
    ipv6_routed_elsewhere = dual_stack_endpoint((4,))[1]
    assert endpoint_interface(container, ipv6_routed_elsewhere).as_item()["routes"] == [
        {"dest": "default", "gateway": "10.10.0.254"}
    ]


def test_ipv4_endpoint_interface_is_as_before():
    topology = parsed()
    container = topology.containers["web"]
    assert [endpoint_interface(container, e).as_item() for e in container.endpoints] == [
        # no IPv6 where the network has none
        {"name": "eth0", "namespace": "web", "addresses": [f"{container.endpoints[0].address}/16"], "ipv6": False},
        {
            "name": "eth1",
            "namespace": "web",
            "addresses": ["10.10.0.10/24"],
            "routes": [{"dest": "default", "gateway": "10.10.0.254"}],
            "ipv6": False,
        },
    ]


def test_bridge_holds_a_gateway_per_family():
    plan = PlanBuilder()
    BridgeDriver().add_network(plan, dual_stack_network())
    (bridge_interface,) = plan.lists["interfaces"]
    assert bridge_interface.addresses == ("10.10.0.254/24", "fd00:28::1/64")
    assert bridge_interface.ipv6 is True
    (firewall,) = plan.lists["firewall_networks"]
    assert (firewall.subnet, firewall.gateway) == ("10.10.0.0/24", "10.10.0.254")  # the firewall is IPv4's


def test_overlay_remote_entries_per_family():
    doc = {
        "networks": {"mesh": {"driver": "overlay", "subnet": "10.30.0.0/24"}},
        "containers": {
            "far": {"host": "b", "networks": {"mesh": {"ipv4_address": "10.30.0.7"}}},
            "near": {"host": "a", "networks": ["mesh"]},
        },
    }
    topology = parse_topology(doc)
    peers = {"a": "192.0.2.1", "b": "192.0.2.2"}

    def remotes(topology):
        plan = PlanBuilder()
        OverlayDriver().add_fabric(plan, topology, "a", peers)
        return [r.as_item() for r in plan.lists["vxlans"][0].remotes]

    mac = topology.containers["far"].endpoints[0].mac_address
    assert remotes(topology) == [{"mac": mac, "address": "10.30.0.7", "peer": "192.0.2.2"}]
    far = topology.containers["far"]
    dual = dataclasses.replace(
        far.endpoints[0],
        addresses=(*far.endpoints[0].addresses, ipaddress.IPv6Interface("fd00:30::7/64")),
        gateways=(*far.endpoints[0].gateways, A6("fd00:30::1")),
    )
    topology.containers["far"] = dataclasses.replace(far, endpoints=(dual,))
    assert remotes(topology) == [
        {"mac": mac, "address": "10.30.0.7", "peer": "192.0.2.2"},
        {"mac": mac, "address": "fd00:30::7", "peer": "192.0.2.2"},
    ]


def test_a_fixed_address_of_a_family_the_network_lacks_is_reported(with_ipv6):
    ipv6_only = dataclasses.replace(
        dual_stack_network(),
        subnets=(Subnet(network=V6("fd00:28::/64"), gateway=A6("fd00:28::1"), ip_range=V6("fd00:28::/64")),),
    )
    endpoint = EndpointSpec(network="front", path="containers.a.networks.front", fixed={4: A4("10.10.0.9")})
    containers = {"a": ContainerSpec(name="a", path="containers.a", endpoints=[endpoint])}
    fields = Fields()
    check_endpoints(fields, containers, {"front": ipv6_only}, {"front"})
    assert fields.errors == ["containers.a.networks.front.ipv4_address 10.10.0.9: network front has no IPv4 subnet"]
    assert endpoint.fixed == {}  # kept out of allocation
