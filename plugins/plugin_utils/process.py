# This file is private to the wharf.network collection: its API may change at any time without notice.
"""The command runner of controller-side code: the connection plugin's callers, ``bin/wharf-sandbox``, tests and
benchmarks.

Modules run commands through ``AnsibleModule.run_command``; code that runs on the controller without a module has
no such thing, so the sandbox helpers (``module_utils/_lab/sandbox.py``) take the runner as an argument and this is
the one every non-module caller passes. Standard library only: ``bin/wharf-sandbox`` loads it by path, without
Ansible.
"""

from __future__ import annotations

import subprocess


def run_process(argv: list[str]) -> tuple[int, str, str]:
    """Run ``argv`` (no shell) with stdin from /dev/null; return (exit code, stdout, stderr) as text.

    The same contract as ``AnsibleModule.run_command(argv)``: a missing program is exit code 127 with the reason on
    stderr, not an exception, so callers turn every failure into their own message.
    """
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    except OSError as exc:
        return 127, "", f"{argv[0]}: {exc.strerror or exc}"
    return done.returncode, done.stdout, done.stderr
