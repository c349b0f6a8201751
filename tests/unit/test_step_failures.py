"""Every failure a converge can meet is one sentence naming the step, the object and the kernel's word."""

from __future__ import annotations

import errno

import pytest

from ansible_collections.wharf.network.plugins.module_utils._engine.errors import ValidationError, WharfError
from ansible_collections.wharf.network.plugins.module_utils._engine.plan import Plan
from ansible_collections.wharf.network.plugins.module_utils._engine.steps import (
    ConvergeResult,
    run_step,
    step_failures,
)
from ansible_collections.wharf.network.plugins.module_utils._firewall.nft import Nft


class FakeResource:
    """A resource whose apply fails the way the kernel or the host can make it fail."""

    def __init__(self, failure: BaseException, at: str = "apply"):
        self.failure = failure
        self.at = at

    def plan(self) -> Plan:
        if self.at == "plan":
            raise self.failure
        plan = Plan()
        plan.add("veth", "ve-web1-0", "create", None, {"peer": "eth0"}, lambda: None)

        def fail() -> None:
            raise self.failure

        plan.add("veth", "ve-web2-0", "create", None, {"peer": "eth0"}, fail)
        return plan


def failed_step(failure: BaseException, at: str = "apply") -> str:
    result = ConvergeResult(applied=3)
    with pytest.raises(WharfError) as caught, step_failures("endpoints", result):
        run_step("endpoints", FakeResource(failure, at), False, result)
    return str(caught.value)


def test_a_kernel_refusal_names_the_step_the_object_and_the_kernels_word():
    message = failed_step(OSError(errno.EEXIST, "File exists"))
    assert message.startswith("step 'endpoints': veth 've-web2-0': create failed: already exists")
    assert "(after 4 changes were applied)" in message  # 3 before this step, 1 of it


def test_a_namespace_that_vanished_mid_run_is_named_with_its_path():
    message = failed_step(FileNotFoundError(errno.ENOENT, "No such file or directory", "/run/netns/web1"), "plan")
    assert message == (
        "step 'endpoints': reading the kernel's state failed:"
        " [Errno 2] No such file or directory: '/run/netns/web1' (after 3 changes were applied)"
    )


def test_an_unexpected_error_is_still_one_sentence_with_the_step():
    result = ConvergeResult()
    with pytest.raises(WharfError) as caught, step_failures("addresses", result):
        raise KeyError("eth9")
    assert str(caught.value) == (
        "step 'addresses': unexpected KeyError: 'eth9' (a bug in wharf.network; after 0 changes were applied)"
    )


def test_an_os_error_outside_plan_and_apply_names_the_file():
    result = ConvergeResult(applied=1)
    with pytest.raises(WharfError) as caught, step_failures("containers", result):
        raise PermissionError(errno.EACCES, "Permission denied", "/run/netns")
    assert str(caught.value) == "step 'containers': /run/netns: Permission denied (after 1 changes were applied)"


def test_validation_before_any_change_stays_a_refusal_of_the_whole_topology():
    with pytest.raises(ValidationError), step_failures("networks", ConvergeResult()):
        raise ValidationError(["bridge 'br-x' exists but was not created by wharf.network"])
    with pytest.raises(WharfError) as caught, step_failures("networks", ConvergeResult(applied=2)):
        raise ValidationError(["bridge 'br-x' exists but was not created by wharf.network"])
    assert not isinstance(caught.value, ValidationError)
    assert str(caught.value).startswith("step 'networks' refused: bridge 'br-x'")


def test_a_missing_nft_program_is_named_with_the_package_to_install():
    def run(argv: list[str], data: str | None = None) -> tuple:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", argv[0])

    with pytest.raises(WharfError) as caught:
        Nft(run, "/nonexistent/nft").tables()
    assert str(caught.value) == (
        "the nft program (/nonexistent/nft) cannot be run: No such file or directory (Debian: apt install nftables)"
    )
