#!/usr/bin/python
# Copyright: wharf.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: firewall
short_description: Isolation, egress NAT and published ports of wharf networks, in one nftables table
version_added: 0.1.0
description:
  - Renders the collection's whole nftables table C(inet wharf) from the networks and publishes and swaps it in
    with one C(nft -f) transaction, never rule by rule, never with C(flush ruleset), never touching another table.
  - Containers on one network reach each other (O(networks[].icc=false) allows only published ports); containers on
    different networks cannot reach each other; an internal network has no egress and no ingress; other networks
    reach the outside with masquerade; nothing from outside reaches a container address unless it is published
    (no direct routing, moby#48724).
  - A published port is DNATed for the host's local addresses, from outside, from the host itself (127.0.0.1
    too) and from containers (hairpin); the container sees the real client address of outside clients. A port
    published on 127.0.0.1 is dropped, before NAT, when it arrives on any interface but C(lo) (moby#45610).
  - An unchanged desired state sends nothing to the kernel. A table deleted or edited outside the collection, or
    lost to a flushed ruleset, is reported (RV(firewall.drift), a C(restore) change) and restored.
  - Your own rules go in table C(inet wharf-user), chain C(forward) (priority -10, before ours). The module
    creates that table when it is missing and never changes it afterwards. A C(drop) there is final; an
    C(accept) only ends that chain, so it narrows what wharf allows but cannot open isolation.
  - The module needs the C(nft) program. IP forwarding (C(net.ipv4.ip_forward), bridge C(forwarding)) is not set
    here.
extends_documentation_fragment:
  - wharf.network.resource
options:
  networks:
    description:
      - The wharf networks (bridges) whose traffic the table governs, keyed by O(networks[].bridge).
      - Omitted, the networks applied earlier stay as they are (for example when only publishes change).
    type: list
    elements: dict
    suboptions:
      bridge:
        description: The network's bridge.
        type: str
        required: true
      subnet:
        description: The network's IPv4 subnet.
        type: str
        required: true
      internal:
        description: No traffic leaves or enters the network; no masquerade.
        type: bool
        default: false
      icc:
        description:
          - V(false) blocks traffic between containers of this network, except through published ports.
          - Needs the C(br_netfilter) kernel module (bridged traffic passes the firewall only then); the module
            sets C(net.bridge.bridge-nf-call-iptables=1), as Docker does.
        type: bool
        default: true
      masquerade:
        description: SNAT to the outgoing address for traffic leaving through an interface that is not a wharf bridge.
        type: bool
        default: true
      gateway:
        description:
          - The network's gateway address, where the embedded resolver (M(wharf.network.container_dns)) answers it.
          - DNS (port 53) from the network to its gateway is then never DNATed, even when a publish takes port 53 on
            every address, and the resolver's own sockets there do not count as a host process holding the port.
        type: str
  publishes:
    description:
      - Published ports, keyed by host address, protocol and port (a publish without a host port by its target).
      - Omitted, the publishes applied earlier stay as they are. See M(wharf.network.port_publish).
    type: list
    elements: dict
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
        description:
          - Host port or range (C(9000-9002)). Omitted, a free port is derived from a hash of the publish, so it is
            the same on every run while nothing else takes it.
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
  - Two publishes of the same host address, port and protocol (0.0.0.0 clashes with every address), a publish of a
    port a host process listens on, and a publish towards an internal network fail before any change.
  - When a UDP mapping changes, conntrack entries of that host port are deleted (over ctnetlink), so clients do
    not keep the old NAT binding.
  - The record of what was applied is C(/run/wharf/firewall.json); with C(/run/wharf/firewall.nft), the text sent.
  - With O(state=absent) and neither O(networks) nor O(publishes), the table is removed, and C(inet wharf-user)
    with it if it holds no rule.
seealso:
  - module: wharf.network.port_publish
  - module: wharf.network.bridge
author:
  - wharf.network contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Two isolated networks, one internal, and a published port
  wharf.network.firewall:
    exclusive: true
    networks:
      - { bridge: br-front, subnet: 172.28.0.0/24 }
      - { bridge: br-back, subnet: 172.29.0.0/24, internal: true }
    publishes:
      - { address: 172.28.0.10, port: "8080:80" }
      - { address: 172.28.0.10, port: "127.0.0.1:5432:5432/tcp" }
      - { address: 172.28.0.11, target: 53, protocol: udp }

- name: Drop everything to published ports that does not come from the office (your rule, kept across runs)
  ansible.builtin.command: >-
    nft add rule inet wharf-user forward ct status dnat ip saddr != 198.51.100.0/24 drop

- name: Remove the table
  wharf.network.firewall:
    state: absent
"""

RETURN = r"""
changes:
  description: One line per change made (or, in check mode, that would be made), in order.
  returned: always
  type: list
  elements: str
  sample:
    - "create publish '0.0.0.0:8080/tcp'"
    - "update nftables table 'inet wharf'"
    - "restore nftables table 'inet wharf': missing: deleted, or the ruleset was flushed"
firewall:
  description: The table as applied.
  returned: success
  type: dict
  contains:
    table:
      description: The collection's table.
      type: str
      sample: inet wharf
    user_table:
      description: The table for your own rules.
      type: str
      sample: inet wharf-user
    drift:
      description: Why the table had to be restored (deleted, edited, flushed), or null.
      type: str
    networks:
      description: The networks the table governs.
      type: list
      elements: dict
    publishes:
      description: Every publish, with the host port a free-port request got.
      type: list
      elements: dict
      sample:
        - {"host_ip": null, "published": "8080", "address": "172.28.0.10", "target": "80", "protocol": "tcp",
           "auto": false}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.wharf.network.plugins.module_utils._engine.module import COMMON_ARGUMENT_SPEC, run_resource
from ansible_collections.wharf.network.plugins.module_utils._firewall.resource import PUBLISH_OPTIONS, FirewallResource

NETWORK_OPTIONS = {
    "bridge": {"type": "str", "required": True},
    "subnet": {"type": "str", "required": True},
    "internal": {"type": "bool", "default": False},
    "icc": {"type": "bool", "default": True},
    "masquerade": {"type": "bool", "default": True},
    "gateway": {"type": "str"},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "networks": {"type": "list", "elements": "dict", "options": NETWORK_OPTIONS},
            "publishes": {"type": "list", "elements": "dict", "options": PUBLISH_OPTIONS},
            **COMMON_ARGUMENT_SPEC,
        },
        supports_check_mode=True,
    )
    p = module.params
    nft = module.get_bin_path("nft", required=True)
    run_resource(
        module,
        "firewall",
        lambda sockets: FirewallResource(
            lambda argv, data: module.run_command(argv, data=data),
            p["networks"],
            p["publishes"],
            p["state"],
            p["exclusive"],
            nft_binary=nft,
        ),
    )


if __name__ == "__main__":
    main()
