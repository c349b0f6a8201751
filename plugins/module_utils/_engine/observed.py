# This file is private to the wharf.network collection: its API may change at any time.
"""Observed state as its own layer: what the kernel holds, as facts, and what every plan does with them.

A resource's `observe` returns facts (frozen, no desired value in them); its plan is the difference of the
specs and those facts, made with the three pieces every kind shares:

- the guard: an object found under a wanted name that is of another kind, or not the collection's, is refused;
- the prune: with `exclusive`, objects the collection owns that no spec wants are removed;
- the field diff: of the fields a spec manages, those whose observed value differs, as before/after.

Facts are plain values all the way down, so `as_json` turns any of them (or an observation) into what a module
returns.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Hashable, Iterable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Generic, Protocol, TypeVar

from ansible_collections.wharf.network.plugins.module_utils._engine.plan import Plan
from ansible_collections.wharf.network.plugins.module_utils._kernel import namespace as nl

NOT_OURS = "was not created by wharf.network"


class Facts(Protocol):
    """What every facts type offers the shared pieces: whether the collection made the object, and its label."""

    @property
    def owned(self) -> bool: ...

    @property
    def label(self) -> str: ...


F = TypeVar("F", bound=Facts)


@dataclass(frozen=True)
class InterfaceFacts:
    """An interface as observed: what every link kind has. `owned`: it carries the collection's owner mark."""

    name: str
    namespace: str | None
    index: int
    owned: bool

    @property
    def label(self) -> str:
        return f"{nl.ns_label(self.namespace)}/{self.name}"


@dataclass(frozen=True)
class LinkObservation(Generic[F]):
    """The links of one namespace as one resource sees them: facts of the links of its kind by name, and the
    kind (None: a plain link) of every other link, by name (a name held by something else)."""

    namespace: str | None
    facts: Mapping[str, F]
    others: Mapping[str, str | None]

    def holds(self, name: str) -> bool:
        """Whether any link of the namespace has this name."""
        return name in self.facts or name in self.others

    def guard(self, path: str, name: str, state: str, not_kind: str) -> str | None:
        """The refusal of a link named `name` this resource must not touch (`not_kind` says why one of another
        kind is refused, e.g. 'is not a bridge'), or None when there is none or it is ours."""
        subject = f"interface '{name}' in namespace {nl.ns_label(self.namespace)}"
        if name in self.others:
            return guard(path, subject, state, owned=False, wrong_kind=not_kind)
        facts = self.facts.get(name)
        return None if facts is None else guard(path, subject, state, owned=facts.owned)


def as_json(value: Any) -> Any:
    """Facts (or an observation holding them) as JSON values: a dataclass as a dict of its fields, a mapping as a
    dict with text keys, a tuple, list or set as a list (a set sorted), anything else as it is."""
    if is_dataclass(value) and not isinstance(value, type):
        return {item.name: as_json(getattr(value, item.name)) for item in fields(value)}
    if isinstance(value, Mapping):
        return {str(key): as_json(item) for key, item in value.items()}
    if isinstance(value, (set, frozenset)):
        return [as_json(item) for item in sorted(value)]
    if isinstance(value, (tuple, list)):
        return [as_json(item) for item in value]
    return value


def split_links(
    namespace: str | None, links: Iterable[Any], kind: str, facts_of: Callable[[Any], F]
) -> LinkObservation[F]:
    """A LinkObservation from a namespace's links (anything with `name` and `kind`), in the kernel's order."""
    facts: dict[str, F] = {}
    others: dict[str, str | None] = {}
    for link in links:
        if link.kind == kind:
            facts[link.name] = facts_of(link)
        else:
            others[link.name] = link.kind
    return LinkObservation(namespace, facts, others)


def refusal(path: str, subject: str, what: str, state: str) -> str:
    """The words of a refusal: `path: subject exists but what; refusing to manage|remove it`."""
    verb = "manage" if state == "present" else "remove"
    return f"{path}: {subject} exists but {what}; refusing to {verb} it"


def guard(path: str, subject: str, state: str, owned: bool, wrong_kind: str | None = None) -> str | None:
    """The ownership guard: the refusal for an object found where a spec points that is of another kind
    (`wrong_kind` says so) or not the collection's, or None when it is the collection's to manage or remove."""
    if wrong_kind is not None:
        return refusal(path, subject, wrong_kind, state)
    if not owned:
        return refusal(path, subject, NOT_OURS, state)
    return None


def unwanted(facts: Iterable[F], wanted: Container[Hashable], key: Callable[[F], Hashable]) -> list[F]:
    """The prune selection: objects the collection owns whose key no spec wants, in the order observed."""
    return [item for item in facts if item.owned and key(item) not in wanted]


def plan_removals(
    plan: Plan,
    kind: str,
    facts: Iterable[F],
    before: Callable[[F], dict[str, Any]],
    remover: Callable[[F], Callable[[], None]],
) -> None:
    """One delete change per object: `before(facts)` is what the diff shows, `remover(facts)` the apply step."""
    for item in facts:
        plan.add(kind, item.label, "delete", before(item), None, remover(item))


def prune(
    plan: Plan,
    kind: str,
    facts: Iterable[F],
    wanted: Container[Hashable],
    key: Callable[[F], Hashable],
    before: Callable[[F], dict[str, Any]],
    remover: Callable[[F], Callable[[], None]],
) -> list[F]:
    """Plan removal of every owned object whose key is not wanted; returns them."""
    removed = unwanted(facts, wanted, key)
    plan_removals(plan, kind, removed, before, remover)
    return removed


def field_diff(have: Mapping[str, Any], wanted: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(before, after) of the wanted fields whose observed value differs, keyed alike; both empty when none
    does. A field `have` lacks counts as None."""
    after = {key: value for key, value in wanted.items() if have.get(key) != value}
    return {key: have.get(key) for key in after}, after
