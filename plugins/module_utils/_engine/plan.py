# This file is private to the wharf.network collection: its API may change at any time.
"""Desired state vs observed state → an ordered list of changes.

Check mode and a real run share this list: check mode reports it, a real run reports it and
then calls each change's `apply` in order. What check mode predicts is therefore exactly what
a real run does, and the diff (before/after) is built from the same list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.wharf.network.plugins.module_utils._engine.errors import WharfError, kernel_error


@dataclass
class Change:
    """One thing a run changes on the host.

    `before` is None for a creation and `after` is None for a removal; for an update both hold
    only the fields that differ (plus identifying fields).
    """

    kind: str
    name: str
    action: str  # create | update | delete
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    apply: Callable[[], None] = field(repr=False, compare=False)

    @property
    def subject(self) -> str:
        return f"{self.kind} '{self.name}'"

    def describe(self) -> str:
        if self.action == "update" and self.before is not None and self.after is not None:
            fields = [k for k in self.after if self.before.get(k) != self.after.get(k)]
            return f"update {self.subject}: " + ", ".join(
                f"{k} {self.before.get(k)!r} -> {self.after.get(k)!r}" for k in fields
            )
        return f"{self.action} {self.subject}"


@dataclass
class Plan:
    """The ordered changes of one module run."""

    changes: list[Change] = field(default_factory=list)
    applied: int = 0  # how many changes `apply` carried out, also when it stopped on an error

    def add(
        self,
        kind: str,
        name: str,
        action: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        apply: Callable[[], None],
    ) -> None:
        self.changes.append(Change(kind, name, action, before, after, apply))

    def extend(self, other: Plan) -> None:
        self.changes.extend(other.changes)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def apply(self) -> None:
        """Carry out every change in order; the first failure stops the run with a named error."""
        for change in self.changes:
            try:
                change.apply()
                self.applied += 1
            except WharfError:
                raise
            except Exception as exc:  # kernel errors come as OSError or NetlinkError
                raise kernel_error(change.subject, change.action, exc) from exc

    def summary(self) -> list[str]:
        return [change.describe() for change in self.changes]

    def diff(self) -> dict[str, str]:
        """Ansible's diff: one YAML-ish text per side, keyed by the changed object."""
        before_lines: list[str] = []
        after_lines: list[str] = []
        for change in self.changes:
            key = f"{change.kind} {change.name}"
            before_lines.extend(_render(key, change.before))
            after_lines.extend(_render(key, change.after))
        return {"before": "\n".join(before_lines) + "\n", "after": "\n".join(after_lines) + "\n"}


def _render(key: str, state: dict[str, Any] | None) -> list[str]:
    if state is None:
        return [f"{key}: absent"]
    lines = [f"{key}:"]
    for name in sorted(state):
        lines.append(f"  {name}: {state[name]}")
    return lines
