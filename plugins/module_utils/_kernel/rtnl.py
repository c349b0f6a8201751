# This file is private to the wharf.network collection: its API may change at any time.
"""A small rtnetlink client: just the link, address and route messages the resources need.

Why our own and not pyroute2 on the hot path: measured on this kind of machine, a pyroute2 0.9
request costs 1 to 3 ms of Python (an asyncio loop turn per call, and every attribute of every
message decoded), and importing it 0.15 s; the same request here is a few tens of microseconds,
which is what lets one module call over 250 namespaces stay near `ip -batch`. Encoding is plain
`struct`; decoding reads only the attributes we use.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_EXT_ACK = 11
NETLINK_GET_STRICT_CHK = 12

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_APPEND = 0x800
NLM_F_ACK_TLVS = 0x200
NLMSGERR_ATTR_MSG = 1

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWNEIGH, RTM_DELNEIGH, RTM_GETNEIGH = 28, 29, 30
RTM_GETNSID = 90
NETNSA_NSID = 1
NETNSA_FD = 3

IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_LINK = 5
IFLA_MASTER = 10
IFLA_LINKINFO = 18
IFLA_NET_NS_PID = 19
IFLA_IFALIAS = 20
IFLA_EXT_MASK = 29
IFLA_NET_NS_FD = 28
IFLA_LINK_NETNSID = 37
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
IFLA_INFO_SLAVE_KIND = 4
IFLA_INFO_SLAVE_DATA = 5
IFLA_BRPORT_MODE = 4  # hairpin: the bridge may send a frame back out of the port it came in on
IFLA_BRPORT_LEARNING = 8  # the bridge learns source MACs arriving on the port
VETH_INFO_PEER = 1
IFLA_BR_STP_STATE = 5
IFLA_BR_VLAN_FILTERING = 7
IFLA_VXLAN_ID = 1
IFLA_VXLAN_LINK = 3
IFLA_VXLAN_LOCAL = 4
IFLA_VXLAN_LEARNING = 7
IFLA_VXLAN_PROXY = 11
IFLA_VXLAN_PORT = 15  # network byte order
RTEXT_FILTER_SKIP_STATS = 1 << 3

IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_FLAGS = 8
IFA_F_NODAD = 0x02
IFA_F_PERMANENT = 0x80

RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_TABLE = 15
RT_TABLE_MAIN = 254
RTN_UNICAST = 1
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253

NDA_DST = 1
NDA_LLADDR = 2
NDA_MASTER = 9  # in an AF_BRIDGE dump: the entry is the bridge's (this is the bridge's index), not the port's own
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
NTF_SELF = 0x02
NTF_MASTER = 0x04
AF_BRIDGE = 7

IFF_UP = 0x1
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF

_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_NDMSG = struct.Struct("=BxxxiHBB")
_NLATTR = struct.Struct("=HH")


class NetlinkError(OSError):
    """A kernel refusal: errno plus the kernel's own extended-ack message when it gave one."""


def _align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, payload: bytes) -> bytes:
    length = _NLATTR.size + len(payload)
    return _NLATTR.pack(length, kind) + payload + b"\0" * (_align(length) - length)


def attr_str(kind: int, value: str) -> bytes:
    return attr(kind, value.encode() + b"\0")


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def attr_u8(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=B", value))


def attr_u16_be(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("!H", value))


def attr_nested(kind: int, *children: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(children))


def parse_attrs(data: bytes, offset: int = 0, end: int | None = None) -> dict[int, bytes]:
    """Top-level attributes of a message body, by type (the last one wins, as the kernel sends one)."""
    attrs: dict[int, bytes] = {}
    end = len(data) if end is None else end
    while offset + 4 <= end:
        length, kind = _NLATTR.unpack_from(data, offset)
        if length < 4:
            break
        attrs[kind & NLA_TYPE_MASK] = data[offset + 4 : offset + length]
        offset += _align(length)
    return attrs


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _u32(raw: bytes | None) -> int | None:
    return struct.unpack("=I", raw[:4])[0] if raw and len(raw) >= 4 else None


def _i32(raw: bytes | None) -> int | None:
    return struct.unpack("=i", raw[:4])[0] if raw and len(raw) >= 4 else None


def _cstr(raw: bytes | None) -> str | None:
    # names and aliases are bytes to the kernel; a foreign link's alias need not be UTF-8
    return raw.split(b"\0", 1)[0].decode(errors="replace") if raw is not None else None


@dataclass
class LinkMessage:
    """The fields of an RTM_NEWLINK message that the resources read."""

    index: int
    flags: int
    name: str
    kind: str | None
    mtu: int | None
    mac: str | None
    master: int | None
    alias: str | None
    peer_index: int | None
    link_netnsid: int | None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class NeighMessage:
    """An RTM_NEWNEIGH message: an ARP entry (AF_INET) or a forwarding-database entry (AF_BRIDGE).

    `address` is the IP (NDA_DST): for a VXLAN FDB entry the remote VTEP, for an ARP entry the neighbour's
    own address. `mac` is NDA_LLADDR; `master` (NDA_MASTER) the bridge whose FDB holds the entry, None for a
    device's own entry (NTF_SELF).
    """

    family: int
    index: int
    state: int
    flags: int
    address: str | None
    mac: str | None
    master: int | None = None


@dataclass
class AddrMessage:
    family: int
    prefixlen: int
    index: int
    address: str


@dataclass
class RouteMessage:
    family: int
    dst_len: int
    table: int
    protocol: int
    scope: int
    type: int
    dst: str | None
    gateway: str | None
    oif: int | None
    priority: int | None


def _parse_link(body: bytes) -> LinkMessage:
    _family, _type, index, flags, _change = _IFINFOMSG.unpack_from(body)
    attrs = parse_attrs(body, _IFINFOMSG.size)
    kind = None
    info: dict[str, Any] = {}
    linkinfo = attrs.get(IFLA_LINKINFO)
    if linkinfo is not None:
        nested = parse_attrs(linkinfo)
        kind = _cstr(nested.get(IFLA_INFO_KIND))
        data = nested.get(IFLA_INFO_DATA)
        if kind == "bridge" and data is not None:
            bridge = parse_attrs(data)
            info["stp"] = bool(_u32(bridge.get(IFLA_BR_STP_STATE)))
            vf = bridge.get(IFLA_BR_VLAN_FILTERING)
            info["vlan_filtering"] = bool(vf[0]) if vf else False
        elif kind == "vxlan" and data is not None:
            info.update(_parse_vxlan(parse_attrs(data)))
        slave_data = nested.get(IFLA_INFO_SLAVE_DATA)
        if _cstr(nested.get(IFLA_INFO_SLAVE_KIND)) == "bridge" and slave_data is not None:
            port = parse_attrs(slave_data)
            mode = port.get(IFLA_BRPORT_MODE)
            info["hairpin"] = bool(mode[0]) if mode else False
            learning = port.get(IFLA_BRPORT_LEARNING)
            info["port_learning"] = bool(learning[0]) if learning else None
    address = attrs.get(IFLA_ADDRESS)
    return LinkMessage(
        index=index,
        flags=flags,
        name=_cstr(attrs.get(IFLA_IFNAME)) or "",
        kind=kind,
        mtu=_u32(attrs.get(IFLA_MTU)),
        mac=mac_text(address) if address is not None else None,
        master=_u32(attrs.get(IFLA_MASTER)),
        alias=_cstr(attrs.get(IFLA_IFALIAS)),
        peer_index=_u32(attrs.get(IFLA_LINK)),
        link_netnsid=_i32(attrs.get(IFLA_LINK_NETNSID)),
        info=info,
    )


def _parse_vxlan(vxlan: dict[int, bytes]) -> dict[str, Any]:
    local = vxlan.get(IFLA_VXLAN_LOCAL)
    port = vxlan.get(IFLA_VXLAN_PORT)
    learning = vxlan.get(IFLA_VXLAN_LEARNING)
    proxy = vxlan.get(IFLA_VXLAN_PROXY)
    return {
        "vni": _u32(vxlan.get(IFLA_VXLAN_ID)),
        "local": socket.inet_ntop(socket.AF_INET, local[:4]) if local and len(local) >= 4 else None,
        "link": _u32(vxlan.get(IFLA_VXLAN_LINK)),
        "port": struct.unpack("!H", port[:2])[0] if port and len(port) >= 2 else None,
        "learning": bool(learning[0]) if learning else False,
        "proxy": bool(proxy[0]) if proxy else False,
    }


def _parse_neigh(body: bytes) -> NeighMessage:
    family, index, state, flags, _type = _NDMSG.unpack_from(body)
    attrs = parse_attrs(body, _NDMSG.size)
    dst = attrs.get(NDA_DST)
    lladdr = attrs.get(NDA_LLADDR)
    address = None
    if dst is not None and len(dst) in (4, 16):
        address = socket.inet_ntop(socket.AF_INET if len(dst) == 4 else socket.AF_INET6, dst)
    mac = mac_text(lladdr) if lladdr is not None else None
    return NeighMessage(family, index, state, flags, address, mac, _u32(attrs.get(NDA_MASTER)))


def _ip_text(family: int, raw: bytes | None) -> str | None:
    if raw is None:
        return None
    return socket.inet_ntop(family, raw)


def _parse_addr(body: bytes) -> AddrMessage:
    family, prefixlen, _flags, _scope, index = _IFADDRMSG.unpack_from(body)
    attrs = parse_attrs(body, _IFADDRMSG.size)
    raw = attrs.get(IFA_LOCAL) if family == socket.AF_INET else None
    raw = raw or attrs.get(IFA_ADDRESS)
    return AddrMessage(family, prefixlen, index, _ip_text(family, raw) or "")


def _parse_route(body: bytes) -> RouteMessage:
    family, dst_len, _src_len, _tos, table, protocol, scope, rtype, _flags = _RTMSG.unpack_from(body)
    attrs = parse_attrs(body, _RTMSG.size)
    table_attr = _u32(attrs.get(RTA_TABLE))
    return RouteMessage(
        family=family,
        dst_len=dst_len,
        table=table_attr if table_attr is not None else table,
        protocol=protocol,
        scope=scope,
        type=rtype,
        dst=_ip_text(family, attrs.get(RTA_DST)),
        gateway=_ip_text(family, attrs.get(RTA_GATEWAY)),
        oif=_u32(attrs.get(RTA_OIF)),
        priority=_u32(attrs.get(RTA_PRIORITY)),
    )


class Rtnl:
    """One NETLINK_ROUTE socket, bound to the namespace it was created in."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        for option in (NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK):
            # older kernels lack these: plain errors and unfiltered dumps still work
            with contextlib.suppress(OSError):
                self.sock.setsockopt(SOL_NETLINK, option, 1)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def _send(self, msg_type: int, flags: int, payload: bytes) -> int:
        self.seq += 1
        header = _NLMSGHDR.pack(_NLMSGHDR.size + len(payload), msg_type, flags | NLM_F_REQUEST, self.seq, 0)
        self.sock.send(header + payload)
        return self.seq

    def _receive(self, seq: int) -> list[tuple[int, bytes]]:
        """Messages answering `seq` until DONE or the ack; raises NetlinkError on a kernel error."""
        replies: list[tuple[int, bytes]] = []
        while True:
            data = self.sock.recv(1 << 20)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, msg_type, flags, msg_seq, _pid = _NLMSGHDR.unpack_from(data, offset)
                body = data[offset + _NLMSGHDR.size : offset + length]
                offset += _align(length)
                if msg_seq != seq:
                    continue
                if msg_type == NLMSG_DONE:
                    return replies
                if msg_type == NLMSG_ERROR:
                    code = struct.unpack_from("=i", body)[0]
                    if code == 0:
                        return replies
                    raise self._error(-code, body, flags)
                replies.append((msg_type, body))
                if not flags & NLM_F_MULTI:
                    return replies

    @staticmethod
    def _error(code: int, body: bytes, flags: int) -> NetlinkError:
        message = os.strerror(code)
        if flags & NLM_F_ACK_TLVS:
            # after the errno comes the echoed request: its header only when capped, else all of it;
            # the extended-ack attributes follow
            capped = flags & 0x100
            echoed = _NLMSGHDR.size if capped else _NLMSGHDR.unpack_from(body, 4)[0]
            extra = parse_attrs(body, 4 + _align(echoed))
            text = _cstr(extra.get(NLMSGERR_ATTR_MSG))
            if text:
                message = f"{message}: {text}"
        return NetlinkError(code, message)

    def request(self, msg_type: int, flags: int, payload: bytes) -> list[tuple[int, bytes]]:
        return self._receive(self._send(msg_type, flags | NLM_F_ACK, payload))

    def dump(self, msg_type: int, payload: bytes) -> list[bytes]:
        return [body for _t, body in self._receive(self._send(msg_type, NLM_F_DUMP, payload))]

    # links -----------------------------------------------------------------------------------
    def links(self) -> list[LinkMessage]:
        payload = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)
        return [_parse_link(body) for body in self.dump(RTM_GETLINK, payload)]

    def link(self, index: int | None = None, name: str | None = None) -> LinkMessage | None:
        payload = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index or 0, 0, 0)
        if name is not None:
            payload += attr_str(IFLA_IFNAME, name)
        payload += attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)
        try:
            replies = self._receive(self._send(RTM_GETLINK, 0, payload))
        except NetlinkError as exc:
            if exc.errno in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        return _parse_link(replies[0][1]) if replies else None

    @staticmethod
    def link_attrs(
        name: str | None = None,
        mtu: int | None = None,
        mac: str | None = None,
        master: int | None = None,
        alias: str | None = None,
        netns_fd: int | None = None,
        netns_pid: int | None = None,
    ) -> bytes:
        parts = []
        if name is not None:
            parts.append(attr_str(IFLA_IFNAME, name))
        if mtu is not None:
            parts.append(attr_u32(IFLA_MTU, mtu))
        if mac is not None:
            parts.append(attr(IFLA_ADDRESS, mac_bytes(mac)))
        if master is not None:
            parts.append(attr_u32(IFLA_MASTER, master))
        if alias is not None:
            parts.append(attr_str(IFLA_IFALIAS, alias))
        if netns_fd is not None:
            parts.append(attr_u32(IFLA_NET_NS_FD, netns_fd))
        if netns_pid is not None:
            parts.append(attr_u32(IFLA_NET_NS_PID, netns_pid))
        return b"".join(parts)

    def new_link(self, kind: str, up: bool, attrs: bytes, info_data: bytes = b"") -> None:
        """Create a link; `attrs` from link_attrs(), `info_data` the kind's IFLA_INFO_DATA children."""
        flags = IFF_UP if up else 0
        linkinfo = attr_str(IFLA_INFO_KIND, kind)
        if info_data:
            linkinfo += attr_nested(IFLA_INFO_DATA, info_data)
        payload = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, flags, IFF_UP) + attrs + attr_nested(IFLA_LINKINFO, linkinfo)
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, payload)

    @staticmethod
    def veth_peer(up: bool, attrs: bytes) -> bytes:
        """IFLA_INFO_DATA of a veth: the peer's own ifinfomsg (its flags bring it up) and attributes."""
        flags = IFF_UP if up else 0
        return attr(VETH_INFO_PEER, _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, flags, IFF_UP) + attrs)

    def set_link(
        self,
        index: int,
        up: bool | None = None,
        attrs: bytes = b"",
        info: tuple[str, bytes] | None = None,
        port_data: bytes | None = None,
    ) -> None:
        """Change a link (by index, or by IFLA_IFNAME in `attrs` with index 0). `info` is (kind, IFLA_INFO_DATA
        children); `port_data` the IFLA_INFO_SLAVE_DATA children for the link as a port of its master."""
        flags = IFF_UP if up else 0
        change = IFF_UP if up is not None else 0
        payload = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, flags, change) + attrs
        linkinfo = b""
        if info is not None:
            kind, data = info
            linkinfo += attr_str(IFLA_INFO_KIND, kind) + attr_nested(IFLA_INFO_DATA, data)
        if port_data is not None:
            linkinfo += attr_nested(IFLA_INFO_SLAVE_DATA, port_data)
        if linkinfo:
            payload += attr_nested(IFLA_LINKINFO, linkinfo)
        self.request(RTM_NEWLINK, 0, payload)

    @staticmethod
    def bridge_port_hairpin(on: bool) -> bytes:
        """IFLA_INFO_SLAVE_DATA children of a bridge port with hairpin mode on or off."""
        return attr_u8(IFLA_BRPORT_MODE, 1 if on else 0)

    @staticmethod
    def bridge_port_learning(on: bool) -> bytes:
        """IFLA_INFO_SLAVE_DATA children of a bridge port that learns source MACs, or (off) never does: what a
        port whose senders are all known in advance (a VXLAN port) needs, so a forged source cannot move a MAC."""
        return attr_u8(IFLA_BRPORT_LEARNING, 1 if on else 0)

    def del_link(self, index: int) -> None:
        """Delete a link by index (a veth takes its peer with it)."""
        self.request(RTM_DELLINK, 0, _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0))

    def nsid_of(self, netns_fd: int) -> int | None:
        """The id this namespace gives the namespace behind `netns_fd` (what IFLA_LINK_NETNSID refers to)."""
        payload = struct.pack("=Bxxx", socket.AF_UNSPEC) + attr_u32(NETNSA_FD, netns_fd)
        replies = self._receive(self._send(RTM_GETNSID, 0, payload))
        if not replies:
            return None
        nsid = _i32(parse_attrs(replies[0][1], 4).get(NETNSA_NSID))
        return None if nsid is None or nsid < 0 else nsid

    # addresses -------------------------------------------------------------------------------
    def addrs(self, index: int = 0) -> list[AddrMessage]:
        found = [
            _parse_addr(body) for body in self.dump(RTM_GETADDR, _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, index))
        ]
        return [a for a in found if not index or a.index == index]

    def _addr(self, msg_type: int, flags: int, index: int, address: str, prefixlen: int) -> None:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        raw = socket.inet_pton(family, address)
        ifa_flags = IFA_F_NODAD if family == socket.AF_INET6 else 0
        payload = _IFADDRMSG.pack(family, prefixlen, ifa_flags, RT_SCOPE_UNIVERSE, index)
        payload += attr(IFA_LOCAL, raw) + attr(IFA_ADDRESS, raw)
        if family == socket.AF_INET6:
            payload += attr_u32(IFA_FLAGS, IFA_F_NODAD | IFA_F_PERMANENT)
        self.request(msg_type, flags, payload)

    def add_addr(self, index: int, address: str, prefixlen: int) -> None:
        self._addr(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, index, address, prefixlen)

    def del_addr(self, index: int, address: str, prefixlen: int) -> None:
        self._addr(RTM_DELADDR, 0, index, address, prefixlen)

    # routes ----------------------------------------------------------------------------------
    def routes(self, family: int, table: int = RT_TABLE_MAIN) -> list[RouteMessage]:
        payload = _RTMSG.pack(family, 0, 0, 0, table if table < 256 else 0, 0, 0, 0, 0)
        if table >= 256:
            payload += attr_u32(RTA_TABLE, table)
        found = [_parse_route(body) for body in self.dump(RTM_GETROUTE, payload)]
        return [r for r in found if r.table == table]

    def _route(
        self, msg_type: int, flags: int, family: int, dst: str | None, dst_len: int, gateway: str | None,
        oif: int, priority: int | None, protocol: int,
    ) -> None:  # fmt: skip
        scope = RT_SCOPE_UNIVERSE if gateway else RT_SCOPE_LINK
        payload = _RTMSG.pack(family, dst_len, 0, 0, RT_TABLE_MAIN, protocol, scope, RTN_UNICAST, 0)
        if dst is not None and dst_len:
            payload += attr(RTA_DST, socket.inet_pton(family, dst))
        if gateway:
            payload += attr(RTA_GATEWAY, socket.inet_pton(family, gateway))
        payload += attr_u32(RTA_OIF, oif)
        if priority is not None:
            payload += attr_u32(RTA_PRIORITY, priority)
        self.request(msg_type, flags, payload)

    def add_route(self, family: int, dst: str | None, dst_len: int, gateway: str | None, oif: int,
                  priority: int | None, protocol: int) -> None:  # fmt: skip
        self._route(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, family, dst, dst_len, gateway, oif, priority, protocol)

    def del_route(self, family: int, dst: str | None, dst_len: int, gateway: str | None, oif: int,
                  priority: int | None) -> None:  # fmt: skip
        self._route(RTM_DELROUTE, 0, family, dst, dst_len, gateway, oif, priority, 0)

    # neighbours and forwarding databases -------------------------------------------------------
    @staticmethod
    def vxlan_data(vni: int, local: str, link: int | None, port: int, learning: bool, proxy: bool) -> bytes:
        """IFLA_INFO_DATA of a VXLAN device with a pinned local address and no multicast group."""
        data = attr_u32(IFLA_VXLAN_ID, vni) + attr(IFLA_VXLAN_LOCAL, socket.inet_pton(socket.AF_INET, local))
        if link is not None:
            data += attr_u32(IFLA_VXLAN_LINK, link)
        data += attr_u16_be(IFLA_VXLAN_PORT, port)
        data += attr_u8(IFLA_VXLAN_LEARNING, int(learning)) + attr_u8(IFLA_VXLAN_PROXY, int(proxy))
        return data

    def neighbours(self, family: int, index: int = 0) -> list[NeighMessage]:
        """ARP/ND entries (AF_INET/AF_INET6) or FDB entries (AF_BRIDGE), of one interface when `index` is set."""
        # filtered here: strict dump checking wants NDA_IFINDEX for ARP tables but ndm_ifindex for the FDB
        found = [_parse_neigh(body) for body in self.dump(RTM_GETNEIGH, _NDMSG.pack(family, 0, 0, 0, 0))]
        return [n for n in found if not index or n.index == index]

    def _neigh(self, msg_type: int, flags: int, family: int, index: int, state: int, ntf: int,
               address: str | None, mac: str | None) -> None:  # fmt: skip
        payload = _NDMSG.pack(family, index, state, ntf, 0)
        if address is not None:
            ip_family = socket.AF_INET6 if ":" in address else socket.AF_INET
            payload += attr(NDA_DST, socket.inet_pton(ip_family, address))
        if mac is not None:
            payload += attr(NDA_LLADDR, mac_bytes(mac))
        self.request(msg_type, flags, payload)

    def add_fdb(self, index: int, mac: str, remote: str) -> None:
        """A static VXLAN FDB entry: frames to `mac` go to the VTEP `remote`; appended, so the all-zeros MAC can
        name several VTEPs (head-end replication of broadcast and unknown traffic)."""
        self._neigh(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_APPEND, AF_BRIDGE, index, NUD_PERMANENT | NUD_NOARP,
                    NTF_SELF, remote, mac)  # fmt: skip

    def del_fdb(self, index: int, mac: str, remote: str) -> None:
        """Remove one static VXLAN FDB entry (the pair MAC, VTEP: the all-zeros MAC has one per VTEP)."""
        self._neigh(RTM_DELNEIGH, 0, AF_BRIDGE, index, 0, NTF_SELF, remote, mac)

    def add_bridge_fdb(self, index: int, mac: str) -> None:
        """A static entry in the bridge's own FDB (NTF_MASTER): frames to `mac` leave through the port `index`.
        Static (NUD_NOARP), not permanent: a permanent bridge entry would mean a MAC local to the bridge itself.
        Replaces an entry of that MAC on another port."""
        self._neigh(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, AF_BRIDGE, index, NUD_NOARP, NTF_MASTER, None, mac)

    def del_bridge_fdb(self, index: int, mac: str) -> None:
        """Remove the bridge's FDB entry of `mac` on the port `index`."""
        self._neigh(RTM_DELNEIGH, 0, AF_BRIDGE, index, 0, NTF_MASTER, None, mac)

    def set_neighbour(self, index: int, address: str, mac: str) -> None:
        """A permanent ARP (or ND) entry, replacing whatever the kernel had for that address."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self._neigh(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, family, index, NUD_PERMANENT, 0, address, mac)

    def del_neighbour(self, index: int, address: str) -> None:
        """Remove the ARP (or ND) entry of `address` on the interface `index`."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self._neigh(RTM_DELNEIGH, 0, family, index, 0, 0, address, None)
