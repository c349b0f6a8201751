"""Named namespaces as observed facts, and the plan as the difference of the specs and those facts."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError
from types import SimpleNamespace

import pytest

from ansible_collections.wharf.network.plugins.module_utils._engine.errors import ValidationError
from ansible_collections.wharf.network.plugins.module_utils._engine.observed import as_json
from ansible_collections.wharf.network.plugins.module_utils._kernel import namespace as nl
from ansible_collections.wharf.network.plugins.module_utils._kernel import netns, sysctl
from ansible_collections.wharf.network.plugins.module_utils._kernel.rtnl import IFF_UP


class Host:
    """Named namespaces by name: inode, mark (None: not the collection's), loopback, hostname, sysctls."""

    def __init__(self, directory):
        self.directory = directory
        self.namespaces = {
            "web": {"inode": 11, "mark": (11, None), "lo": True, "hostname": "web", "sysctls": {"net.a": "1"}},
            "db": {"inode": 12, "mark": (12, None), "lo": False, "hostname": None, "sysctls": {}},
            "side": {"inode": 11, "mark": (11, "web"), "lo": True, "hostname": None, "sysctls": {}},
            "old": {"inode": 13, "mark": (13, None), "lo": True, "hostname": "old", "sysctls": {}},
            "theirs": {"inode": 14, "mark": None, "lo": True, "hostname": None, "sysctls": {}},
            "reused": {"inode": 15, "mark": (99, None), "lo": True, "hostname": None, "sysctls": {}},
        }
        self.read: list[str] = []
        for name in self.namespaces:  # the bind mounts' files: a second name's target is looked for
            (directory / name).touch()

    def path(self, name):
        return str(self.directory / name)

    def name_of(self, path):
        return path.rsplit("/", 1)[1]

    def link(self, name):
        return SimpleNamespace(flags=IFF_UP if self.namespaces[name]["lo"] else 0)

    def sysctls(self, name, keys):
        self.read.append(name)
        return {key: self.namespaces[name]["sysctls"].get(key) for key in keys}


@pytest.fixture
def host(monkeypatch, tmp_path):
    fake = Host(tmp_path)
    monkeypatch.setattr(nl, "netns_exists", lambda name: name in fake.namespaces)
    monkeypatch.setattr(nl, "list_netns", lambda: list(fake.namespaces))
    monkeypatch.setattr(nl, "netns_path", fake.path)
    monkeypatch.setattr(netns, "read_mark", lambda name: fake.namespaces[name]["mark"])
    monkeypatch.setattr(netns, "_inode", lambda path: fake.namespaces.get(fake.name_of(path), {}).get("inode", 0))
    monkeypatch.setattr(netns, "_read_hostname", lambda name: fake.namespaces[name]["hostname"])
    monkeypatch.setattr(sysctl, "read", fake.sysctls)
    return fake


def sockets(host):
    return SimpleNamespace(get=lambda name: SimpleNamespace(link=lambda index: host.link(name)))


def test_observe_looks_inside_only_the_collections_own_namespaces(host):
    web = netns.observe(sockets(host), "web", inside=True, hostname=True, sysctls=["net.a", "net.b"])
    assert web == netns.NetnsFacts("web", True, 11, None, True, "web", {"net.a": "1", "net.b": None})
    assert web.label == "web"
    with pytest.raises(FrozenInstanceError):
        web.hostname = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        web.sysctls["net.a"] = "0"  # type: ignore[index]
    assert netns.observe(sockets(host), "theirs", inside=True) == netns.NetnsFacts("theirs", False, 14)
    assert netns.observe(sockets(host), "reused", inside=True) == netns.NetnsFacts("reused", False, 15)
    assert netns.observe(sockets(host), "side", inside=True) == netns.NetnsFacts("side", True, 11, "web")
    assert netns.observe(sockets(host), "nowhere") is None
    assert host.read == ["web"]
    data = as_json(web)
    assert json.loads(json.dumps(data)) == data and data["sysctls"] == {"net.a": "1", "net.b": None}


def plan_of(host, items, state="present", exclusive=False):
    resource = netns.NetnsResource(sockets(host), items, state, exclusive)
    return resource, resource.plan()


def test_facts_that_match_the_spec_plan_nothing(host):
    items = [{"name": "web", "hostname": "web", "sysctls": {"net.a": 1}}, {"name": "side", "share_with": "web"}]
    assert plan_of(host, items)[1].changes == []


def test_what_differs_inside_is_an_update_of_those_fields(host):
    plan = plan_of(host, [{"name": "web", "hostname": "www", "sysctls": {"net.a": 0}}, {"name": "db"}])[1]
    web, db = plan.changes
    assert (web.before, web.after) == (
        {"hostname": "web", "sysctls": {"net.a": "1"}},
        {"hostname": "www", "sysctls": {"net.a": "0"}},
    )
    assert (db.before, db.after) == ({"loopback": "down"}, {"loopback": "up"})


def test_a_second_name_of_another_namespace_is_rebound_or_unshared(host):
    plan = plan_of(host, [{"name": "side", "share_with": "db"}, {"name": "web"}])[1]
    assert [(c.name, c.before, c.after) for c in plan.changes] == [
        ("side", {"share_with": "(another namespace)"}, {"share_with": "db"}),
    ]
    plan = plan_of(host, [{"name": "side"}])[1]
    (change,) = plan.changes
    assert change.before == {"share_with": "web"}
    assert change.after == {"share_with": None, "hostname": None, "sysctls": {}, "loopback": "up"}


def test_exclusive_prunes_the_collections_unwanted_namespaces_as_existing(host):
    resource, plan = plan_of(host, [{"name": "web"}, {"name": "db"}], exclusive=True)
    assert plan.summary() == ["update netns 'db': loopback 'down' -> 'up'", "delete netns 'side'", "delete netns 'old'"]
    assert [c.before for c in plan.changes[1:]] == [{"exists": True}, {"exists": True}]
    assert resource.names_to_remove() == ["old"]  # a second name frees nothing


def test_absent_shows_the_hostname_it_read_and_refuses_anothers(host):
    resource, plan = plan_of(host, [{"name": "old", "hostname": "old"}, {"name": "db"}, {"name": "gone"}], "absent")
    assert [(c.describe(), c.before) for c in plan.changes] == [
        ("delete netns 'old'", {"hostname": "old"}),
        ("delete netns 'db'", {"exists": True}),
    ]
    assert resource.names_to_remove() == ["old", "db"]
    with pytest.raises(ValidationError) as raised:
        plan_of(host, [{"name": "theirs"}, {"name": "reused"}], "absent")
    assert raised.value.errors == [
        "namespaces[0].name: namespace 'theirs' exists but was not created by wharf.network; refusing to remove it",
        "namespaces[1].name: namespace 'reused' exists but was not created by wharf.network; refusing to remove it",
    ]
