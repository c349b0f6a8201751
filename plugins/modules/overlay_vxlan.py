#!/usr/bin/python
# Copyright: wharf.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: overlay_vxlan
short_description: VXLAN devices of overlay networks, with static FDB and neighbour entries from the inventory
version_added: 0.1.0
description:
  - Creates, updates and removes the VXLAN device that joins an overlay network's bridge on this host to the same
    network on the other hosts (UDP 4789 by default), and programs its whole data plane statically, with no
    multicast underlay, no gossip and no learning, because every host knows every peer and every remote
    container from the inventory and the topology.
  - The device has its local (underlay) address pinned and sits on the interface that holds it, with
    C(nolearning) (no source of a packet can teach it where a MAC lives) and C(proxy) (ARP requests for remote
    containers are answered on this host from its neighbour table, never flooded across).
  - "Programmed per device: one all-zeros FDB entry per peer (broadcast and unknown traffic, replicated to each
    peer), one FDB entry per remote container MAC pointing at its host, one permanent neighbour entry per remote
    container (IP to MAC). Entries the list no longer names are removed, so hosts and containers that left leave
    nothing stale behind."
  - "On the bridge (O(vxlans[].master)) the device's port does not learn: C(nolearning) covers only the device's
    own table, and a remote container sending with the source MAC of a local one would otherwise move that MAC to
    the tunnel and take its traffic. Instead the bridge gets one static entry per remote container MAC on the
    port, so known unicast goes straight to the tunnel instead of being flooded to every port."
  - A device whose VNI, local address, port or underlay interface must change is made again (the kernel cannot
    change them on a live device).
  - The P(wharf.network.topology#role) role runs this as a step of M(wharf.network.converge), with the peers taken
    from the inventory variable C(wharf_underlay_address) of every host; there the firewall table also drops VXLAN
    (UDP 4789) addressed to this host's underlay address from every address that is not a peer. VXLAN to the
    host's other addresses (devices wharf.network does not own) and over IPv6 (wharf's devices are IPv4 only) is
    left alone. This module on its own filters nothing (the device decapsulates any packet with its VNI and
    port).
extends_documentation_fragment:
  - wharf.network.resource
options:
  namespace:
    description: Namespace of every item that names none. Default is the namespace the module runs in.
    type: str
  vxlans:
    description: The VXLAN devices to converge, each with its complete set of peers and remote containers.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Interface name, at most 15 characters.
        type: str
        required: true
      namespace:
        description: Named namespace (under C(/run/netns)) the device lives in.
        type: str
      vni:
        description: VXLAN network identifier, 1 to 16777215; the same on every host of the network.
        type: int
        required: true
      local:
        description:
          - This host's underlay IPv4 address, the source of the tunnel. It must be configured on an interface in the
            same namespace; the device is bound to that interface.
        type: str
        required: true
      port:
        description: UDP destination port, 1 to 65535 (0 is refused, not read as the default).
        type: int
        default: 4789
      master:
        description: The bridge the device is a port of (the overlay network's bridge).
        type: str
      mtu:
        description:
          - MTU of the device. It must leave room for the 50 bytes VXLAN adds on the underlay interface, otherwise
            the module fails naming the largest MTU that fits (no black hole for large packets).
        type: int
      peers:
        description: Underlay addresses of the other hosts that carry this network (remote VTEPs).
        type: list
        elements: str
        default: []
      remotes:
        description: The containers of this network on the other hosts.
        type: list
        elements: dict
        default: []
        suboptions:
          mac:
            description: The container's MAC address on this network.
            type: str
            required: true
          address:
            description: The container's IPv4 address on this network.
            type: str
            required: true
          peer:
            description: Underlay address of the container's host; one of O(vxlans[].peers).
            type: str
            required: true
author:
  - wharf.network contributors (!UNKNOWN)
seealso:
  - module: wharf.network.converge
  - module: wharf.network.bridge
"""

EXAMPLES = r"""
- name: Overlay network frontend (VNI 4242) on node1, whose underlay address is 10.77.0.1
  wharf.network.overlay_vxlan:
    vxlans:
      - name: vx-4242
        vni: 4242
        local: 10.77.0.1
        master: br-frontend
        mtu: 1450
        peers: [10.77.0.2, 10.77.0.3]
        remotes:
          - { mac: "02:42:ac:1c:00:0c", address: 172.28.0.12, peer: 10.77.0.2 }
          - { mac: "02:42:ac:1c:00:0d", address: 172.28.0.13, peer: 10.77.0.3 }

- name: Remove it (its entries go with it)
  wharf.network.overlay_vxlan:
    vxlans:
      - { name: vx-4242, vni: 4242, local: 10.77.0.1 }
    state: absent
"""

RETURN = r"""
changes:
  description: One line per change made (or, in check mode, that would be made), in order.
  returned: always
  type: list
  elements: str
  sample:
    - "create vxlan '(host)/vx-4242'"
    - "update vxlan '(host)/vx-4242': fdb ['00:00:00:00:00:00 dst 10.77.0.2'] -> ['00:00:00:00:00:00 dst 10.77.0.3']"
vxlans:
  description:
    - The devices as requested, with the FDB, neighbour and bridge entries a successful run leaves them (what was
      asked for, not read back from the kernel; in check mode, what a real run would make).
  returned: success
  type: list
  elements: dict
  sample:
    - name: vx-4242
      namespace: null
      vni: 4242
      local: 10.77.0.1
      port: 4789
      master: br-frontend
      mtu: 1450
      fdb: ["00:00:00:00:00:00 dst 10.77.0.2", "02:42:ac:1c:00:0c dst 10.77.0.2"]
      neighbours: ["172.28.0.12 lladdr 02:42:ac:1c:00:0c"]
      bridge_fdb: ["02:42:ac:1c:00:0c"]
      state: present
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.wharf.network.plugins.module_utils._engine.module import COMMON_ARGUMENT_SPEC, run_resource
from ansible_collections.wharf.network.plugins.module_utils._kernel.vxlan import VxlanResource


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "namespace": {"type": "str"},
            "vxlans": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "name": {"type": "str", "required": True},
                    "namespace": {"type": "str"},
                    "vni": {"type": "int", "required": True},
                    "local": {"type": "str", "required": True},
                    "port": {"type": "int", "default": 4789},
                    "master": {"type": "str"},
                    "mtu": {"type": "int"},
                    "peers": {"type": "list", "elements": "str", "default": []},
                    "remotes": {
                        "type": "list",
                        "elements": "dict",
                        "default": [],
                        "options": {
                            "mac": {"type": "str", "required": True},
                            "address": {"type": "str", "required": True},
                            "peer": {"type": "str", "required": True},
                        },
                    },
                },
            },
            **COMMON_ARGUMENT_SPEC,
        },
        supports_check_mode=True,
    )
    p = module.params
    run_resource(
        module,
        "vxlans",
        lambda sockets: VxlanResource(sockets, p["vxlans"], p["state"], p["exclusive"], p["namespace"]),
    )


if __name__ == "__main__":
    main()
