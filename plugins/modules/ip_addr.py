#!/usr/bin/python
# Copyright: wharf.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ip_addr
short_description: Manage IPv4/IPv6 addresses and routes on interfaces inside a network namespace
version_added: 0.1.0
description:
  - Adds and removes addresses and main-table routes (including the default route) on interfaces, in the
    module's own namespace or in named ones. Routes are added with C(proto static).
  - With O(exclusive=true), addresses on a listed interface that the item does not list are removed (IPv6
    link-local ones excepted), and so are unlisted C(proto static) routes, the kind this module adds. Routes added
    by hand (C(ip route add) gives them C(proto boot)) and the kernel's connected routes are left alone.
  - With O(state=absent), the listed addresses and routes are removed from the interface; an interface or
    namespace that is already gone is a success.
extends_documentation_fragment:
  - wharf.network.resource
options:
  namespace:
    description: Namespace of every item that names none. Default is the module's own.
    type: str
  interfaces:
    description: The interfaces whose addresses and routes to converge.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Interface name; it must exist.
        type: str
        required: true
      namespace:
        description: Named namespace of the interface.
        type: str
      addresses:
        description: Addresses in CIDR form (V(192.0.2.10/24), V(2001:db8::10/64)).
        type: list
        elements: str
        default: []
      routes:
        description: Routes out of this interface.
        type: list
        elements: dict
        default: []
        suboptions:
          dest:
            description: V(default) or a network in CIDR form.
            type: str
            default: default
          gateway:
            description: Next hop address.
            type: str
          metric:
            description: Route metric (priority). Omitted means the kernel's default.
            type: int
      ipv6:
        description:
          - What IPv6 does on the interface, set through its sysctls inside its namespace. V(false) turns it off
            (C(disable_ipv6=1)), so the interface has no link-local address and accepts nothing IPv6, as Docker
            does on a container interface of an IPv4-only network. V(true) keeps it on.
          - Either way router advertisements are refused (C(accept_ra=0)), so no neighbour can give the
            interface an address or a default route.
          - Omitted leaves IPv6 as it is. On a kernel without IPv6 there is nothing to set.
        type: bool
author:
  - wharf.network contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Address the bridge (the network's gateway) and container web1
  wharf.network.ip_addr:
    interfaces:
      - name: br-frontend
        addresses: [172.28.0.1/24]
      - name: eth0
        namespace: web1
        addresses: [172.28.0.10/24, "2001:db8:28::10/64"]
        routes:
          - dest: default
            gateway: 172.28.0.1

- name: Make eth0 of web1 carry exactly one address and no static route
  wharf.network.ip_addr:
    exclusive: true
    interfaces:
      - name: eth0
        namespace: web1
        addresses: [172.28.0.10/24]
"""

RETURN = r"""
changes:
  description: One line per changed interface (or, in check mode, that would change), in order.
  returned: always
  type: list
  elements: str
  sample: ["update ip_addr 'web1/eth0': addresses [] -> ['172.28.0.10/24']"]
interfaces:
  description: The interfaces as requested, with addresses in canonical form.
  returned: success
  type: list
  elements: dict
  sample: [{"name": "eth0", "namespace": "web1", "addresses": ["172.28.0.10/24"],
            "routes": [{"dest": "default", "gateway": "172.28.0.1", "metric": null}], "ipv6": false,
            "state": "present"}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.wharf.network.plugins.module_utils._engine.module import COMMON_ARGUMENT_SPEC, run_resource
from ansible_collections.wharf.network.plugins.module_utils._kernel.addresses import IpAddrResource


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "namespace": {"type": "str"},
            "interfaces": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "name": {"type": "str", "required": True},
                    "namespace": {"type": "str"},
                    "addresses": {"type": "list", "elements": "str", "default": []},
                    "ipv6": {"type": "bool"},
                    "routes": {
                        "type": "list",
                        "elements": "dict",
                        "default": [],
                        "options": {
                            "dest": {"type": "str", "default": "default"},
                            "gateway": {"type": "str"},
                            "metric": {"type": "int"},
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
        "interfaces",
        lambda sockets: IpAddrResource(sockets, p["interfaces"], p["state"], p["exclusive"], p["namespace"]),
    )


if __name__ == "__main__":
    main()
