#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: sandbox_host
short_description: Create or remove a sandbox host on the controller
version_added: 0.1.0
author:
  - wharf.network contributors (!UNKNOWN)
description:
  - A sandbox host is a long-lived process with its own network, UTS and mount namespaces that stands
    in for a machine, so demos, tests and labs never touch the controller's own network.
  - Inside it, C(/run/netns), C(/etc/netns) and C(/run/wharf) are private tmpfs mounts, C(/sys) shows the
    sandbox's network namespace, the loopback interface is up and the hostname is set.
  - Run plays inside a sandbox with the P(wharf.network.sandbox#connection) connection plugin.
  - "Runs where it is executed; use C(delegate_to: localhost) to manage the sandbox of an inventory host."
  - Removing a sandbox kills every process in it and frees every network namespace created inside it.
options:
  name:
    description:
      - Name of the sandbox host; 1 to 63 characters from V(a-z), V(0-9), V(_), V(.), V(-), starting with a
        letter or digit.
      - The P(wharf.network.sandbox#connection) connection plugin finds the sandbox by this name.
    type: str
    required: true
  hostname:
    description:
      - UTS hostname inside the sandbox. Defaults to O(name).
      - Changing it on a running sandbox sets the new hostname and keeps everything else.
    type: str
  state:
    description:
      - V(present) starts the sandbox if it is not running; a running one is kept with its contents.
      - V(absent) kills every process in the sandbox, which frees its namespaces.
    type: str
    choices: [present, absent]
    default: present
  underlay:
    description:
      - Name of a lab sandbox holding an underlay L2 segment (a bridge) that this sandbox host joins, so several
        sandbox hosts form a fleet that reaches each other as machines on one switch do. The lab is started when
        its first member joins and stopped when its last member is removed.
      - The sandbox gets the interface C(eth0) on that segment with O(underlay_address).
      - Omitted, the sandbox has no network but its loopback.
    type: str
  underlay_address:
    description:
      - The sandbox's address on the underlay, in CIDR form (V(10.77.0.1/24)). Required with O(underlay).
      - Use a private range; it exists only inside the lab and its members.
    type: str
  underlay_mtu:
    description: MTU of the underlay link.
    type: int
    default: 1500
extends_documentation_fragment:
  - action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
notes:
  - Needs root (CAP_SYS_ADMIN), util-linux C(unshare) and C(nsenter), and iproute2 on the host it runs on.
  - Records live in C(/run/wharf-sandbox) (environment variable C(WHARF_SANDBOX_RUN_DIR) overrides it).
  - The same sandboxes can be managed by hand with C(bin/wharf-sandbox).
seealso:
  - plugin: wharf.network.sandbox
    plugin_type: connection
  - name: The wharf.network.sandbox role
    description: Creates or removes the sandbox of every inventory host of a play (roles/sandbox in the collection).
    link: https://docs.ansible.com/ansible/latest/collections_guide/collections_using_playbooks.html
"""

EXAMPLES = r"""
- name: Start a sandbox host for this inventory host
  wharf.network.sandbox_host:
    name: "{{ inventory_hostname }}"
  delegate_to: localhost

- name: Start a lab machine with its own hostname
  wharf.network.sandbox_host:
    name: lab-node1
    hostname: node1.lab.example

- name: Three machines on one underlay segment (lab sandbox fleet-ul)
  wharf.network.sandbox_host:
    name: "node{{ item }}"
    underlay: fleet-ul
    underlay_address: "10.77.0.{{ item }}/24"
  loop: [1, 2, 3]

- name: Remove it, with every container namespace inside it
  wharf.network.sandbox_host:
    name: lab-node1
    state: absent
"""

RETURN = r"""
name:
  description: Name of the sandbox host.
  returned: always
  type: str
  sample: wharf-demo
hostname:
  description: Hostname inside the sandbox; null when it is absent.
  returned: always
  type: str
  sample: wharf-demo
pid:
  description:
    - Process id of the sandbox; C(nsenter -t PID -n -m -u) enters it.
    - Null when the sandbox is absent, or in check mode when it would be created.
  returned: always
  type: int
  sample: 41230
underlay:
  description: The sandbox's underlay interface (address, MTU); null without O(underlay) or when absent.
  returned: always
  type: dict
  sample: {"interface": "eth0", "address": "10.77.0.1/24", "mtu": 1500, "lab": "fleet-ul"}
"""

import ipaddress

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.wharf.network.plugins.module_utils._lab.sandbox import (
    SandboxError,
    create,
    destroy,
    get,
    join_underlay,
    leave_underlay,
    underlay_state,
    validate_hostname,
    validate_name,
)


def _check_cidr(value: str | None) -> None:
    try:
        ipaddress.ip_interface(value or "")
    except ValueError:
        raise ValueError(f"underlay_address {value!r} must be an address in CIDR form, e.g. 10.77.0.1/24") from None
    if "/" not in value:
        raise ValueError(f"underlay_address {value!r} must be an address in CIDR form, e.g. 10.77.0.1/24")


def _underlay_result(params: dict, lab: str) -> dict:
    return {"interface": "eth0", "address": params["underlay_address"], "mtu": params["underlay_mtu"], "lab": lab}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "hostname": {"type": "str"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "underlay": {"type": "str"},
            "underlay_address": {"type": "str"},
            "underlay_mtu": {"type": "int", "default": 1500},
        },
        required_by={"underlay": "underlay_address"},
        supports_check_mode=True,
    )
    name = module.params["name"]

    def run(argv: list[str]) -> tuple[int, str, str]:
        # the scripts' $1… are the shell's, not environment variables for run_command to expand
        return module.run_command(argv, expand_user_and_vars=False)

    present = module.params["state"] == "present"
    try:
        validate_name(name)
        hostname = validate_hostname(module.params["hostname"] or name)
        lab = module.params["underlay"]
        if lab is not None:
            validate_name(lab)
            _check_cidr(module.params["underlay_address"])
        host = get(name)
        before = {"state": "present", "hostname": host.hostname} if host else {"state": "absent"}
        after = {"state": "present", "hostname": hostname} if present else {"state": "absent"}
        underlay = None
        if lab is not None:
            state = underlay_state(name, run=run) if host else None
            before["underlay"] = state
            underlay = {"addresses": [module.params["underlay_address"]], "mtu": module.params["underlay_mtu"],
                        "up": True}  # fmt: skip
            after["underlay"] = underlay if present else None
        changed = before != after
        if changed and not module.check_mode:
            if present:
                host, _created = create(name, hostname, run=run)
                if lab is not None:
                    join_underlay(name, lab, module.params["underlay_address"], module.params["underlay_mtu"], run=run)
            else:
                destroy(name)
        if not present and lab is not None and not module.check_mode:
            # also after a crash left the lab behind: the last member to go stops it
            changed = leave_underlay(name, lab, run=run) or changed
    except (ValueError, SandboxError) as exc:
        module.fail_json(msg=str(exc), name=name)
    module.exit_json(
        changed=changed,
        name=name,
        hostname=hostname if present else None,
        pid=host.pid if present and host else None,
        underlay=_underlay_result(module.params, lab) if present and underlay else None,
        diff={"before": before, "after": after},
    )


if __name__ == "__main__":
    main()
