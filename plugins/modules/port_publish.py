#!/usr/bin/python
# Copyright: wharf.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: port_publish
short_description: Publish container ports on the host (Docker's -p), in the collection's nftables table
version_added: 0.1.0
description:
  - Adds, changes and removes published ports. It is M(wharf.network.firewall) restricted to publishes; both feed
    the same record and render the one table C(inet wharf) whole, so the networks applied by the firewall module
    stay as they are and the two never fight over the table.
  - A published port is reachable from outside the host, from the host itself (127.0.0.1 too) and from
    containers through the host's address; the container sees the real address of outside clients. A port
    published on 127.0.0.1 is not reachable from any other machine, even one that routes 127.0.0.1 to this host.
  - Without O(publishes[].published) (or a host port in O(publishes[].port)) the host port is derived from a
    hash of the publish within the local port range, skipping ports taken, and stays the same on every run.
  - An unchanged list sends nothing to the kernel; a table deleted or edited outside the collection is restored.
extends_documentation_fragment:
  - wharf.network.resource
options:
  publishes:
    description:
      - The publishes to converge. With O(exclusive=true) they replace every publish; otherwise publishes not listed
        stay. A publish is identified by host address, protocol and host port, or, without a host port, by host
        address, protocol and target.
    type: list
    elements: dict
    required: true
    suboptions:
      address:
        description: IPv4 address of the container the port leads to.
        type: str
        required: true
      port:
        description:
          - Docker C(-p) syntax, C([IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]), ranges allowed.
          - Instead of O(publishes[].host_ip), O(publishes[].published), O(publishes[].target), O(publishes[].protocol).
        type: str
      host_ip:
        description: Host address to publish on. Omitted or C(0.0.0.0) is every local address.
        type: str
      published:
        description: Host port or range (C(9000-9002)). Omitted, a free port that stays the same across runs.
        type: raw
      target:
        description: Container port or range, of the same length as O(publishes[].published).
        type: raw
      protocol:
        description: Protocol.
        type: str
        choices: [tcp, udp, sctp]
      source:
        description:
          - Where this publish comes from, used instead of its list position in error messages (the
            C(wharf_host_items) filter sets it to e.g. V(containers.web1.ports[0])).
        type: str
notes:
  - Two publishes of the same host address, port and protocol (0.0.0.0 clashes with every address), or a publish of
    a port a host process already listens on, fail with an error naming the publish before any change.
  - Stale UDP conntrack entries of a host port are deleted when its mapping changes.
seealso:
  - module: wharf.network.firewall
author:
  - wharf.network contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Publish like docker run -p
  wharf.network.port_publish:
    publishes:
      - { address: 172.28.0.10, port: "8080:80" }
      - { address: 172.28.0.10, port: "127.0.0.1:5432:5432" }
      - { address: 172.28.0.11, port: "9000-9002:9000-9002/udp" }

- name: A free host port, the same on every run
  wharf.network.port_publish:
    publishes:
      - { address: 172.28.0.12, target: 80 }
  register: published

- name: Show it
  ansible.builtin.debug:
    msg: "web is on port {{ published.publishes[0].published }}"

- name: Unpublish
  wharf.network.port_publish:
    state: absent
    publishes:
      - { address: 172.28.0.10, port: "8080:80" }
"""

RETURN = r"""
changes:
  description: One line per change made (or, in check mode, that would be made), in order.
  returned: always
  type: list
  elements: str
  sample: ["create publish '0.0.0.0:8080/tcp'", "update nftables table 'inet wharf'"]
publishes:
  description: The listed publishes as applied; a publish without host port shows the one it got.
  returned: success
  type: list
  elements: dict
  sample: [{"host_ip": null, "published": "41873", "address": "172.28.0.12", "target": "80", "protocol": "tcp",
            "auto": true, "state": "present"}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.wharf.network.plugins.module_utils._engine.module import COMMON_ARGUMENT_SPEC, run_resource
from ansible_collections.wharf.network.plugins.module_utils._firewall.resource import PUBLISH_OPTIONS, FirewallResource


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "publishes": {"type": "list", "elements": "dict", "required": True, "options": PUBLISH_OPTIONS},
            **COMMON_ARGUMENT_SPEC,
        },
        supports_check_mode=True,
    )
    p = module.params
    nft = module.get_bin_path("nft", required=True)
    run_resource(
        module,
        "publishes",
        lambda sockets: FirewallResource(
            lambda argv, data: module.run_command(argv, data=data),
            None,
            p["publishes"],
            p["state"],
            p["exclusive"],
            nft_binary=nft,
            report_listed=True,
        ),
    )


if __name__ == "__main__":
    main()
