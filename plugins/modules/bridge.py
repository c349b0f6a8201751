#!/usr/bin/python
# Copyright: wharf.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bridge
short_description: Manage Linux bridges inside a network namespace
version_added: 0.1.0
description:
  - Creates, updates and removes Linux bridges, the kernel object behind a wharf.network network of the
    bridge driver (Docker's C(docker0), CNI's C(bridge) plugin).
  - A field that is not given is not managed, except O(bridges[].up), which defaults to true.
extends_documentation_fragment:
  - wharf.network.resource
options:
  namespace:
    description: Namespace of every item that names none. Default is the namespace the module runs in.
    type: str
  bridges:
    description: The bridges to converge.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Interface name, at most 15 characters.
        type: str
        required: true
      namespace:
        description: Named namespace (under C(/run/netns)) the bridge lives in.
        type: str
      mtu:
        description: MTU of the bridge.
        type: int
      mac:
        description: MAC address. Without it the kernel picks one (and a bridge follows its lowest port's MAC).
        type: str
      stp:
        description: Spanning tree on or off.
        type: bool
      vlan_filtering:
        description: VLAN filtering on or off. Kernels built without C(CONFIG_BRIDGE_VLAN_FILTERING) refuse it.
        type: bool
      up:
        description: Administrative state.
        type: bool
        default: true
      forwarding:
        description:
          - IPv4 forwarding of packets entering through this bridge (C(net.ipv4.conf.NAME.forwarding) in its
            namespace). V(false) keeps the containers behind it from being routed anywhere by the host, whatever
            the host's global C(net.ipv4.ip_forward); the topology role sets it so networks stay isolated.
          - Omitted, it is not managed. Writing the global C(net.ipv4.ip_forward) resets it; the next run repairs it.
        type: bool
author:
  - wharf.network contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: A bridge for the frontend network in the host namespace
  wharf.network.bridge:
    bridges:
      - name: br-frontend
        mtu: 1500
        stp: false

- name: A bridge inside a lab namespace, down for now
  wharf.network.bridge:
    namespace: lab
    bridges:
      - name: br-lab
        up: false

- name: Remove it
  wharf.network.bridge:
    namespace: lab
    bridges:
      - name: br-lab
    state: absent
"""

RETURN = r"""
changes:
  description: One line per change made (or, in check mode, that would be made), in order.
  returned: always
  type: list
  elements: str
  sample: ["create bridge '(host)/br-frontend'", "update bridge '(host)/br-lab': mtu 1500 -> 1450"]
bridges:
  description: The bridges as requested, after defaults.
  returned: success
  type: list
  elements: dict
  sample: [{"name": "br-frontend", "namespace": null, "mtu": 1500, "stp": false, "up": true, "state": "present"}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.wharf.network.plugins.module_utils._engine.module import COMMON_ARGUMENT_SPEC, run_resource
from ansible_collections.wharf.network.plugins.module_utils._kernel.bridge import BridgeResource


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "namespace": {"type": "str"},
            "bridges": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "name": {"type": "str", "required": True},
                    "namespace": {"type": "str"},
                    "mtu": {"type": "int"},
                    "mac": {"type": "str"},
                    "stp": {"type": "bool"},
                    "vlan_filtering": {"type": "bool"},
                    "up": {"type": "bool", "default": True},
                    "forwarding": {"type": "bool"},
                },
            },
            **COMMON_ARGUMENT_SPEC,
        },
        supports_check_mode=True,
    )
    p = module.params
    run_resource(
        module,
        "bridges",
        lambda sockets: BridgeResource(sockets, p["bridges"], p["state"], p["exclusive"], p["namespace"]),
    )


if __name__ == "__main__":
    main()
