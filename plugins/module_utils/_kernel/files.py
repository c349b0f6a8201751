# This file is private to the wharf.network collection: its API may change at any time.
"""Where the collection keeps its state on a host, and the one way it writes a state file.

``STATE_DIR`` is ``/run/wharf``, or ``$WHARF_STATE_DIR`` when that is set in the module's environment, so tests and
labs can keep runs apart. Every part that keeps state derives its path from it: namespace ownership marks and UTS
pins (``_kernel.netns``), the firewall record (``_firewall.record``) and the resolver's directory (``_dns.daemon``).
Two writers stay outside on purpose: the resolver program copied to the host (``_dns/server``, standard library only,
it runs without the collection) and the sandbox records on the controller (``_lab.sandbox``, loaded by path by
``bin/wharf-sandbox``); both write the same way, through a temporary file renamed over the old one.
"""

from __future__ import annotations

import os

STATE_DIR_ENV = "WHARF_STATE_DIR"
STATE_DIR = os.environ.get(STATE_DIR_ENV) or "/run/wharf"


def state_path(*parts: str) -> str:
    """A path under the state directory."""
    return os.path.join(STATE_DIR, *parts)


def read_file(path: str) -> str | None:
    """A file's text, or None when it does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def write_atomically(path: str, text: str, mode: int = 0o644) -> None:
    """Write through a temporary file in the same directory and rename it over ``path``: a reader (``ip netns
    exec`` bind-mounting the file, the resolver reloading, the next run reading its record) sees the old file or the
    new one, never half of one."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    tmp = f"{path}.wharf-{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        os.fchmod(handle.fileno(), mode)
    os.replace(tmp, path)
