# This file is private to the wharf.network collection: its API may change at any time.
"""Running a converge's steps: one resource each, planned then applied, with what was done kept step by step.

A step that fails after earlier steps changed the host says so (how many changes were applied), so the user knows
the host is half-way and a rerun completes it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.wharf.network.plugins.module_utils._engine.errors import ValidationError, WharfError
from ansible_collections.wharf.network.plugins.module_utils._engine.plan import Plan
from ansible_collections.wharf.network.plugins.module_utils._kernel.namespace import NamespaceSockets


@dataclass
class ConvergeResult:
    """What a converge did (or, in check mode, would do), step by step."""

    changes: list[str] = field(default_factory=list)
    steps: dict[str, int] = field(default_factory=dict)
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    containers: list[dict[str, Any]] = field(default_factory=list)
    remote_containers: list[dict[str, Any]] = field(default_factory=list)
    dns: dict[str, Any] = field(default_factory=dict)  # the embedded DNS step's summary, when it ran
    publishes: list[dict[str, Any]] = field(default_factory=list)
    applied: int = 0  # changes really made so far (0 in check mode)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def record(self, step: str, plan: Plan) -> None:
        self.steps[step] = len(plan.changes)
        self.changes.extend(plan.summary())
        if plan.changed:
            diff = plan.diff()
            self.before.append(diff["before"])
            self.after.append(diff["after"])


# (step name, a callable building the resource from the run's sockets)
Step = tuple[str, Callable[[NamespaceSockets], Any]]


@contextlib.contextmanager
def step_failures(name: str, result: ConvergeResult) -> Iterator[None]:
    """Turn anything a step raises into a WharfError naming the step, and how many changes the run applied before
    it, so the user sees where the host stands (a rerun completes a half-done converge).

    A ValidationError before any change stays one (nothing was changed: the whole topology is refused); after a
    change it is a refusal of this step. OSError (the kernel, a program that is missing, a namespace that vanished
    mid-run) carries the kernel's word. Anything else is a bug of the collection, still said in one sentence."""
    try:
        yield
    except ValidationError as exc:
        if not result.applied:
            raise
        # a conflict only this step could see (e.g. a foreign link with a wanted name): the steps
        # before it did change the host, and the user must be told so
        raise WharfError(
            f"step '{name}' refused: {'; '.join(exc.errors)} (after {result.applied} changes were applied)"
        ) from None
    except StepError:
        raise
    except WharfError as exc:
        raise StepError(f"step '{name}': {exc} (after {result.applied} changes were applied)") from exc
    except OSError as exc:
        raise StepError(f"step '{name}': {_os_words(exc)} (after {result.applied} changes were applied)") from exc
    except Exception as exc:
        raise StepError(
            f"step '{name}': unexpected {type(exc).__name__}: {exc} (a bug in wharf.network;"
            f" after {result.applied} changes were applied)"
        ) from exc


class StepError(WharfError):
    """A failure already worded with its step."""


def _os_words(exc: OSError) -> str:
    """An OSError as a person reads it: what failed on which file or program, and the kernel's word."""
    words = exc.strerror or str(exc) or type(exc).__name__
    target = exc.filename if exc.filename is not None else None
    return f"{target}: {words}" if target else words


def run_step(name: str, resource: Any, check_mode: bool, result: ConvergeResult) -> None:
    """Plan one step, record it, and (not in check mode) apply it."""
    try:
        plan = resource.plan()
    except OSError as exc:
        raise StepError(
            f"step '{name}': reading the kernel's state failed: {exc} (after {result.applied} changes were applied)"
        ) from exc
    result.record(name, plan)
    if not check_mode:
        try:
            plan.apply()
        finally:
            result.applied += plan.applied
