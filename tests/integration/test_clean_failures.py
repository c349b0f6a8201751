"""Failures a user can hit are clean Ansible failures: one message naming the step and the kernel's or the
program's word, never a Python traceback, and nothing changed when the failure comes before the first change."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

TOPOLOGY = {
    "networks": {"front": {"subnet": "10.71.0.0/24"}},
    "containers": {"web": {"networks": ["front"], "ports": ["8080:80"]}},
}


def test_an_nft_program_that_cannot_run_is_named_and_nothing_changes(sandbox):
    nft = sandbox.sh("command -v nft").stdout.strip()
    # the sandbox host has a private mount namespace: this hides nft from the module there only
    sandbox.sh(f"mount --bind /dev/null {nft}")
    result = sandbox.module("converge", {"topology": TOPOLOGY, "host": sandbox.name})
    assert result.failed
    message = result.result["msg"]
    # found but not executable: get_bin_path skips it, so the module names the program as `nft`
    assert message == (
        "step 'firewall': the nft program (nft) cannot be run: Permission denied (Debian: apt install nftables)"
        " (after 0 changes were applied)"
    ), message
    assert "Traceback" not in result.output
    assert not result.changed
    assert sandbox.netns() == [] and set(sandbox.links()) == {"lo"}
