"""The parts of the sandbox engine that need no namespaces: names, records, stale-record cleanup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / ".collections"))

from ansible_collections.wharf.network.plugins.module_utils._lab import sandbox as _sandbox
from ansible_collections.wharf.network.plugins.plugin_utils.process import run_process


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(_sandbox.RUN_DIR_ENV, str(tmp_path))
    return tmp_path


def write_record(run_dir: Path, name: str, pid: int, **fields: object) -> None:
    record = {"name": name, "pid": pid, "hostname": name, **fields}
    (run_dir / f"{name}.json").write_text(json.dumps(record))
    (run_dir / f"{name}.pid").write_text(f"{pid}\n")


@pytest.mark.parametrize("name", ["a", "wharf-demo", "node1.lab", "x_y", "0", "a" * 63])
def test_valid_names(name: str) -> None:
    assert _sandbox.validate_name(name) == name


@pytest.mark.parametrize("name", ["", "-a", ".a", "_a", "A", "a b", "a/b", "a" * 64, "ä", None])
def test_invalid_names_say_what_is_allowed(name: object) -> None:
    with pytest.raises(ValueError, match=r"sandbox name .* is invalid: use 1 to 63 characters"):
        _sandbox.validate_name(name)


@pytest.mark.parametrize("hostname", ["web1", "Node-1.example.org", "h" * 64])
def test_valid_hostnames(hostname: str) -> None:
    assert _sandbox.validate_hostname(hostname) == hostname


@pytest.mark.parametrize("hostname", ["", "-x", "a b", "h" * 65, "a;reboot"])
def test_invalid_hostnames(hostname: str) -> None:
    with pytest.raises(ValueError, match="sandbox hostname"):
        _sandbox.validate_hostname(hostname)


def test_bad_name_is_refused_before_anything_starts(run_dir: Path) -> None:
    with pytest.raises(ValueError, match="is invalid"):
        _sandbox.create("Bad Name", run=run_process)
    with pytest.raises(ValueError, match="is invalid"):
        _sandbox.create("good", hostname="bad host", run=run_process)
    assert list(run_dir.iterdir()) == []


def test_run_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_sandbox.RUN_DIR_ENV, raising=False)
    assert _sandbox.run_dir() == _sandbox.RUN_DIR == "/run/wharf-sandbox"
    monkeypatch.setenv(_sandbox.RUN_DIR_ENV, "/tmp/elsewhere")
    assert _sandbox.run_dir() == "/tmp/elsewhere"


def test_nsenter_argv_enters_net_mount_and_uts() -> None:
    host = _sandbox.SandboxHost(name="n", pid=1234, hostname="n")
    assert host.nsenter_argv() == ["nsenter", "-t", "1234", "-n", "-m", "-u", "--"]


def test_record_of_a_dead_process_is_stale_and_removed(run_dir: Path) -> None:
    dead_pid = int(subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True).stdout)
    write_record(run_dir, "gone", dead_pid)
    assert _sandbox.get("gone") is None
    assert list(run_dir.iterdir()) == []


def test_recycled_pid_is_not_the_sandbox(run_dir: Path) -> None:
    # Our own pid is alive but holds other namespaces than the record says: a reused pid.
    mntns = _sandbox.ns_inode(os.getpid(), "mnt")
    write_record(run_dir, "reused", os.getpid(), mntns_inode=mntns + 1, netns_inode=None)
    assert _sandbox.get("reused") is None
    assert not (run_dir / "reused.json").exists()
    assert not (run_dir / "reused.pid").exists()


def test_live_record_is_listed(run_dir: Path) -> None:
    write_record(
        run_dir,
        "alive",
        os.getpid(),
        mntns_inode=_sandbox.ns_inode(os.getpid(), "mnt"),
        netns_inode=_sandbox.ns_inode(os.getpid(), "net"),
    )
    (run_dir / "corrupt.json").write_text("{not json")
    (run_dir / "orphan.pid").write_text("1\n")
    assert [host.name for host in _sandbox.list_hosts()] == ["alive"]
    assert _sandbox.get("alive").pid == os.getpid()
    # Unreadable records are removed; a pidfile alone is kept until its name is asked for.
    assert not (run_dir / "corrupt.json").exists()
    assert _sandbox.get("orphan") is None
    assert not (run_dir / "orphan.pid").exists()


def test_nothing_recorded_means_nothing_to_destroy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_sandbox.RUN_DIR_ENV, str(tmp_path / "never-created"))
    assert _sandbox.list_hosts() == []
    assert _sandbox.get("x") is None
    assert _sandbox.destroy("x") is False
    assert _sandbox.destroy_prefix("x") == []
    assert not (tmp_path / "never-created").exists()


def test_empty_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="prefix must not be empty"):
        _sandbox.destroy_prefix("")
