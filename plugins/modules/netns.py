#!/usr/bin/python
# Copyright: wharf.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: netns
short_description: Manage named network namespaces (container sandboxes)
version_added: 0.1.0
description:
  - Creates and removes named network namespaces, the sandboxes of wharf.network containers. The container
    C(web1) is the namespace C(web1), so C(ip netns exec web1 ...) runs a program inside it.
  - A new namespace gets its loopback interface up. Optionally it gets a UTS namespace of its own holding a
    hostname, and C(net.*) sysctls set inside it.
  - One call converges a whole list of namespaces; the namespaces are created in-process (no helper process
    per namespace).
extends_documentation_fragment:
  - wharf.network.resource
options:
  namespaces:
    description: The namespaces to converge.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name of the namespace, a file under C(/run/netns).
        type: str
        required: true
      hostname:
        description:
          - Hostname of the container. Held in a UTS namespace pinned at C(/run/wharf/uts/NAME), so it persists
            without a process; enter it with C(nsenter --uts=/run/wharf/uts/NAME --net=/run/netns/NAME).
          - When omitted, the hostname is not managed.
        type: str
      share_with:
        description:
          - Make this name another name of an existing namespace (bound to the same kernel namespace), as Docker's
            C(--network container:OTHER) shares OTHER's network stack. Takes no hostname or sysctls of its own.
          - Removing it removes the name only; the namespace lives on under its other name.
        type: str
      sysctls:
        description:
          - Per-namespace sysctls to set inside, such as C(net.ipv4.ip_forward=1). Only C(net.*) keys live in a
            network namespace. Keys not listed are left alone.
        type: dict
        default: {}
author:
  - wharf.network contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Two container sandboxes, one of them a router
  wharf.network.netns:
    namespaces:
      - name: web1
        hostname: web1
      - name: edge
        hostname: edge
        sysctls:
          net.ipv4.ip_forward: 1
      - name: web1-sidecar
        share_with: web1

- name: Remove every namespace this collection made except web1
  wharf.network.netns:
    namespaces:
      - name: web1
    exclusive: true

- name: Remove them
  wharf.network.netns:
    namespaces:
      - name: web1
      - name: edge
    state: absent
"""

RETURN = r"""
changes:
  description: One line per change made (or, in check mode, that would be made), in the order applied.
  returned: always
  type: list
  elements: str
  sample: ["create netns 'web1'", "update netns 'edge': hostname 'old' -> 'edge'"]
namespaces:
  description: The namespaces as requested, after defaults.
  returned: success
  type: list
  elements: dict
  sample: [{"name": "web1", "hostname": "web1", "sysctls": {}, "state": "present"}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.wharf.network.plugins.module_utils._engine.module import COMMON_ARGUMENT_SPEC, run_resource
from ansible_collections.wharf.network.plugins.module_utils._kernel.netns import NetnsResource


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "namespaces": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "name": {"type": "str", "required": True},
                    "hostname": {"type": "str"},
                    "sysctls": {"type": "dict", "default": {}},
                    "share_with": {"type": "str"},
                },
            },
            **COMMON_ARGUMENT_SPEC,
        },
        supports_check_mode=True,
    )
    p = module.params
    run_resource(
        module, "namespaces", lambda sockets: NetnsResource(sockets, p["namespaces"], p["state"], p["exclusive"])
    )


if __name__ == "__main__":
    main()
