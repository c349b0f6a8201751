"""Unit tests import the collection by its collection path, as Ansible does."""

from __future__ import annotations

import builtins
import sys
from pathlib import Path

import pytest

COLLECTIONS = Path(__file__).resolve().parents[2] / ".collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))


@pytest.fixture(autouse=True)
def _no_machine_sysctl_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests run in the machine's own namespace: any write to its /proc/sys is a bug, stopped here."""
    real_open = builtins.open

    def guarded_open(file, mode="r", *args, **kwargs):
        if str(file).startswith("/proc/sys") and any(flag in mode for flag in "wax+"):
            raise AssertionError(f"a unit test tried to write the machine's sysctl {file}")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
