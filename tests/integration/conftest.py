"""Fixtures for tests on real kernel objects.

Every test runs inside a sandbox host of its own (a process with private network, UTS and mount
namespaces): the machine's own namespace is never changed. Sandbox names carry the prefix
`wt<pid hex>` so a crashed run can be cleaned with `bin/wharf-sandbox destroy --prefix wt`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / ".collections"
sys.path.insert(0, str(COLLECTIONS))

from ansible_collections.wharf.network.plugins.module_utils._lab import sandbox as _sandbox
from ansible_collections.wharf.network.plugins.plugin_utils.process import run_process

VENV_BIN = Path(sys.executable).parent
TEST_PREFIX = "wt"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="integration tests need root for real namespaces")
        for item in items:
            if "integration" in str(item.fspath):
                item.add_marker(skip)


def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "PATH": f"{VENV_BIN}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}",
        }
    )
    return env


@dataclass
class ModuleResult:
    rc: int
    result: dict[str, Any]
    output: str

    @property
    def changed(self) -> bool:
        return bool(self.result.get("changed"))

    @property
    def failed(self) -> bool:
        return bool(self.result.get("failed")) or self.rc != 0


class Sandbox:
    """A sandbox host for one test, with ways to run commands and modules inside it."""

    def __init__(self, name: str):
        self.name = name
        self.host, _created = _sandbox.create(name, run=run_process)

    def sh(self, command: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        argv = [*self.host.nsenter_argv(), "/bin/sh", "-c", command]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"`{command}` failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
        return proc

    def links(self, namespace: str | None = None) -> dict[str, dict[str, Any]]:
        prefix = f"ip -n {shlex.quote(namespace)} " if namespace else "ip "
        out = self.sh(prefix + "-j -d link show").stdout
        return {link["ifname"]: link for link in json.loads(out)}

    def netns(self) -> list[str]:
        return sorted(line.split()[0] for line in self.sh("ip netns list").stdout.splitlines() if line.strip())

    def module(
        self, name: str, args: dict[str, Any], check: bool = False, diff: bool = False, timeout: float = 120
    ) -> ModuleResult:
        """Run wharf.network.NAME inside the sandbox through the sandbox connection plugin."""
        proc, results = _run_module(["-i", f"{self.name},"], name, args, check, diff, timeout)
        return ModuleResult(proc.returncode, results.get(self.name, {}), proc.stdout + proc.stderr)

    def destroy(self) -> None:
        _sandbox.destroy(self.name)


def _run_module(
    inventory: list[str], name: str, args: dict[str, Any], check: bool, diff: bool, timeout: float
) -> tuple[subprocess.CompletedProcess[str], dict[str, dict[str, Any]]]:
    """One ad hoc `ansible all` run of wharf.network.NAME through the sandbox connection plugin, with
    `inventory` as its -i arguments; returns the process and each inventory host's result (tree callback)."""
    with tempfile.TemporaryDirectory(prefix="wharf-tree-") as tree:
        env = ansible_env()
        env.update(
            {
                "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
                "ANSIBLE_CALLBACKS_ENABLED": "tree",
                "ANSIBLE_CALLBACK_TREE_DIR": tree,
            }
        )
        argv = [
            str(VENV_BIN / "ansible"),
            "all",
            *inventory,
            "-c",
            "wharf.network.sandbox",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "-m",
            f"wharf.network.{name}",
            "-a",
            json.dumps(args),
        ]
        if check:
            argv.append("--check")
        if diff:
            # callbacks drop the diff from results below verbosity 3
            argv.extend(["--diff", "-vvv"])
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout, check=False)
        results = {path.name: json.loads(path.read_text()) for path in Path(tree).iterdir() if path.is_file()}
    return proc, results


def module_on(
    hosts: dict[str, Sandbox],
    name: str,
    args: dict[str, Any],
    check: bool = False,
    diff: bool = False,
    timeout: float = 180,
) -> dict[str, ModuleResult]:
    """Run wharf.network.NAME on several sandbox hosts in one `ansible` run, each under the inventory name
    given here (`node1`...), so a topology's `host:` fields and the results read as with the real inventory,
    and `args` may use host variables (`"{{ inventory_hostname }}"`). One run, not one per host: the hosts
    converge in parallel forks and the controller starts once."""
    with tempfile.TemporaryDirectory(prefix="wharf-inventory-") as directory:
        inventory = Path(directory) / "hosts.yml"
        members = {alias: {"wharf_sandbox_name": host.name} for alias, host in hosts.items()}
        inventory.write_text(json.dumps({"all": {"hosts": members}}))  # JSON is YAML
        proc, results = _run_module(["-i", str(inventory)], name, args, check, diff, timeout)
    output = proc.stdout + proc.stderr
    return {alias: ModuleResult(proc.returncode, results.get(alias, {}), output) for alias in hosts}


def fresh_sandbox_name() -> str:
    """A sandbox name no other test (or xdist worker) uses, under the cleanable prefix."""
    return f"{TEST_PREFIX}{os.getpid():x}-{uuid.uuid4().hex[:6]}"


@contextlib.contextmanager
def built_in_a_sandbox(make: Any) -> Any:
    """For module-scoped labs: a fresh sandbox host, ``make(sandbox)`` built in it, the host destroyed whatever
    happens (also when building fails)."""
    sandbox = Sandbox(fresh_sandbox_name())
    try:
        lab = make(sandbox)
        lab.build()
        yield lab
    finally:
        sandbox.destroy()


@pytest.fixture
def sandbox() -> Any:
    host = Sandbox(fresh_sandbox_name())
    try:
        yield host
    finally:
        host.destroy()


@pytest.fixture
def make_sandbox() -> Any:
    """For tests that need several sandbox hosts."""
    made: list[Sandbox] = []

    def make() -> Sandbox:
        host = Sandbox(fresh_sandbox_name())
        made.append(host)
        return host

    try:
        yield make
    finally:
        for host in made:
            host.destroy()


class Fleet:
    """Sandbox hosts on one underlay segment held by a lab sandbox, as `playbooks/sandbox.yml` builds a fleet.

    Member i (from 1) has `eth0` with 10.77.0.i/24; all names carry the test prefix.
    """

    def __init__(self) -> None:
        self.prefix = f"{TEST_PREFIX}{os.getpid():x}-{uuid.uuid4().hex[:4]}"
        self.lab = f"{self.prefix}-ul"
        self.members: list[Sandbox] = []

    def add(self, index: int | None = None, mtu: int = 1500) -> Sandbox:
        index = index if index is not None else len(self.members) + 1
        host = Sandbox(f"{self.prefix}-n{index}")
        self.members.append(host)
        _sandbox.join_underlay(host.name, self.lab, f"{self.underlay(index)}/24", mtu, run=run_process)
        return host

    @staticmethod
    def underlay(index: int) -> str:
        return f"10.77.0.{index}"

    def remove(self, host: Sandbox) -> None:
        self.members.remove(host)
        host.destroy()
        _sandbox.leave_underlay(host.name, self.lab, run=run_process)

    def destroy(self) -> None:
        for host in list(self.members):
            with contextlib.suppress(Exception):
                host.destroy()
        _sandbox.destroy(self.lab)


@pytest.fixture
def fleet() -> Any:
    made = Fleet()
    try:
        yield made
    finally:
        made.destroy()
