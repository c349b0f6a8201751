"""Sandbox hosts on the real kernel: what they isolate, what destroying them frees, and the connection plugin.

Every sandbox is named `wtsb<hex>-N` and destroyed in a fixture finalizer; a crashed run is cleaned
with `bin/wharf-sandbox destroy --prefix wtsb`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / ".collections"))

from ansible_collections.wharf.network.plugins.module_utils._lab import sandbox as _sandbox
from ansible_collections.wharf.network.plugins.plugin_utils.process import run_process

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="sandbox hosts need root"),
]

PREFIX = f"wtsb{secrets.token_hex(3)}"
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module", autouse=True)
def no_sandbox_left() -> Iterator[None]:
    """Whatever a failing test left behind goes with the module."""
    yield
    _sandbox.destroy_prefix(PREFIX)


@pytest.fixture
def new_name() -> Iterator[Callable[[], str]]:
    """Fresh sandbox names; every sandbox made under them is destroyed when the test ends."""
    names: list[str] = []

    def make() -> str:
        names.append(f"{PREFIX}-{secrets.token_hex(2)}")
        return names[-1]

    yield make
    for name in names:
        _sandbox.destroy(name)


def inside(host: _sandbox.SandboxHost, command: str, check: bool = True) -> str:
    """Run a shell command inside the sandbox and return its stdout."""
    proc = subprocess.run(
        [*host.nsenter_argv(), "/bin/sh", "-c", command], capture_output=True, text=True, timeout=30, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"`{command}` in {host.name} failed ({proc.returncode}): {proc.stderr}")
    return proc.stdout


def holders(inode: int, kinds: tuple[str, ...] = ("mnt", "net", "uts")) -> set[int]:
    """Pids of processes that are in namespace ``inode`` or have it bound in their mount table."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if any(_sandbox.ns_inode(pid, kind) == inode for kind in kinds):
            found.add(int(pid))
        with contextlib.suppress(OSError):
            if f":[{inode}]" in Path(f"/proc/{pid}/mountinfo").read_text():
                found.add(int(pid))
    return found


def machine_netns() -> list[str]:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout.split()


def ansible(*args: str, playbook: bool = False, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ansible (or ansible-playbook) from the checkout, so its ansible.cfg finds the collection."""
    command = [str(VENV_BIN / ("ansible-playbook" if playbook else "ansible")), *args]
    return subprocess.run(
        command, cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=180, check=False
    )


def adhoc(name: str, module: str, module_args: str) -> dict[str, Any]:
    """Run one module inside sandbox ``name`` through the connection plugin; its result, saved by the tree callback."""
    with tempfile.TemporaryDirectory(prefix="wtsb-tree-") as tree:
        proc = ansible(
            *("all", "-i", f"{name},", "-c", "wharf.network.sandbox", "-m", module, "-a", module_args),
            *("-e", f"ansible_python_interpreter={sys.executable}"),
            env={
                "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
                "ANSIBLE_CALLBACKS_ENABLED": "tree",
                "ANSIBLE_CALLBACK_TREE_DIR": tree,
            },
        )
        saved = Path(tree, name)
        assert saved.exists(), proc.stdout + proc.stderr
        return json.loads(saved.read_text())


def test_create_gives_a_fresh_machine_and_is_idempotent(new_name: Callable[[], str]) -> None:
    name = new_name()
    host, changed = _sandbox.create(name, run=run_process)
    assert changed
    assert inside(host, "hostname").strip() == name
    assert [line.split()[:2] for line in inside(host, "ip -br link").splitlines()] == [["lo", "UNKNOWN"]]
    assert inside(host, "ls /sys/class/net").split() == ["lo"]
    assert inside(host, "stat -f -c %T /run/netns /etc/netns /run/wharf").split() == ["tmpfs"] * 3
    assert inside(host, "ls -A /run/netns /etc/netns /run/wharf").split() == [
        "/etc/netns:",
        "/run/netns:",
        "/run/wharf:",
    ]
    assert host.netns_inode != _sandbox.ns_inode("self", "net")
    assert _sandbox.get(name) == host
    assert host in _sandbox.list_hosts()

    again, changed = _sandbox.create(name, run=run_process)
    assert (again, changed) == (host, False)

    renamed, changed = _sandbox.create(name, hostname="wtsb-renamed.example", run=run_process)
    assert changed
    assert renamed.pid == host.pid
    assert inside(host, "hostname").strip() == "wtsb-renamed.example"


def test_container_namespaces_stay_inside_and_die_with_the_sandbox(new_name: Callable[[], str]) -> None:
    sandbox, _created = _sandbox.create(new_name(), run=run_process)
    witness, _created = _sandbox.create(new_name(), run=run_process)
    # A container c1 inside the sandbox, with a process in it started the way people do (ip netns exec,
    # which gives it a mount namespace of its own), a daemon that left the process tree, and a veth
    # whose other end sits in the witness sandbox: it vanishes only when the kernel frees c1.
    inside(
        sandbox,
        f"ip netns add c1 && ip link add wtsbv0 netns c1 type veth peer name wtsbv1 netns {witness.pid}"
        " && (setsid ip netns exec c1 sleep 1000 </dev/null >/dev/null 2>&1 &)"
        " && (setsid sleep 1001 </dev/null >/dev/null 2>&1 &)",
    )
    c1 = int(inside(sandbox, "stat -L -c %i /run/netns/c1"))
    assert "c1" not in machine_netns()
    assert not os.path.exists("/run/netns/c1")
    assert inside(witness, "ip netns list") == ""
    assert "wtsbv1" in inside(witness, "ip -br link")
    deadline = time.monotonic() + 5
    while not holders(c1, kinds=("net",)):
        assert time.monotonic() < deadline, "the process in c1 never started"
        time.sleep(0.05)
    # Pids, not inodes, are compared afterwards: the kernel hands a freed namespace's inode number
    # to the next namespace created anywhere, such as a test running in parallel.
    held = holders(c1) | holders(sandbox.netns_inode) | holders(sandbox.mntns_inode)
    assert len(held) >= 3  # the sandbox, the process in c1, the daemon

    assert _sandbox.destroy(sandbox.name) is True

    assert [pid for pid in held if _sandbox.ns_inode(pid, "mnt") is not None] == []
    deadline = time.monotonic() + 10
    while "wtsbv1" in inside(witness, "ip -br link"):
        assert time.monotonic() < deadline, "the kernel never freed c1: its veth peer is still in the witness"
        time.sleep(0.05)
    assert witness.is_alive()
    assert _sandbox.get(sandbox.name) is None
    assert not any(p.name.startswith(sandbox.name + ".") for p in Path(_sandbox.run_dir()).iterdir())
    assert _sandbox.destroy(sandbox.name) is False


def test_two_sandboxes_see_nothing_of_each_other(new_name: Callable[[], str]) -> None:
    one, _created = _sandbox.create(new_name(), run=run_process)
    two, _created = _sandbox.create(new_name(), run=run_process)
    inside(one, "ip netns add c1 && ip link add wtsbd0 type bridge && mkdir /etc/netns/c1 && echo one > /run/wharf/x")
    assert inside(two, "ip netns list") == ""
    assert "wtsbd0" not in inside(two, "ip -br link")
    assert inside(two, "ls -A /etc/netns /run/wharf").split() == ["/etc/netns:", "/run/wharf:"]
    assert inside(two, "hostname").strip() == two.name
    assert not os.path.exists("/etc/netns/c1") and not os.path.exists("/run/wharf/x")
    assert "wtsbd0" not in subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=False).stdout


def test_crashed_sandbox_is_recreated(new_name: Callable[[], str]) -> None:
    name = new_name()
    first, _created = _sandbox.create(name, run=run_process)
    os.kill(first.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while first.is_alive():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert _sandbox.get(name) is None
    second, changed = _sandbox.create(name, run=run_process)
    assert changed and second.pid != first.pid and second.is_alive()


def test_destroy_prefix_removes_only_matching_sandboxes(new_name: Callable[[], str]) -> None:
    kept, _created = _sandbox.create(new_name(), run=run_process)
    doomed = [_sandbox.create(f"{PREFIX}.doomed{n}", run=run_process)[0] for n in range(2)]
    assert _sandbox.destroy_prefix(f"{PREFIX}.doomed") == [host.name for host in doomed]
    assert not any(host.is_alive() for host in doomed)
    assert kept.is_alive()


def test_connection_plugin_runs_commands_and_moves_files_inside(new_name: Callable[[], str], tmp_path: Path) -> None:
    host, _created = _sandbox.create(new_name(), run=run_process)
    result = adhoc(host.name, "command", "hostname")
    assert result["stdout"] == host.name
    assert adhoc(host.name, "command", "ip -br link")["stdout"].split()[0] == "lo"

    assert adhoc(host.name, "file", "path=/etc/netns/wtsbc1 state=directory")["changed"]
    source = tmp_path / "hosts"
    source.write_text("192.0.2.7 wtsb-peer\n")
    assert adhoc(host.name, "copy", f"src={source} dest=/etc/netns/wtsbc1/hosts")["changed"]
    assert inside(host, "cat /etc/netns/wtsbc1/hosts") == source.read_text()
    assert not os.path.exists("/etc/netns/wtsbc1")

    fetched = adhoc(host.name, "fetch", f"src=/etc/netns/wtsbc1/hosts dest={tmp_path}/fetched flat=true")
    assert fetched["changed"], fetched
    assert (tmp_path / "fetched").read_text() == source.read_text()


def test_connection_plugin_says_how_to_start_a_missing_sandbox(new_name: Callable[[], str]) -> None:
    name = new_name()
    result = adhoc(name, "ping", "")
    assert result["unreachable"]
    assert f"sandbox host '{name}' is not running" in result["msg"]
    assert f"bin/wharf-sandbox create {name}" in result["msg"]


def test_role_creates_and_removes_the_inventory_hosts_sandbox(new_name: Callable[[], str]) -> None:
    name = new_name()
    inventory = ("-i", f"{name},", "playbooks/sandbox.yml")

    def stats(*extra: str) -> dict[str, int]:
        proc = ansible(*inventory, *extra, playbook=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        recap = re.search(rf"^{re.escape(name)}\s+:(.*)$", proc.stdout, re.MULTILINE)
        return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", recap.group(1))}

    assert stats()["changed"] == 1
    host = _sandbox.get(name)
    assert host is not None and host.is_alive()
    assert stats()["changed"] == 0
    assert stats("-e", "wharf_sandbox_state=absent", "--check")["changed"] == 1
    assert host.is_alive()
    assert stats("-e", "wharf_sandbox_state=absent")["changed"] == 1
    assert not host.is_alive()
    assert stats("-e", "wharf_sandbox_state=absent")["changed"] == 0


def test_failed_setup_is_reported_and_leaves_nothing(
    new_name: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = new_name()
    monkeypatch.setattr(_sandbox, "_SETUP_SCRIPT", "echo 'mount: wtsb refused' >&2; exit 3")
    with pytest.raises(_sandbox.SandboxError, match=f"sandbox host '{name}' failed to start: mount: wtsb refused"):
        _sandbox.create(name, run=run_process)
    assert _sandbox.get(name) is None
    assert not any(p.name.startswith(name + ".") for p in Path(_sandbox.run_dir()).iterdir())
