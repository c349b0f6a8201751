"""The shared pieces of the observed-state layer: the guard, the prune selection and the field diff."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass
from types import SimpleNamespace

import pytest

from ansible_collections.wharf.network.plugins.module_utils._engine import observed
from ansible_collections.wharf.network.plugins.module_utils._engine.plan import Plan
from ansible_collections.wharf.network.plugins.module_utils._kernel.bridge import BridgeFacts, _fields


def bridge(name: str, namespace: str | None = None, owned: bool = True, mtu: int = 1500, **kw) -> BridgeFacts:
    fields = {"mac": "02:42:00:00:00:01", "stp": False, "vlan_filtering": False, "up": True, **kw}
    return BridgeFacts(name, namespace, 7, owned, mtu, **fields)


def test_facts_are_frozen_and_labelled_by_namespace():
    facts = bridge("br0", "lab")
    assert facts.label == "lab/br0"
    assert bridge("br0").label == "(host)/br0"
    with pytest.raises(FrozenInstanceError):
        facts.mtu = 9000  # type: ignore[misc]


def test_field_diff_keeps_only_the_wanted_fields_that_differ():
    have = _fields(bridge("br0", mtu=1500, stp=True))
    before, after = observed.field_diff(have, {"mtu": 1400, "stp": True, "up": True})
    assert before == {"mtu": 1500}
    assert after == {"mtu": 1400}


def test_field_diff_of_a_field_never_observed_is_from_none():
    before, after = observed.field_diff({"mtu": 1500}, {"forwarding": True, "mtu": 1500})
    assert (before, after) == ({"forwarding": None}, {"forwarding": True})


def test_field_diff_of_equal_facts_is_empty():
    have = _fields(bridge("br0"))
    assert observed.field_diff(have, dict(have)) == ({}, {})


def test_field_diff_compares_lists_by_value_and_order():
    before, after = observed.field_diff({"fdb": ["a", "b"]}, {"fdb": ["b", "a"]})
    assert before == {"fdb": ["a", "b"]} and after == {"fdb": ["b", "a"]}


def test_guard_refuses_a_link_of_another_kind_with_the_wanted_name():
    have = observed.LinkObservation("lab", {}, {"eth0": "veth"})
    assert have.guard("bridges[0].name", "eth0", "present", "is not a bridge") == (
        "bridges[0].name: interface 'eth0' in namespace lab exists but is not a bridge; refusing to manage it"
    )


def test_guard_refuses_a_link_of_the_kind_not_made_by_the_collection():
    have = observed.LinkObservation(None, {"br0": bridge("br0", owned=False)}, {})
    assert have.guard("bridges[3].name", "br0", "absent", "is not a bridge") == (
        "bridges[3].name: interface 'br0' in namespace (host) exists but was not created by wharf.network;"
        " refusing to remove it"
    )


def test_guard_lets_ours_and_missing_names_through():
    have = observed.LinkObservation(None, {"br0": bridge("br0")}, {"lo": None})
    assert have.guard("bridges[0].name", "br0", "present", "is not a bridge") is None
    assert have.guard("bridges[0].name", "br9", "present", "is not a bridge") is None
    assert have.holds("lo") and have.holds("br0") and not have.holds("br9")


def test_guard_of_a_namespace_words_it_as_before():
    refused = observed.guard("namespaces[1].name", "namespace 'web'", "present", owned=False)
    assert refused == (
        "namespaces[1].name: namespace 'web' exists but was not created by wharf.network; refusing to manage it"
    )
    assert observed.guard("namespaces[1].name", "namespace 'web'", "present", owned=True) is None


def test_split_links_sorts_links_by_kind_in_the_kernels_order():
    links = [
        SimpleNamespace(name="lo", kind=None),
        SimpleNamespace(name="br1", kind="bridge"),
        SimpleNamespace(name="v0", kind="veth"),
        SimpleNamespace(name="br0", kind="bridge"),
    ]
    have = observed.split_links("lab", links, "bridge", lambda link: bridge(link.name, "lab"))
    assert list(have.facts) == ["br1", "br0"]
    assert have.others == {"lo": None, "v0": "veth"}


def test_prune_selects_only_owned_objects_no_spec_wants():
    facts = [bridge("br-a"), bridge("br-b"), bridge("foreign", owned=False), bridge("br-c", "lab")]
    wanted = {(None, "br-a")}
    chosen = observed.unwanted(facts, wanted, key=lambda f: (f.namespace, f.name))
    assert [f.label for f in chosen] == ["(host)/br-b", "lab/br-c"]


def test_prune_plans_one_delete_per_object_with_its_facts_as_before():
    removed: list[str] = []
    plan = Plan()
    pruned = observed.prune(
        plan,
        "bridge",
        [bridge("br-a"), bridge("br-b", mtu=1400)],
        {(None, "br-a")},
        lambda f: (f.namespace, f.name),
        _fields,
        lambda f: lambda: removed.append(f.name),
    )
    assert [f.name for f in pruned] == ["br-b"]
    assert plan.summary() == ["delete bridge '(host)/br-b'"]
    change = plan.changes[0]
    assert change.after is None and change.before is not None and change.before["mtu"] == 1400
    plan.apply()
    assert removed == ["br-b"]


@dataclass(frozen=True)
class Named:
    name: str
    owned: bool

    @property
    def label(self) -> str:
        return self.name


def test_prune_works_on_any_facts_with_owned_and_label():
    plan = Plan()
    observed.prune(
        plan,
        "netns",
        [Named("a", True), Named("b", True), Named("c", False)],
        {"a"},
        lambda f: f.name,
        lambda _f: {"exists": True},
        lambda _f: lambda: None,
    )
    assert plan.summary() == ["delete netns 'b'"]
    assert plan.diff() == {"before": "netns b:\n  exists: True\n", "after": "netns b: absent\n"}


def test_as_json_turns_facts_and_observations_into_plain_values():
    have = observed.LinkObservation("lab", {"br0": bridge("br0", "lab")}, {"lo": None})
    assert observed.as_json(have) == {
        "namespace": "lab",
        "facts": {
            "br0": {
                "name": "br0",
                "namespace": "lab",
                "index": 7,
                "owned": True,
                "mtu": 1500,
                "mac": "02:42:00:00:00:01",
                "stp": False,
                "vlan_filtering": False,
                "up": True,
                "forwarding": None,
            }
        },
        "others": {"lo": None},
    }
    assert observed.as_json({1: ("a", "b"), "s": frozenset({"y", "x"})}) == {"1": ["a", "b"], "s": ["x", "y"]}
