# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: sandbox
short_description: Run tasks inside a wharf sandbox host on the controller
version_added: 0.1.0
author:
  - wharf.network contributors (!UNKNOWN)
description:
  - Runs commands, modules and file transfers inside a sandbox host, a process on the controller with
    its own network, UTS and mount namespaces that stands in for a machine. Create one with the
    M(wharf.network.sandbox_host) module, the C(wharf.network.sandbox) role (C(playbooks/sandbox.yml))
    or C(bin/wharf-sandbox create NAME).
  - Everything the play does stays in the sandbox; the network namespaces, links, addresses, nftables
    tables and the files under C(/run/netns), C(/etc/netns) and C(/run/wharf) of the controller itself
    are never touched.
  - Works like M(ansible.builtin.local) (pipelining, become), with each command and file transfer
    wrapped in C(nsenter -t PID -n -m -u), so files go to the sandbox's view of the file system.
options:
  sandbox_name:
    description:
      - Name of the sandbox host to run in.
      - Defaults to the host's address, that is C(ansible_host) or else the inventory hostname.
    type: str
    vars:
      - name: ansible_host
      - name: wharf_sandbox_name
  become_success_timeout:
    description:
      - Number of seconds to wait for become to succeed when enabled, as for M(ansible.builtin.local).
      - The default will be used if the configured value is less than 1.
    type: int
    default: 10
    vars:
      - name: ansible_local_become_success_timeout
  become_strip_preamble:
    description:
      - Strip internal become output preceding command execution, as for M(ansible.builtin.local).
    type: bool
    default: true
    vars:
      - name: ansible_local_become_strip_preamble
extends_documentation_fragment:
  - connection_pipelining
notes:
  - The sandbox runs on the controller, so the controller's Python can serve as the interpreter; set
    C(ansible_python_interpreter) to C({{ ansible_playbook_python }}). Any Python 3.11 or later works, as the
    modules need nothing beyond the standard library.
  - Commands start in C(/), as nsenter sets the working directory when it enters the mount namespace.
  - Needs root on the controller and util-linux C(nsenter).
seealso:
  - module: wharf.network.sandbox_host
"""

EXAMPLES = r"""
# inventory: a host that is a sandbox on the controller
# all:
#   hosts:
#     wharf-demo:
#       ansible_connection: wharf.network.sandbox
#       ansible_python_interpreter: "{{ ansible_playbook_python }}"

# ad hoc, naming the sandbox directly
# ansible -i 'lab1,' -c wharf.network.sandbox all -m command -a 'ip -br link'
"""

import os
import shlex
import subprocess
from typing import NoReturn

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection.local import Connection as LocalConnection
from ansible.utils.display import Display

from ansible_collections.wharf.network.plugins.module_utils._lab.sandbox import SandboxHost, get

display = Display()


class Connection(LocalConnection):
    """The local connection, with every command and file transfer entered into a sandbox host."""

    transport = "wharf.network.sandbox"

    _host: SandboxHost | None = None

    def _connect(self) -> Connection:
        if not self._connected:
            name = self.get_option("sandbox_name") or self._play_context.remote_addr
            try:
                self._host = get(name)
            except ValueError as exc:
                raise AnsibleConnectionFailure(str(exc)) from exc
            if self._host is None:
                self._not_running(name)
            display.vvv(f"ESTABLISH SANDBOX CONNECTION TO {name} (pid {self._host.pid})", host=name)
        return super()._connect()

    def _target(self) -> SandboxHost:
        """The sandbox to enter, checked before every command so a sandbox destroyed mid-play is reported as such."""
        self._connect()
        if not self._host.is_alive():
            self._not_running(self._host.name)
        return self._host

    @staticmethod
    def _not_running(name: str) -> NoReturn:
        raise AnsibleConnectionFailure(
            f"sandbox host '{name}' is not running; create it with `ansible-playbook playbooks/sandbox.yml`"
            f" or `bin/wharf-sandbox create {name}`"
        )

    def exec_command(self, cmd: str, in_data: bytes | None = None, sudoable: bool = True) -> tuple[int, bytes, bytes]:
        """Run ``cmd`` as local does, but through ``nsenter`` into the sandbox.

        local runs its command string with ``/bin/sh -c``; replacing that string by
        ``exec nsenter ... -- /bin/sh -c CMD`` keeps its pipelining, become prompts and pty handling as they are.
        """
        argv = [*self._target().nsenter_argv(), "/bin/sh", "-c", to_text(cmd)]
        return super().exec_command("exec " + shlex.join(argv), in_data=in_data, sudoable=sudoable)

    def put_file(self, in_path: str, out_path: str) -> None:
        """Copy a controller file to ``out_path`` as the sandbox sees it (its /etc/netns and /run/wharf are private)."""
        host = self._target()
        display.vvv(f"PUT {in_path} TO {out_path}", host=host.name)
        if not os.path.exists(to_bytes(in_path, errors="surrogate_or_strict")):
            raise AnsibleFileNotFound(f"file or module does not exist: {in_path}")
        with open(to_bytes(in_path, errors="surrogate_or_strict"), "rb") as source:
            self._run_inside(
                host, ["/bin/sh", "-c", 'cat > "$1"', "sh", out_path], stdin=source, stdout=subprocess.DEVNULL
            )

    def fetch_file(self, in_path: str, out_path: str) -> None:
        """Copy ``in_path`` as seen inside the sandbox to ``out_path`` on the controller."""
        host = self._target()
        display.vvv(f"FETCH {in_path} TO {out_path}", host=host.name)
        target = to_bytes(out_path, errors="surrogate_or_strict")
        try:
            with open(target, "wb") as destination:
                self._run_inside(host, ["cat", "--", in_path], stdin=None, stdout=destination)
        except AnsibleError:
            os.unlink(target)
            raise

    def _run_inside(self, host: SandboxHost, argv: list[str], stdin: object, stdout: object) -> None:
        """Run one file-transfer command in the sandbox; a failure becomes an AnsibleError with its stderr."""
        result = subprocess.run(
            host.nsenter_argv() + argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, check=False
        )
        if result.returncode != 0:
            raise AnsibleError(
                f"file transfer in sandbox host '{host.name}' failed ({shlex.join(argv)}):"
                f" {to_text(result.stderr).strip()}"
            )
