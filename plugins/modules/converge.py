#!/usr/bin/python
# Copyright: wharf.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: converge
short_description: Converge this host to a whole container network topology in one call
version_added: 0.1.0
description:
  - Validates the whole topology (every error listed, nothing changed on an error), works out what this inventory
    host needs (the same function as the P(wharf.network.wharf_host_items#filter) filter) and converges it in one
    process (container namespaces, network bridges, the firewall (isolation, egress NAT, published ports), endpoints as
    veth pairs, then addresses and routes), each step observing what the one before left.
  - This is what the P(wharf.network.topology#role) role runs. One call instead of one per kind of object saves the
    Ansible start-up of each call (about 0.35 s here) and reuses the netlink sockets opened into every namespace.
  - The steps behave as M(wharf.network.netns), M(wharf.network.bridge), M(wharf.network.veth) and
    M(wharf.network.ip_addr) with the options the role needs; those modules remain for building by hand.
options:
  topology:
    description:
      - The topology, as in the role variable C(wharf_topology), with the keys C(networks), C(containers), C(state)
        and C(prune).
    type: dict
    required: true
  host:
    description:
      - The inventory hostname of this host, so containers with C(host) set to another host are left out.
    type: str
    required: true
  peers:
    description:
      - The underlay address of every host that carries the topology, this one included, by inventory hostname
        (the role builds it from the inventory variable C(wharf_underlay_address)).
      - With it, overlay networks span hosts. On each host with a container on the network, a VXLAN device on the
        network's bridge, with static FDB and neighbour entries for the other hosts and their containers, as
        M(wharf.network.overlay_vxlan) makes them; entries of hosts or containers that left are removed, and so
        is the device of a network the host no longer carries. The firewall table accepts VXLAN (UDP 4789) to this
        host's underlay address from the peers only; VXLAN to other addresses and IPv6 VXLAN are left alone.
      - A wrong underlay address (on no interface of the host) or an overlay MTU the underlay cannot carry is
        refused before anything changes.
      - A host that is not among the peers (a shared inventory) is fine as long as it has no container on an
        overlay network; it is then not on the overlay.
      - Without it (or without this host in it), overlay networks are local bridges, and VXLAN devices
        wharf.network left on the host (from an earlier run with peers) are removed.
    type: dict
  dns:
    description:
      - Also give the containers the embedded DNS as a last step, doing in this same call what
        M(wharf.network.container_dns) does (the resolver daemon started, reloaded or restarted as needed, each
        container's C(/etc/netns/NAME/resolv.conf) and C(hosts)). The role sets it, saving a second module call
        per host.
      - Its problems (a file wharf.network did not write, dnspython missing) are refused before anything changes.
    type: bool
    default: false
  resolv_conf:
    description: With O(dns), the host resolver configuration whose servers and search list the containers inherit.
    type: path
    default: /etc/resolv.conf
attributes:
  check_mode:
    support: full
    description:
      - Every step plans against what the steps before it would have made, and reports the changes a real run makes.
  diff_mode:
    support: full
    description: The diff shows each changed object before and after.
  idempotent:
    support: full
    description: A second run with the same topology reports C(changed=false) and sends nothing to the kernel.
  platform:
    support: full
    platforms: posix
    description: Linux only.
notes:
  - Needs root, Python 3.11 or later and the C(nft) program (Debian package nftables) on the managed host.
  - The firewall step is M(wharf.network.firewall) with the topology's networks and every container's C(ports)
    (published on the container's address on its first non-internal network, as Docker does), replacing what the
    table held before; when no network is left, the table is removed. It runs right after the bridges, before any
    container is connected, and sets C(net.ipv4.ip_forward=1).
author:
  - wharf.network contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Converge this host to the topology
  wharf.network.converge:
    topology: "{{ wharf_topology }}"
    host: "{{ inventory_hostname }}"
"""

RETURN = r"""
changes:
  description: One line per change made (or, in check mode, that would be made), in the order applied.
  returned: always
  type: list
  elements: str
  sample: ["create netns 'web1'", "create bridge '(host)/br-frontend'", "create veth '(host)/ve-web1-83ebf05'"]
steps:
  description: Number of changes per step (containers, networks, endpoints, addresses, removals).
  returned: success
  type: dict
  sample: {"containers": 6, "networks": 3, "endpoints": 7, "addresses": 10}
containers:
  description: Each container on this host with its endpoints, addresses and MACs (as the filter returns them).
  returned: success
  type: list
  elements: dict
remote_containers:
  description: The containers of the other hosts on the overlay networks this host carries (overlay endpoints only).
  returned: success
  type: list
  elements: dict
dns:
  description: With O(dns), the resolver's addresses, number of views and clients, and process id (as
    M(wharf.network.container_dns) returns them); empty otherwise.
  returned: success
  type: dict
publishes:
  description: Every published port of this host, with the host port a request without one got (stable across runs).
  returned: success
  type: list
  elements: dict
  sample:
    - {"host_ip": null, "published": "8080", "address": "172.28.0.10", "target": "80", "protocol": "tcp",
       "auto": false}
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.wharf.network.plugins.module_utils._converge import ConvergeResult, converge
from ansible_collections.wharf.network.plugins.module_utils._engine.errors import ValidationError, WharfError


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "topology": {"type": "dict", "required": True},
            "host": {"type": "str", "required": True},
            "peers": {"type": "dict"},
            "dns": {"type": "bool", "default": False},
            "resolv_conf": {"type": "path", "default": "/etc/resolv.conf"},
        },
        supports_check_mode=True,
    )
    result = ConvergeResult()
    try:
        # a missing nft is said by the firewall step that needs it (the error names the step and the program)
        nft = module.get_bin_path("nft") or "nft"

        def run_nft(argv: list[str], data: str | None = None) -> tuple:
            return module.run_command(argv, data=data, handle_exceptions=False)

        def run_dns(argv: list[str]) -> tuple:
            return module.run_command(argv, check_rc=False, handle_exceptions=False)

        converge(
            module.params["topology"],
            module.params["host"],
            module.check_mode,
            result,
            run_nft,
            nft,
            peers=module.params["peers"],
            dns=run_dns if module.params["dns"] else None,
            resolv_conf=module.params["resolv_conf"],
        )
    except ValidationError as exc:
        module.fail_json(
            msg="invalid topology, nothing was changed: " + "; ".join(exc.errors), errors=exc.errors, changed=False
        )
    except WharfError as exc:
        module.fail_json(msg=str(exc), changed=result.applied > 0, changes=result.changes)
    except Exception as exc:  # outside every step (e.g. no netlink socket at all): still one sentence, no traceback
        module.fail_json(
            msg=f"converge failed: {type(exc).__name__}: {exc} (after {result.applied} changes were applied)",
            changed=result.applied > 0,
            changes=result.changes,
            exception=traceback.format_exc(),
        )
    output = {
        "changed": result.changed,
        "changes": result.changes,
        "steps": result.steps,
        "containers": result.containers,
        "remote_containers": result.remote_containers,
        "publishes": result.publishes,
        "dns": result.dns,
    }
    if module._diff and result.changed:
        output["diff"] = {"before": "".join(result.before), "after": "".join(result.after)}
    module.exit_json(**output)


if __name__ == "__main__":
    main()
