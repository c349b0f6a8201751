# This file is private to the wharf.network collection: its API may change at any time.
"""The numbers and text forms the kernel and the wire protocols fix, in one place.

Pure (no import beyond the standard library, no kernel access), so the topology model, the firewall renderer, the
module input checks and the kernel resources all read the same values: a second copy that drifts would make the
model accept what a resource refuses.
"""

from __future__ import annotations

import re

IFNAMSIZ = 15  # the longest Linux interface name (IFNAMSIZ 16, less the terminating NUL)
VNI_MAX = 2**24 - 1  # a VXLAN network identifier is 24 bits
VXLAN_PORT = 4789  # the IANA VXLAN port: the one wharf's devices use and the firewall's input chain guards
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8: what an IPv4 underlay costs a frame
MAC_TEXT = re.compile(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}")  # a MAC as `ip link` writes it; use fullmatch


def is_mac_text(value: object) -> bool:
    """Whether ``value`` is a MAC written as six colon-separated hex pairs."""
    return isinstance(value, str) and MAC_TEXT.fullmatch(value) is not None
