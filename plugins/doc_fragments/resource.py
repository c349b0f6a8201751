# Copyright: wharf.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every list-taking wharf.network module shares, said once."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  state:
    description:
      - V(present) makes every listed item exist as described; V(absent) removes every listed item.
      - Removing something already gone is a success, as CNI's DEL is.
    type: str
    choices: [present, absent]
    default: present
  exclusive:
    description:
      - With O(state=present), also remove objects this collection created (and only those) that the list
        does not name, in the namespaces the list touches. This is how the topology role prunes.
    type: bool
    default: false
notes:
  - Needs root and Python 3.11 or later (Debian 12 has it) on the managed host, nothing else. The collection
    speaks rtnetlink itself; C(plugins/module_utils/_kernel/rtnl.py) says why not pyroute2.
  - Every item is validated before anything changes; all problems are reported at once.
  - Objects created by the collection are marked as its own (interface alias C(wharf.network), or a marker file
    under C(/run/wharf)); removal and O(exclusive) never touch anything else.
  - State is kept under C(/run/wharf); the environment variable C(WHARF_STATE_DIR) of the module (task keyword
    C(environment)) moves all of it, to keep labs or test runs apart on one host.
requirements:
  - Linux, root
attributes:
  check_mode:
    support: full
    description: Check mode reports exactly the changes a real run makes, from the same plan.
  diff_mode:
    support: full
    description: The diff shows each changed object before and after.
  idempotent:
    support: full
    description: A second run with the same input reports C(changed=false) and sends nothing to the kernel.
  platform:
    support: full
    platforms: posix
    description: Linux only.
"""
