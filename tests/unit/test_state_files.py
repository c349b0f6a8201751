"""The one state directory and the one atomic writer (``_kernel.files``), and the shared kernel limits."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.wharf.network.plugins.module_utils._kernel import files, limits

PROBE = """
import json
from ansible_collections.wharf.network.plugins.module_utils._dns import daemon
from ansible_collections.wharf.network.plugins.module_utils._firewall import record
from ansible_collections.wharf.network.plugins.module_utils._kernel import netns
print(json.dumps({"dns": daemon.STATE_DIR, "firewall": record.RECORD_DIR, "owned": netns.owner_mark_path("n1"),
                  "uts": netns.uts_path("n1")}))
"""


def _state_paths(environment: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != files.STATE_DIR_ENV} | environment
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def test_every_state_writer_follows_the_state_directory_setting(tmp_path):
    moved = _state_paths({files.STATE_DIR_ENV: str(tmp_path)})
    assert moved == {
        "dns": f"{tmp_path}/dns",
        "firewall": str(tmp_path),
        "owned": f"{tmp_path}/owned/netns/n1",
        "uts": f"{tmp_path}/uts/n1",
    }
    assert _state_paths({})["firewall"] == "/run/wharf"


def test_write_atomically_replaces_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "state.json"
    files.write_atomically(str(path), "one\n")
    files.write_atomically(str(path), "two\n", 0o600)
    assert files.read_file(str(path)) == "two\n"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert os.listdir(path.parent) == ["state.json"]
    assert files.read_file(str(tmp_path / "missing")) is None


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("02:42:ac:1c:00:0a", True),
        ("02:42:AC:1C:00:0A", True),
        ("02:42:ac:1c:00", False),
        ("0242ac1c000a", False),
        ("02:42:ac:1c:00:0a\n", False),
        (None, False),
        (42, False),
    ],
)
def test_one_mac_text_form_for_the_model_and_the_modules(text, valid):
    assert limits.is_mac_text(text) is valid
