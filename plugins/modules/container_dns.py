#!/usr/bin/python
# Copyright: wharf.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: container_dns
short_description: Embedded DNS for the containers of this host, with per-container resolv.conf and hosts
version_added: 0.1.0
description:
  - Gives every container of this host Docker's name service. A resolver daemon (one per host) listens on UDP and
    TCP port 53 of 127.0.0.11 inside each container's own network namespace, as Docker's embedded resolver does,
    so the view is the container's whatever source address it uses, and nothing listens where the host's networks
    (or a machine outside) could reach it. Each container gets the
    names, hostnames and aliases of every container on every network it shares with the asker (several containers
    with one alias give all their addresses, in rotating order; containers on other hosts count on an overlay
    network), NXDOMAIN for the other names of the topology, everything else forwarded to the upstream servers
    (the container's C(dns), else the host's resolv.conf), except for a container whose every network is
    C(internal), for which nothing is ever forwarded. Forwarding and TCP connections are shared fairly between the
    containers, so one flooding container cannot starve another.
  - Writes C(/etc/netns/NAME/resolv.conf) (C(nameserver 127.0.0.11), C(search) and C(options) from the topology
    or the host, C(ndots:0) as Docker unless set) and C(/etc/netns/NAME/hosts) (localhost, C(extra_hosts) with the
    C(host-gateway) keyword, the container's own name), which C(ip netns exec NAME) mounts over C(/etc).
  - The resolver's state goes to C(/run/wharf/dns/state.json), written atomically; a running resolver reloads it
    on SIGHUP without a restart. Where systemd is PID 1 the resolver runs as the unit C(wharf-dns.service),
    elsewhere as a supervised daemon with a pidfile. The resolver runs with the module's Python interpreter.
  - This is what the P(wharf.network.topology#role) role runs after M(wharf.network.converge).
options:
  topology:
    description:
      - The topology, as in the role variable C(wharf_topology).
    type: dict
    required: true
  host:
    description:
      - The inventory hostname of this host, so containers with C(host) set to another host are left out (but
        still resolvable from this host on a shared overlay network).
    type: str
    required: true
  resolv_conf:
    description:
      - The host's resolver configuration, for the upstream servers, search domains and options.
    type: path
    default: /etc/resolv.conf
attributes:
  check_mode:
    support: full
    description: Reports the files it would write and whether the resolver would start, reload or restart.
  diff_mode:
    support: full
    description: The diff shows each file before and after, and the resolver's state.
  idempotent:
    support: full
    description: A second run with the same topology reports C(changed=false) and does not signal the resolver.
  platform:
    support: full
    platforms: posix
    description: Linux only.
notes:
  - Needs root, Python 3.11 or later and dnspython 2.3 or later (Debian C(python3-dnspython)) on the managed host.
  - Files in C(/etc/netns) that wharf.network did not write are never replaced (the task fails naming them).
author:
  - wharf.network contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Name service for the containers of this host
  wharf.network.container_dns:
    topology: "{{ wharf_topology }}"
    host: "{{ inventory_hostname }}"
"""

RETURN = r"""
changes:
  description: One line per change made (or, in check mode, that would be made), in order.
  returned: always
  type: list
  elements: str
  sample:
    - "create file '/etc/netns/web1/hosts'"
    - "write file '/run/wharf/dns/state.json'"
    - "reload resolver 'wharf-dns'"
listen:
  description: The containers (namespaces) the resolver answers in, on 127.0.0.11 (empty when no container of this
    host needs it).
  returned: success
  type: list
  elements: str
  sample: ["api", "web1"]
views:
  description: How many distinct views (sets of networks of an asker) the resolver holds.
  returned: success
  type: int
clients:
  description: How many containers the resolver knows as askers.
  returned: success
  type: int
pid:
  description: The resolver's supervisor (or systemd main) process id, when it runs.
  returned: success
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.wharf.network.plugins.module_utils._dns.daemon import DnsResult, dns_converge
from ansible_collections.wharf.network.plugins.module_utils._engine.errors import ValidationError, WharfError


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "topology": {"type": "dict", "required": True},
            "host": {"type": "str", "required": True},
            "resolv_conf": {"type": "path", "default": "/etc/resolv.conf"},
        },
        supports_check_mode=True,
    )
    result = DnsResult()
    try:
        dns_converge(
            module.params["topology"],
            module.params["host"],
            module.check_mode,
            module.params["resolv_conf"],
            result=result,
            run=lambda argv: module.run_command(argv, check_rc=False),
        )
    except ValidationError as exc:
        module.fail_json(msg="nothing was changed: " + "; ".join(exc.errors), errors=exc.errors, changed=False)
    except (WharfError, OSError) as exc:
        module.fail_json(msg=str(exc), changed=result.plan.applied > 0, changes=result.plan.summary())
    output = {
        "changed": result.plan.changed,
        "changes": result.plan.summary(),
        "listen": result.listen,
        "views": result.views,
        "clients": result.clients,
        "pid": result.pid,
    }
    if module._diff and result.plan.changed:
        output["diff"] = result.plan.diff()
    module.exit_json(**output)


if __name__ == "__main__":
    main()
