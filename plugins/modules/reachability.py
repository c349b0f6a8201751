#!/usr/bin/python
# Copyright: wharf.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: reachability
short_description: Measure who reaches whom with real packets, and report it
version_added: 0.1.0
description:
  - Sends ICMP echo requests from inside named network namespaces to addresses and reports which were answered,
    next to what was expected. Changes nothing on the host.
  - Given O(containers) (the C(containers) list of the P(wharf.network.wharf_host_items#filter) filter), it probes every
    container's addresses from every other container and expects an answer exactly when the two share that network.
  - All probes run at once from one process (a raw ICMP socket per source namespace), so a matrix of many probes
    takes about one O(timeout).
options:
  containers:
    description: Container summaries to build the full matrix from.
    type: list
    elements: dict
  remote_containers:
    description:
      - Containers of other hosts (the C(remote_containers) that M(wharf.network.converge) returns), probed as
        targets only, over the overlay networks they share with O(containers).
    type: list
    elements: dict
    default: []
  publishes:
    description:
      - Published ports to list in the report, as the P(wharf.network.converge#module) module returns them
        (C(publishes)). Listed only, not probed.
    type: list
    elements: dict
    default: []
  probes:
    description: Explicit probes, used in addition to those built from O(containers).
    type: list
    elements: dict
    default: []
    suboptions:
      source:
        description: Named namespace to send from.
        type: str
        required: true
      destination:
        description: IPv4 address to ping.
        type: str
        required: true
      expected:
        description: Whether an answer is expected. Omitted means no expectation.
        type: bool
      label:
        description: How the probe is shown in the report, as C(SOURCE -> COLUMN).
        type: str
  timeout:
    description: Seconds to wait for answers (each of two attempts).
    type: float
    default: 0.5
  fail_on_mismatch:
    description: Fail when a measured result differs from the expected one.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Probing changes nothing, so it runs in check mode too.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
  idempotent:
    support: full
    description: Never changes anything.
  platform:
    support: full
    platforms: posix
    description: Linux only (network namespaces, raw ICMP sockets).
author:
  - wharf.network contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Measure the reachability matrix of this host's containers
  wharf.network.reachability:
    containers: "{{ (wharf_topology | wharf.network.wharf_host_items(inventory_hostname)).containers }}"
    fail_on_mismatch: true
  register: wharf_reach

- name: Show it
  ansible.builtin.debug:
    msg: "{{ wharf_reach.report | join('\n') }}"

- name: One explicit probe
  wharf.network.reachability:
    probes:
      - source: web1
        destination: 192.0.2.11
        expected: true
"""

RETURN = r"""
results:
  description: One entry per probe.
  returned: always
  type: list
  elements: dict
  sample: [{"source": "web1", "destination": "192.0.2.11", "expected": true, "reachable": true, "ok": true,
            "label": "web1 -> web2.front", "error": null}]
mismatches:
  description: Number of probes whose measured result differs from the expected one.
  returned: always
  type: int
report:
  description: The container table and the expected/measured matrix, as lines of text.
  returned: always
  type: list
  elements: str
"""

import dataclasses

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.wharf.network.plugins.module_utils._lab.probe import Probe, run_probes
from ansible_collections.wharf.network.plugins.module_utils._lab.report import expected_probes, render


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "containers": {"type": "list", "elements": "dict"},
            "remote_containers": {"type": "list", "elements": "dict", "default": []},
            "probes": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "source": {"type": "str", "required": True},
                    "destination": {"type": "str", "required": True},
                    "expected": {"type": "bool"},
                    "label": {"type": "str"},
                },
            },
            "publishes": {"type": "list", "elements": "dict", "default": []},
            "timeout": {"type": "float", "default": 0.5},
            "fail_on_mismatch": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    containers = module.params["containers"] or []
    wanted = expected_probes(containers, module.params["remote_containers"]) + [
        {**p, "label": p.get("label") or f"{p['source']} -> {p['destination']}"} for p in module.params["probes"]
    ]
    probes = [Probe(p["source"], p["destination"], p.get("expected"), p["label"]) for p in wanted]
    try:
        run_probes(probes, timeout=module.params["timeout"])
    except OSError as exc:
        module.fail_json(msg=f"reachability: could not probe: {exc}")
    results = [{**dataclasses.asdict(p), "ok": p.ok} for p in probes]
    mismatches = sum(1 for p in probes if not p.ok)
    report = render(containers, results, module.params["publishes"])
    result = {"changed": False, "results": results, "mismatches": mismatches, "report": report}
    if mismatches and module.params["fail_on_mismatch"]:
        module.fail_json(msg=f"{mismatches} reachability probes differ from what the topology expects", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
