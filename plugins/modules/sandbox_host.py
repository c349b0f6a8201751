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
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.wharf.network.plugins.module_utils._sandbox import (
    SandboxError,
    create,
    destroy,
    get,
    validate_hostname,
    validate_name,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "hostname": {"type": "str"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        },
        supports_check_mode=True,
    )
    name = module.params["name"]
    present = module.params["state"] == "present"
    try:
        validate_name(name)
        hostname = validate_hostname(module.params["hostname"] or name)
        host = get(name)
        before = {"state": "present", "hostname": host.hostname} if host else {"state": "absent"}
        after = {"state": "present", "hostname": hostname} if present else {"state": "absent"}
        changed = before != after
        if changed and not module.check_mode:
            if present:
                host, _created = create(name, hostname)
            else:
                destroy(name)
    except (ValueError, SandboxError) as exc:
        module.fail_json(msg=str(exc), name=name)
    module.exit_json(
        changed=changed,
        name=name,
        hostname=hostname if present else None,
        pid=host.pid if present and host else None,
        diff={"before": before, "after": after},
    )


if __name__ == "__main__":
    main()
