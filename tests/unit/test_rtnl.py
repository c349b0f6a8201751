"""The rtnetlink encoder/decoder: byte layouts checked against the kernel's uapi structures."""

from __future__ import annotations

import socket
import struct

from ansible_collections.wharf.network.plugins.module_utils._kernel import rtnl as r


def test_attributes_are_padded_to_four_bytes():
    assert r.attr_str(r.IFLA_IFNAME, "eth0") == struct.pack("=HH", 9, 3) + b"eth0\0" + b"\0\0\0"
    assert r.attr_u32(r.IFLA_MTU, 1500) == struct.pack("=HHI", 8, 4, 1500)
    nested = r.attr_nested(r.IFLA_LINKINFO, r.attr_str(r.IFLA_INFO_KIND, "veth"))
    assert struct.unpack_from("=HH", nested) == (len(nested), r.IFLA_LINKINFO | r.NLA_F_NESTED)


def test_parse_attrs_round_trip_and_nested_flag_is_masked():
    body = r.attr_str(r.IFLA_IFNAME, "br-front") + r.attr_u32(r.IFLA_MTU, 1450) + r.attr_nested(r.IFLA_LINKINFO, b"")
    attrs = r.parse_attrs(body)
    assert attrs[r.IFLA_IFNAME] == b"br-front\0"
    assert struct.unpack("=I", attrs[r.IFLA_MTU])[0] == 1450
    assert r.IFLA_LINKINFO in attrs


def test_parse_link_reads_what_resources_use():
    data = r.attr_u32(r.IFLA_BR_STP_STATE, 1) + r.attr_u8(r.IFLA_BR_VLAN_FILTERING, 0)
    linkinfo = r.attr_str(r.IFLA_INFO_KIND, "bridge") + r.attr_nested(r.IFLA_INFO_DATA, data)
    body = (
        struct.pack("=BxHiII", socket.AF_UNSPEC, 1, 7, r.IFF_UP, 0)
        + r.attr_str(r.IFLA_IFNAME, "br0")
        + r.attr_u32(r.IFLA_MTU, 1400)
        + r.attr(r.IFLA_ADDRESS, r.mac_bytes("02:42:ac:11:00:02"))
        + r.attr_str(r.IFLA_IFALIAS, "wharf.network")
        + r.attr_nested(r.IFLA_LINKINFO, linkinfo)
    )
    link = r._parse_link(body)
    assert (link.index, link.name, link.mtu, link.mac, link.alias, link.kind) == (
        7, "br0", 1400, "02:42:ac:11:00:02", "wharf.network", "bridge",
    )  # fmt: skip
    assert link.flags & r.IFF_UP
    assert link.info == {"stp": True, "vlan_filtering": False}


def test_parse_route():
    body = struct.pack("=BBBBBBBBI", socket.AF_INET, 0, 0, 0, 254, 4, 0, 1, 0)
    body += r.attr(r.RTA_GATEWAY, socket.inet_pton(socket.AF_INET, "192.0.2.1")) + r.attr_u32(r.RTA_OIF, 3)
    route = r._parse_route(body)
    assert (route.dst, route.dst_len, route.gateway, route.oif, route.table, route.protocol) == (
        None, 0, "192.0.2.1", 3, 254, 4,
    )  # fmt: skip


def test_extended_ack_message_is_kept():
    echoed = struct.pack("=IHHII", 16, r.RTM_NEWROUTE, 0, 1, 0)
    body = struct.pack("=i", -101) + echoed + r.attr_str(r.NLMSGERR_ATTR_MSG, "Nexthop has invalid gateway")
    error = r.Rtnl._error(101, body, r.NLM_F_ACK_TLVS | 0x100)
    assert error.errno == 101
    assert str(error).endswith("Nexthop has invalid gateway")
