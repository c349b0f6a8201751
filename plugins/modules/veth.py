#!/usr/bin/python
# Copyright: wharf.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: veth
short_description: Manage veth pairs whose ends live in given network namespaces
version_added: 0.1.0
description:
  - Creates, updates and removes veth pairs, the endpoints of wharf.network containers (one end on the
    host, usually on a bridge; the other, C(eth0), C(eth1)..., inside the container).
  - The peer is created directly in its namespace in the same netlink request, never created and moved.
  - A pair whose peer is missing or in the wrong place is rebuilt, since a veth cannot be re-paired. A peer
    in the right namespace under another name is renamed (its addresses and routes stay), so renumbering a
    container's interfaces never rebuilds an endpoint.
extends_documentation_fragment:
  - wharf.network.resource
options:
  namespace:
    description: Namespace of the first end for every item that names none. Default is the module's own.
    type: str
  exclusive_namespaces:
    description:
      - With O(exclusive=true), limit removal of unlisted pairs to pairs with an end in these named namespaces.
        The topology role uses it to converge the endpoints of every declared container (Docker's
        C(network disconnect)) without pruning anything else.
      - Without it, O(exclusive) covers every namespace an item touches, the module's own included.
    type: list
    elements: str
  veths:
    description: The pairs to converge.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name of the first end, at most 15 characters (IFNAMSIZ).
        type: str
        required: true
      namespace:
        description: Named namespace of the first end.
        type: str
      peer:
        description: Name of the other end, at most 15 characters.
        type: str
        required: true
      peer_namespace:
        description: Named namespace of the other end. Default is the first end's namespace.
        type: str
      mtu:
        description: MTU of both ends.
        type: int
      mac:
        description: MAC address of the first end.
        type: str
      peer_mac:
        description: MAC address of the other end.
        type: str
      master:
        description:
          - Bridge (in the first end's namespace) to enslave the first end to. The empty string detaches it;
            omitted, the master is not managed.
        type: str
      hairpin:
        description:
          - Hairpin mode of the first end as a port of O(veths[].master) (C(ip link set NAME type bridge_slave
            hairpin on)); the bridge may send a frame back out of the port it came in on.
          - Needed for a container to reach its own published port through the host's address when bridged
            traffic passes netfilter (C(br_netfilter)), as Docker and Kubernetes set it.
          - Omitted, the mode is not managed.
        type: bool
      up:
        description: Administrative state of both ends.
        type: bool
        default: true
author:
  - wharf.network contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Attach containers web1 and web2 to br-frontend
  wharf.network.veth:
    veths:
      - name: ve-web1-3fa2
        peer: eth0
        peer_namespace: web1
        master: br-frontend
        peer_mac: "02:42:ac:1c:00:0a"
      - name: ve-web2-91c0
        peer: eth0
        peer_namespace: web2
        master: br-frontend
        mtu: 1450

- name: Disconnect web2
  wharf.network.veth:
    veths:
      - name: ve-web2-91c0
        peer: eth0
        peer_namespace: web2
    state: absent
"""

RETURN = r"""
changes:
  description: One line per change made (or, in check mode, that would be made), in order.
  returned: always
  type: list
  elements: str
  sample: ["create veth '(host)/ve-web1-3fa2'"]
veths:
  description: The pairs as requested, after defaults.
  returned: success
  type: list
  elements: dict
  sample: [{"name": "ve-web1-3fa2", "namespace": null, "peer": "eth0", "peer_namespace": "web1", "up": true,
            "master": "br-frontend", "state": "present"}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.wharf.network.plugins.module_utils._engine.module import COMMON_ARGUMENT_SPEC, run_resource
from ansible_collections.wharf.network.plugins.module_utils._kernel.veth import VethResource


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "namespace": {"type": "str"},
            "exclusive_namespaces": {"type": "list", "elements": "str"},
            "veths": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "name": {"type": "str", "required": True},
                    "namespace": {"type": "str"},
                    "peer": {"type": "str", "required": True},
                    "peer_namespace": {"type": "str"},
                    "mtu": {"type": "int"},
                    "mac": {"type": "str"},
                    "peer_mac": {"type": "str"},
                    "master": {"type": "str"},
                    "hairpin": {"type": "bool"},
                    "up": {"type": "bool", "default": True},
                },
            },
            **COMMON_ARGUMENT_SPEC,
        },
        supports_check_mode=True,
    )
    p = module.params
    run_resource(
        module,
        "veths",
        lambda sockets: VethResource(
            sockets, p["veths"], p["state"], p["exclusive"], p["namespace"], p["exclusive_namespaces"]
        ),
    )


if __name__ == "__main__":
    main()
