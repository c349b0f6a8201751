"""The embedded DNS: topology → resolver state and per-container files (pure), the systemd unit, and the resolver
itself in-process on loopback (no root: a high port on 127.0.0.1, real UDP and TCP packets)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rrset
import pytest

from ansible_collections.wharf.network.plugins.module_utils._dns import server as _dns_server
from ansible_collections.wharf.network.plugins.module_utils._dns.daemon import Paths, render_state, render_unit
from ansible_collections.wharf.network.plugins.module_utils._dns.files import (
    FILE_MARK,
    container_files,
    hosts_text,
    plan_container_files,
    resolv_conf_text,
)
from ansible_collections.wharf.network.plugins.module_utils._dns.server import forward as _dns_forward
from ansible_collections.wharf.network.plugins.module_utils._dns.server import loop as _dns_loop
from ansible_collections.wharf.network.plugins.module_utils._dns.server import program as _dns_program
from ansible_collections.wharf.network.plugins.module_utils._dns.server import tables as _dns_tables
from ansible_collections.wharf.network.plugins.module_utils._dns.server import tcp as _dns_tcp
from ansible_collections.wharf.network.plugins.module_utils._dns.state import (
    HostResolvConf,
    parse_resolv_conf,
    resolver_state,
)
from ansible_collections.wharf.network.plugins.module_utils._engine.plan import Plan
from ansible_collections.wharf.network.plugins.module_utils._model.topology import parse_topology

HOST_RESOLV = HostResolvConf(("192.0.2.53", "10.9.0.1"), ("example.test",), ("timeout:2", "ndots:3"))


def doc() -> dict:
    return {
        "networks": {
            "front": {"subnet": "10.9.0.0/24"},
            "back": {"subnet": "10.9.1.0/24", "internal": True},
            "ovl": {"subnet": "10.9.2.0/24", "driver": "overlay"},
            "lonely": {"subnet": "10.9.3.0/24"},
        },
        "containers": {
            "web": {
                "host": "h1",
                "hostname": "www",
                "networks": {"front": {"ipv4_address": "10.9.0.10", "aliases": ["site", "lb"]}},
                "extra_hosts": ["db.local:192.0.2.7", "host.docker.internal:host-gateway"],
                "dns_search": ["corp.test"],
                "dns_options": ["edns0"],
            },
            "api": {
                "host": "h1",
                "networks": {"front": {"ipv4_address": "10.9.0.11", "aliases": ["lb"]}, "back": {}},
                "dns": ["198.51.100.9"],
            },
            "db": {"host": "h1", "networks": {"back": {"ipv4_address": "10.9.1.12"}}, "dns_options": ["ndots:2"]},
            "far": {"host": "h2", "networks": {"front": {"ipv4_address": "10.9.0.40"}}},
            "ov1": {"host": "h1", "networks": {"ovl": {"ipv4_address": "10.9.2.10", "aliases": ["ovsvc"]}}},
            "ov2": {"host": "h2", "networks": {"ovl": {"ipv4_address": "10.9.2.20", "aliases": ["ovsvc"]}}},
            "gone": {"host": "h1", "state": "absent", "networks": {"front": {"ipv4_address": "10.9.0.50"}}},
            "side": {"host": "h1", "network_mode": "container:api"},
            "loop": {"host": "h1", "network_mode": "none", "extra_hosts": ["gw:host-gateway"]},
        },
    }


def state_of(document: dict | None = None, host: str = "h1") -> dict:
    return resolver_state(parse_topology(document or doc()), host, HOST_RESOLV)


def test_parse_resolv_conf():
    text = (
        "# comment\nnameserver 192.0.2.1\nnameserver fe80::1%eth0\nnameserver not-an-ip\n"
        "domain a.test\nsearch b.test c.test ; trailing\noptions rotate\noptions ndots:2 timeout:1\n"
    )
    parsed = parse_resolv_conf(text)
    assert parsed.nameservers == ("192.0.2.1", "fe80::1%eth0")
    assert parsed.search == ("b.test", "c.test")
    assert parsed.options == ("rotate", "ndots:2", "timeout:1")
    assert parse_resolv_conf("") == HostResolvConf()


def test_views_by_network_set_and_clients():
    state = state_of()
    assert state["listen"] == ["api", "db", "ov1", "web"]  # containers of h1 with a served network, by name
    assert state["address"] == "127.0.0.11"  # inside each of their namespaces, as Docker
    assert sorted(state["views"]) == ["back", "back+front", "front", "ovl"]
    front = state["views"]["front"]["names"]
    assert front["web"] == ["10.9.0.10"] and front["www"] == ["10.9.0.10"] and front["site"] == ["10.9.0.10"]
    assert front["lb"] == ["10.9.0.10", "10.9.0.11"]
    assert front["web.front"] == ["10.9.0.10"]
    assert "db" not in front and "far" not in front  # other network; bridge network of another host
    assert "gone" not in front and "side" not in front  # absent; no endpoint of its own
    both = state["views"]["back+front"]["names"]
    assert both["db"] == ["10.9.1.12"] and both["web"] == ["10.9.0.10"]
    assert both["api"] == [both["api.back"][0], "10.9.0.11"] or sorted(both["api"]) == sorted(
        [both["api.back"][0], "10.9.0.11"]
    )
    assert state["views"]["front"]["reverse"]["10.0.9.10.in-addr.arpa"] == "web.front"  # as Docker: NAME.NETWORK
    clients = state["clients"]
    web = {"netns": "/run/netns/web", "view": "front", "forward": True, "upstreams": ["192.0.2.53"]}
    assert clients["web"] == web  # the host's own gateway address (10.9.0.1) is no upstream
    # api is on an internal network too: it forwards all the same (Docker: a sandbox with external access does)
    api = {"netns": "/run/netns/api", "view": "back+front", "forward": True, "upstreams": ["198.51.100.9"]}
    assert clients["api"] == api
    assert clients["db"]["forward"] is False  # only internal networks: nothing ever forwarded
    assert sorted(clients) == ["api", "db", "ov1", "web"]  # far lives on h2, gone is absent, side shares api's
    assert {"db", "far", "gone", "www", "site", "lb", "ovsvc", "db.back"} <= set(state["hidden"])
    assert state["hidden_subnets"] == ["10.9.0.0/24", "10.9.1.0/24", "10.9.2.0/24", "10.9.3.0/24"]


def test_overlay_view_holds_containers_of_every_host():
    ovl = state_of()["views"]["ovl"]["names"]
    assert ovl["ovsvc"] == ["10.9.2.10", "10.9.2.20"]  # ov2 lives on h2
    assert ovl["ov2"] == ["10.9.2.20"]
    on_h2 = state_of(host="h2")
    assert on_h2["views"]["ovl"]["names"]["ovsvc"] == ["10.9.2.10", "10.9.2.20"]
    assert on_h2["views"]["front"]["names"] == {"far": ["10.9.0.40"], "far.front": ["10.9.0.40"]}


def test_state_is_deterministic_and_json():
    first = render_state(state_of())
    reordered = doc()
    reordered["containers"] = dict(reversed(list(reordered["containers"].items())))
    assert render_state(state_of(reordered)) == first
    json.loads(first)


def test_no_resolver_without_served_networks():
    state = state_of({"networks": {"n": {"subnet": "10.1.0.0/24"}}, "containers": {"x": {"network_mode": "none"}}})
    assert state["listen"] == [] and state["clients"] == {}


def test_resolv_conf_text():
    model = parse_topology(doc())
    web = resolv_conf_text(model, model.containers["web"], HOST_RESOLV).splitlines()
    assert web == [FILE_MARK, "nameserver 127.0.0.11", "search corp.test", "options timeout:2 ndots:0 edns0"]
    api = resolv_conf_text(model, model.containers["api"], HOST_RESOLV).splitlines()
    assert api[1:3] == ["nameserver 127.0.0.11", "search example.test"]  # one resolver, on its own loopback
    db = resolv_conf_text(model, model.containers["db"], HOST_RESOLV).splitlines()
    assert db[-1] == "options timeout:2 ndots:2"  # the container's ndots wins over Docker's 0
    assert resolv_conf_text(model, model.containers["loop"], HOST_RESOLV) is None


def test_hosts_text():
    model = parse_topology(doc())
    web = hosts_text(model, model.containers["web"]).splitlines()
    assert web[0] == FILE_MARK and web[1] == "127.0.0.1\tlocalhost"
    assert web[-3:] == ["192.0.2.7\tdb.local", "10.9.0.1\thost.docker.internal", "10.9.0.10\twww web"]
    loop = hosts_text(model, model.containers["loop"]).splitlines()
    assert loop[-1] == "# gw: host-gateway left out, the container has no network"
    files = container_files(model, "h1", HOST_RESOLV)
    assert sorted(files) == ["api", "db", "loop", "ov1", "web"]
    assert sorted(files["loop"]) == ["hosts"] and sorted(files["web"]) == ["hosts", "resolv.conf"]


def test_plan_container_files(tmp_path: Path):
    wanted = {"web": {"hosts": FILE_MARK + "\n1\n", "resolv.conf": FILE_MARK + "\n2\n"}}
    plan = Plan()
    assert plan_container_files(wanted, plan, str(tmp_path)) == []
    assert [c.describe() for c in plan.changes] == [
        f"create file '{tmp_path}/web/hosts'",
        f"create file '{tmp_path}/web/resolv.conf'",
    ]
    plan.apply()
    again = Plan()
    plan_container_files(wanted, again, str(tmp_path))
    assert not again.changed
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "hosts").write_text(FILE_MARK + "\nstale\n")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "hosts").write_text("127.0.0.1 mine\n")
    wanted["mine"] = {"hosts": FILE_MARK + "\nnew\n"}
    wanted["web"]["hosts"] = FILE_MARK + "\nchanged\n"
    third = Plan()
    errors = plan_container_files(wanted, third, str(tmp_path))
    assert errors == [
        f"{tmp_path}/mine/hosts exists and was not written by wharf.network: move it away to let it be managed"
    ]
    assert [c.describe() for c in third.changes] == [
        f"write file '{tmp_path}/web/hosts'",
        f"delete file '{tmp_path}/old/hosts'",
    ]
    third.apply()
    assert not (tmp_path / "old").exists() and (tmp_path / "web" / "hosts").read_text().endswith("changed\n")
    (tmp_path / "undeclared").mkdir()
    (tmp_path / "undeclared" / "hosts").write_text(FILE_MARK + "\nkept\n")
    del wanted["mine"]
    fourth = Plan()
    assert plan_container_files(wanted, fourth, str(tmp_path), removable=lambda name: name != "undeclared") == []
    assert not fourth.changed  # not removable: left alone (a topology without prune keeps what it no longer names)


def test_render_unit():
    unit = render_unit("/usr/bin/python3", Paths("/run/wharf/dns"))
    assert "ExecStart=/usr/bin/python3 /run/wharf/dns/server.py serve --state /run/wharf/dns/state.json " in unit
    assert "--status /run/wharf/dns/status.json\n" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID\n" in unit and "Restart=always\n" in unit
    assert "\n[Install]\nWantedBy=multi-user.target\n" in unit
    assert "ConditionPathExists=/run/wharf/dns/state.json\n" in unit  # no restart loop after a reboot
    service = unit.split("[Service]\n", 1)[1].split("\n[", 1)[0].splitlines()
    for line in (
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_SYS_ADMIN",  # setns into the containers' namespaces
        "RestrictNamespaces=net",
        "ProtectSystem=strict",
        "ReadWritePaths=/run/wharf/dns",  # where it writes its status, and nothing else
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",  # UDP/TCP, and the wake-up socketpair
    ):
        assert line in service, line
    moved = render_unit("/usr/bin/python3", Paths("/srv/lab/dns"))
    assert "ReadWritePaths=/srv/lab/dns\n" in moved


# --- the resolver in-process -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        udp_port = probe.getsockname()[1]
    return udp_port


def _local_state(forward: bool, upstreams: list[str]) -> dict:
    many = {f"m{i}": {"networks": {"n": {"ipv4_address": f"10.5.0.{100 + i}", "aliases": ["many"]}}} for i in range(40)}
    document = {
        "networks": {"n": {"subnet": "10.5.0.0/24"}, "other": {"subnet": "10.6.0.0/24"}},
        "containers": {
            "web": {"networks": {"n": {"ipv4_address": "10.5.0.10", "aliases": ["svc"]}}},
            "web2": {"networks": {"n": {"ipv4_address": "10.5.0.11", "aliases": ["svc"]}}},
            "web3": {"networks": {"n": {"ipv4_address": "10.5.0.12", "aliases": ["svc"]}}},
            "hidden": {"networks": {"other": {"ipv4_address": "10.6.0.10"}}},
            **many,
        },
    }
    state = resolver_state(parse_topology(document), "h", HostResolvConf())
    # one asker, listened for in this process's own namespace on 127.0.0.1 (netns null): the tests ask there
    state["clients"] = {
        "web": {"netns": None, "address": "127.0.0.1", "view": "n", "forward": forward, "upstreams": upstreams}
    }
    state["listen"] = ["web"]
    return state


class Running:
    def __init__(self, tmp: Path, state: dict):
        self.state_path, self.status = tmp / "state.json", tmp / "status.json"
        self.state_path.write_text(json.dumps(state))
        self.port = _free_port()
        self.server = _dns_loop.Server(str(self.state_path), str(self.status), port=self.port)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.wait(lambda status: status.get("loaded"))

    def wait(self, ready) -> dict:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                status = json.loads(self.status.read_text())
                if ready(status):
                    return status
            except (OSError, ValueError):
                pass
            time.sleep(0.01)
        raise AssertionError("the resolver did not report")

    def ask(self, name: str, rdtype: str = "A", tcp: bool = False, **kwargs) -> dns.message.Message:
        query = dns.message.make_query(name, rdtype, **kwargs)
        if tcp:
            return dns.query.tcp(query, "127.0.0.1", port=self.port, timeout=3)
        return dns.query.udp(query, "127.0.0.1", port=self.port, timeout=3)

    def close(self) -> None:
        self.server.stop()
        self.thread.join(5)
        self.server.listener.close_all()


@pytest.fixture
def resolver(tmp_path: Path):
    running = Running(tmp_path, _local_state(forward=False, upstreams=[]))
    yield running
    running.close()


def _addresses(response: dns.message.Message) -> list[str]:
    return [item.address for rrset in response.answer for item in rrset]


def test_resolver_answers_locally(resolver):
    assert _addresses(resolver.ask("web")) == ["10.5.0.10"]
    upper = resolver.ask("WeB.N")
    assert _addresses(upper) == ["10.5.0.10"] and upper.question[0].name.to_text() == "WeB.N."
    with_edns = resolver.ask("web", use_edns=0, payload=1232)
    assert _addresses(with_edns) == ["10.5.0.10"] and with_edns.edns == 0
    assert resolver.ask("web", rdtype="AAAA").rcode() == dns.rcode.NOERROR
    assert resolver.ask("web", rdtype="AAAA").answer == []
    assert resolver.ask("web", rdtype="TXT").answer == [] and resolver.ask("web", rdtype="TXT").rcode() == 0
    assert resolver.ask("hidden").rcode() == dns.rcode.NXDOMAIN
    assert resolver.ask("hidden", rdtype="MX").rcode() == dns.rcode.NXDOMAIN
    assert resolver.ask("nosuchname").rcode() == dns.rcode.REFUSED  # not a topology name: never answered locally
    assert resolver.ask("10.0.6.10.in-addr.arpa", rdtype="PTR").rcode() == dns.rcode.NXDOMAIN
    ptr = resolver.ask("10.0.5.10.in-addr.arpa", rdtype="PTR")
    assert [item.target.to_text() for rrset in ptr.answer for item in rrset] == ["web.n."]
    assert _addresses(resolver.ask("web.n")) == ["10.5.0.10"]  # and back
    assert resolver.ask("www.example.com").rcode() == dns.rcode.REFUSED  # this client never forwards
    assert _addresses(resolver.ask("web", tcp=True)) == ["10.5.0.10"]


def test_resolver_round_robin(resolver):
    firsts = [_addresses(resolver.ask("svc"))[0] for _turn in range(30)]
    assert {firsts.count(a) for a in ("10.5.0.10", "10.5.0.11", "10.5.0.12")} == {10}


def test_resolver_truncates_and_tcp_has_everything(resolver):
    plain = resolver.ask("many")
    assert plain.flags & dns.flags.TC and plain.answer == []
    small = resolver.ask("many", use_edns=0, payload=512)
    assert small.flags & dns.flags.TC
    assert len(_addresses(resolver.ask("many", use_edns=0, payload=1232))) == 40
    assert len(_addresses(resolver.ask("many", tcp=True))) == 40


def test_resolver_survives_malformed_packets(resolver):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.settimeout(0.5)
        for payload in (b"", b"\x00", b"\x12\x34\x01\x00\x00\x01" + b"\x00" * 6 + b"\x3f" * 200, os.urandom(300)):
            raw.sendto(payload, ("127.0.0.1", resolver.port))
        raw.sendto(bytes.fromhex("5678010000010000000000000377777700"), ("127.0.0.1", resolver.port))
        replies = {}
        while len(replies) < 2 or not {b"\x12\x34", b"\x56\x78"} <= set(replies):
            reply = raw.recv(512)  # the random bytes may get a FORMERR of their own
            replies[reply[:2]] = reply[2:4]
        assert replies[b"\x12\x34"] == b"\x81\x81"  # FORMERR (with RA) for the overlong label
        assert replies[b"\x56\x78"] == b"\x81\x81"  # and for a question cut short
    assert _addresses(resolver.ask("web")) == ["10.5.0.10"]


def test_resolver_keeps_last_good_state(resolver):
    before = json.loads(resolver.status.read_text())["loaded"]
    resolver.state_path.write_text("{not json")
    resolver.server.request_reload()
    status = resolver.wait(lambda s: s.get("error"))
    assert status["loaded"] == before and "not loaded, keeping the last good one" in status["error"]
    assert _addresses(resolver.ask("web")) == ["10.5.0.10"]
    state = _local_state(forward=False, upstreams=[])
    state["views"]["n"]["names"]["newname"] = ["10.5.0.77"]
    resolver.state_path.write_text(json.dumps(state))
    resolver.server.request_reload()
    resolver.wait(lambda s: s.get("loaded") != before and not s.get("error"))
    assert _addresses(resolver.ask("newname")) == ["10.5.0.77"]


def test_resolver_servfail_without_upstream(tmp_path: Path):
    running = Running(tmp_path, _local_state(forward=True, upstreams=[]))
    try:
        assert running.ask("www.example.com").rcode() == dns.rcode.SERVFAIL
        assert _addresses(running.ask("web")) == ["10.5.0.10"]
    finally:
        running.close()


def test_missing_dnspython_is_a_clear_error(monkeypatch, tmp_path: Path):
    from ansible_collections.wharf.network.plugins.module_utils._dns import daemon as _dns_daemon
    from ansible_collections.wharf.network.plugins.module_utils._engine.errors import ValidationError

    assert _dns_daemon.dnspython_missing() is None
    monkeypatch.setitem(sys.modules, "dns.version", None)  # what an interpreter without dnspython sees
    message = _dns_daemon.dnspython_missing()
    assert message is not None and "apt install python3-dnspython" in message and sys.executable in message
    with pytest.raises(ValidationError) as caught:
        _dns_daemon.dns_converge(
            doc(),
            "h1",
            check_mode=True,
            resolv_conf="",
            paths=Paths(str(tmp_path / "dns")),
            netns_etc=str(tmp_path / "netns"),
        )
    assert caught.value.errors == [message]
    assert not (tmp_path / "netns").exists()  # nothing written


class FakeUpstream:
    """A UDP server on loopback that logs every question; answers A 203.0.113.7, or nothing when ``silent``."""

    def __init__(self, silent: bool = False):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.address = f"127.0.0.1#{self.sock.getsockname()[1]}"
        self.silent = silent
        self.seen: list[str] = []
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while self.running:
            try:
                wire, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(wire)
            self.seen.append(query.question[0].name.to_text())
            if not self.silent:
                response = dns.message.make_response(query)
                response.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A", "203.0.113.7"))
                self.sock.sendto(response.to_wire(), addr)

    def close(self) -> None:
        self.running = False
        self.thread.join(2)
        self.sock.close()


def test_resolver_forwards_and_never_leaks_topology_names(tmp_path: Path):
    upstream = FakeUpstream()
    running = Running(tmp_path, _local_state(forward=True, upstreams=[upstream.address]))
    try:
        answer = running.ask("WWW.Example.COM")
        assert _addresses(answer) == ["203.0.113.7"] and answer.question[0].name.to_text() == "WWW.Example.COM."
        # over TCP the resolver forwards over TCP; this upstream has no TCP: SERVFAIL, not a hang
        assert running.ask("tcp.example.com", tcp=True).rcode() == dns.rcode.SERVFAIL
        for name in ("web", "hidden", "10.0.6.10.in-addr.arpa", "svc.n"):
            running.ask(name)
            running.ask(name, rdtype="MX")
        assert upstream.seen == ["WWW.Example.COM."]
        # single labels that are no topology name go upstream like any other name (a validating resolver asks
        # `com DS`), over the fast and the slow path
        for name, rdtype in (("com", "NS"), ("com", "DS"), ("nosuchname", "A"), ("Org", "A")):
            assert running.ask(name, rdtype=rdtype).rcode() == dns.rcode.NOERROR, (name, rdtype)
        assert upstream.seen[1:] == ["com.", "com.", "nosuchname.", "Org."]
    finally:
        running.close()
        upstream.close()


def test_resolver_servfail_on_silent_upstream_and_bounded_in_flight(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(_dns_forward, "FORWARD_ATTEMPT_TIMEOUT", 0.4)
    monkeypatch.setattr(_dns_forward, "MAX_IN_FLIGHT", 2)
    upstream = FakeUpstream(silent=True)
    running = Running(tmp_path, _local_state(forward=True, upstreams=[upstream.address, upstream.address]))
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(3)
            start = time.monotonic()
            for index in range(5):
                query = dns.message.make_query(f"q{index}.example.com", "A")
                query.id = 100 + index
                client.sendto(query.to_wire(), ("127.0.0.1", running.port))
            arrivals = {}
            while len(arrivals) < 5:
                response = dns.message.from_wire(client.recv(4096))
                assert response.rcode() == dns.rcode.SERVFAIL
                arrivals[response.id] = time.monotonic() - start
        # two wait for the upstream (two attempts of 0.4 s each), the three beyond the bound fail at once: they
        # arrive first (an order, not a time window: the machine may be busy); the two waited at least 2 x 0.4 s
        first = sorted(arrivals, key=arrivals.get)[:3]
        assert sorted(first) == [102, 103, 104], arrivals
        assert min(arrivals[100], arrivals[101]) >= 0.75, arrivals
        assert len(upstream.seen) == 4  # each of the two in flight asked both upstream entries
        assert running.server.forwarder.in_flight == 0
    finally:
        running.close()
        upstream.close()


class FakeSystemd:
    """systemctl for the module's systemd path, on a machine without systemd: `start` and `reload` make a process
    that looks like the unit's server (its command line names the program) report the state file's digest."""

    def __init__(self, paths: Paths):
        self.paths = paths
        self.calls: list[str] = []
        self.process: subprocess.Popen | None = None

    def report(self) -> None:
        state = Path(self.paths.state).read_bytes()
        listen = sorted(json.loads(state)["listen"])
        digest = hashlib.sha256(state).hexdigest()
        status = {"pid": self.process.pid, "loaded": digest, "error": None, "listen": listen, "time": time.time()}
        Path(self.paths.status).write_text(json.dumps(status))

    def __call__(self, argv: list[str]) -> tuple[int, str, str]:
        assert argv[0] == "systemctl", argv
        self.calls.append(" ".join(argv[1:]))
        if argv[1] == "show":
            running = self.process is not None and self.process.poll() is None
            return 0, f"{self.process.pid if running else 0}\n", ""
        if argv[1] == "start":
            code = "import time; time.sleep(60)"
            self.process = subprocess.Popen([sys.executable, "-c", code, self.paths.program])
            self.report()
        elif argv[1] == "reload":
            self.report()
        elif argv[1] == "stop" and self.process is not None:
            self.process.kill()
            self.process.wait()
        return 0, "", ""


def test_systemd_path_start_noop_reload_stop(tmp_path: Path, monkeypatch):
    from ansible_collections.wharf.network.plugins.module_utils._dns import daemon as _dns_daemon

    paths = Paths(str(tmp_path / "dns"))
    unit = tmp_path / "wharf-dns.service"
    monkeypatch.setattr(_dns_daemon, "systemd_is_init", lambda: True)
    monkeypatch.setattr(_dns_daemon, "UNIT_PATH", str(unit))
    systemd = FakeSystemd(paths)

    def converge(document: dict, check: bool = False) -> list[str]:
        result = _dns_daemon.dns_converge(
            document, "h1", check, resolv_conf="", paths=paths, netns_etc=str(tmp_path / "netns"), run=systemd
        )
        return result.plan.summary()

    try:
        first = converge(doc())
        assert first[-1] == "create resolver 'wharf-dns'" and f"write file '{unit}'" in first
        assert systemd.calls == [
            "show --property=MainPID --value wharf-dns.service",
            "daemon-reload",
            "start wharf-dns.service",
        ]
        assert "ExecStart=" in unit.read_text()
        assert converge(doc()) == [] and converge(doc(), check=True) == []
        # any part of the program changed on the host (not only its entry point): written again, restarted
        part = Path(paths.program_dir) / "answer.py"
        part.write_text(part.read_text() + "# old\n")
        changes = converge(doc())
        assert changes == [f"write file '{paths.program}'", "restart resolver 'wharf-dns'"], changes
        assert systemd.calls[-3:] == ["stop wharf-dns.service", "daemon-reload", "start wharf-dns.service"]
        assert converge(doc()) == []
        grown = doc()
        grown["containers"]["new"] = {"host": "h1", "networks": {"front": {"ipv4_address": "10.9.0.77"}}}
        changes = converge(grown)
        assert changes[-1] == "reload resolver 'wharf-dns'" and systemd.calls[-1] == "reload wharf-dns.service"
        gone = converge({**grown, "state": "absent"})
        assert "delete resolver 'wharf-dns'" in gone and f"delete file '{unit}'" in gone
        assert systemd.calls[-2:] == ["stop wharf-dns.service", "daemon-reload"]
        assert not unit.exists() and not Path(paths.state_dir).exists()
    finally:
        if systemd.process is not None:
            systemd.process.kill()
            systemd.process.wait()


# --- TCP: no slowloris -----------------------------------------------------------------------------------------


def _tcp_from(source: str, port: int) -> socket.socket:
    conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    conn.bind((source, 0))
    conn.settimeout(3)
    conn.connect(("127.0.0.1", port))
    return conn


def _closed_by_server(conn: socket.socket, within: float) -> bool:
    """True when the server closes (EOF or reset) within ``within`` seconds, without anything sent to it."""
    conn.settimeout(within)
    try:
        return conn.recv(512) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _second_client(state: dict, forward: bool, upstreams: list[str]) -> None:
    """Another container, listened for on 127.0.0.3 of this namespace (the first is on 127.0.0.1)."""
    state["clients"]["other"] = {
        "netns": None,
        "address": "127.0.0.3",
        "view": "n",
        "forward": forward,
        "upstreams": upstreams,
    }
    state["listen"] = sorted(state["clients"])


def _tcp_to(server: str, port: int, source: str) -> socket.socket:
    conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    conn.bind((source, 0))
    conn.settimeout(3)
    conn.connect((server, port))
    return conn


def test_tcp_limits_each_container_whatever_its_source_addresses(tmp_path: Path, monkeypatch):
    """A container's connections are counted by the socket they arrive on (its namespace), not by source address:
    three sources of one container share its limit, and another container is still served over TCP."""
    monkeypatch.setattr(_dns_tcp, "MAX_TCP_PER_CLIENT", 3)
    state = _local_state(forward=False, upstreams=[])
    _second_client(state, False, [])
    running = Running(tmp_path, state)
    held: list[socket.socket] = []
    try:
        held += [_tcp_to("127.0.0.1", running.port, f"127.0.0.{20 + turn}") for turn in range(3)]
        extra = _tcp_to("127.0.0.1", running.port, "127.0.0.30")
        held.append(extra)
        assert _closed_by_server(extra, 1.0)  # a fourth connection of the same container, from a fourth address
        assert not _closed_by_server(held[1], 0.2)  # the first three stay open
        query = dns.message.make_query("web", "A")
        other = dns.query.tcp(query, "127.0.0.3", port=running.port, timeout=3)
        assert _addresses(other) == ["10.5.0.10"]  # another container is still served over TCP
        for conn in held[:3]:
            conn.close()
        deadline = time.monotonic() + 3
        while running.server.tcp_clients.by_client and time.monotonic() < deadline:
            time.sleep(0.02)
        assert running.server.tcp_clients.by_client == {}  # every slot given back
        assert running.server.tcp_clients.in_use == 0
        assert _addresses(running.ask("web", tcp=True)) == ["10.5.0.10"]
    finally:
        for conn in held:
            conn.close()
        running.close()


def test_tcp_keeps_its_last_slots_for_containers_holding_few(monkeypatch):
    """The fair share: once the pool is nearly full, a container holding TCP_FAIR_FLOOR or more gets no more,
    one holding fewer still does; nobody beyond the pool."""
    monkeypatch.setattr(_dns_tcp, "MAX_TCP_CLIENTS", 6)
    monkeypatch.setattr(_dns_tcp, "MAX_TCP_PER_CLIENT", 4)
    monkeypatch.setattr(_dns_tcp, "TCP_RESERVE", 2)
    monkeypatch.setattr(_dns_tcp, "TCP_FAIR_FLOOR", 1)
    pool = _dns_tcp.TcpClients(lambda name: None, lambda data, client: None, lambda text: None)
    pool.by_client, pool.in_use = {"a": 2, "b": 2}, 4
    assert not pool.admits("a")  # 4 of 6 taken: the last 2 are for containers holding fewer than 1
    assert pool.admits("c")
    pool.by_client["c"], pool.in_use = 1, 5
    assert not pool.admits("c") and pool.admits("d")
    pool.by_client["d"], pool.in_use = 1, 6
    assert not pool.admits("e")  # full


def test_forwarding_is_shared_fairly_between_containers(monkeypatch):
    """A container holds at most PER_CLIENT_IN_FLIGHT forwarded queries, and the last FAIR_RESERVE of the pool
    go only to containers holding fewer than FAIR_FLOOR."""
    monkeypatch.setattr(_dns_forward, "MAX_IN_FLIGHT", 10)
    monkeypatch.setattr(_dns_forward, "PER_CLIENT_IN_FLIGHT", 6)
    monkeypatch.setattr(_dns_forward, "FAIR_RESERVE", 4)
    monkeypatch.setattr(_dns_forward, "FAIR_FLOOR", 2)
    forwarder = _dns_forward.Forwarder(None, lambda text: None)
    forwarder.by_owner, forwarder.in_flight = {"flood": 5}, 5
    assert forwarder.admits("flood") and forwarder.admits("quiet")
    forwarder.by_owner["flood"], forwarder.in_flight = 6, 6
    assert not forwarder.admits("flood")  # its own cap
    forwarder.by_owner.update(flood=3, other=3)
    assert not forwarder.admits("flood") and forwarder.admits("quiet")  # 6 of 10: the reserve only for the few
    forwarder.by_owner["quiet"], forwarder.in_flight = 1, 7
    assert forwarder.admits("quiet")
    forwarder.in_flight = 10
    assert not forwarder.admits("new")  # the pool is full


def test_tcp_request_deadline_is_for_the_whole_request(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(_dns_tcp, "TCP_REQUEST_TIMEOUT", 1.0)
    running = Running(tmp_path, _local_state(forward=False, upstreams=[]))
    try:
        wire = dns.message.make_query("web", "A").to_wire()
        request = len(wire).to_bytes(2, "big") + wire
        with _tcp_from("127.0.0.1", running.port) as conn:
            closed_after = None
            started = time.monotonic()
            for byte in request:  # one byte every 0.3 s: each recv is quick, the request never completes in time
                try:
                    conn.send(bytes((byte,)))
                except OSError:
                    closed_after = time.monotonic() - started
                    break
                if _closed_by_server(conn, 0.3):
                    closed_after = time.monotonic() - started
                    break
            assert closed_after is not None, "a trickling client kept its connection"
        # a client that sends its request at once is answered, and can wait a little before the next one
        with _tcp_from("127.0.0.1", running.port) as conn:
            for _turn in range(2):
                conn.sendall(request)
                size = int.from_bytes(conn.recv(2), "big")
                reply = b""
                while len(reply) < size:
                    reply += conn.recv(size - len(reply))
                assert _addresses(dns.message.from_wire(reply)) == ["10.5.0.10"]
                time.sleep(0.3)
    finally:
        running.close()


# --- many views, other classes ----------------------------------------------------------------------------------


def test_tables_grow_with_each_views_names_not_views_times_names():
    """Each view holds its own names only: NXDOMAIN for the others comes from one shared set (a topology of 704
    views and 1500 containers once took 1.1 GiB when every view held an NXDOMAIN entry per topology name)."""
    networks = {f"n{i}": {"subnet": f"10.{100 + i // 200}.{i % 200}.0/24"} for i in range(60)}
    containers = {
        f"c{i}-{j}": {"networks": {f"n{i}": {"ipv4_address": f"10.{100 + i // 200}.{i % 200}.{10 + j}"}}}
        for i in range(60)
        for j in range(5)
    }
    state = resolver_state(parse_topology({"networks": networks, "containers": containers}), "h", HostResolvConf())
    tables = _dns_tables.load_tables(json.dumps(state).encode())
    views = {id(client.view): client.view for client in tables.clients.values()}
    assert len(views) == 60 and len(tables.hidden) >= 600  # names and NAME.NETWORK of 300 containers
    for view in views.values():
        # A, AAAA and HTTPS per name of the view, one PTR per address: nothing for the other views' names
        assert len(view.answers) == 3 * len(view.names) + len(view.reverse), len(view.answers)
        assert len(view.names) <= 2 * 5 + 5


def test_other_classes_never_leak_topology_names(tmp_path: Path):
    upstream = FakeUpstream()
    running = Running(tmp_path, _local_state(forward=True, upstreams=[upstream.address]))
    try:
        for name in ("hidden", "hidden.other", "web", "svc.n"):
            for rdclass, rdtype in (("CH", "TXT"), ("HS", "A"), ("CH", "A")):
                response = running.ask(name, rdtype=rdtype, rdclass=rdclass)
                assert response.rcode() == dns.rcode.NXDOMAIN, (name, rdclass, rdtype, response)
        # names that are not the topology's, in another class: refused, not forwarded
        assert running.ask("version.bind", rdtype="TXT", rdclass="CH").rcode() == dns.rcode.REFUSED
        assert running.ask("example.com", rdtype="A", rdclass="HS").rcode() == dns.rcode.REFUSED
        assert running.ask("hidden", rdtype="SRV").rcode() == dns.rcode.NXDOMAIN  # any type
        assert upstream.seen == []
    finally:
        running.close()
        upstream.close()


def test_an_upstream_that_cannot_be_reached_at_all_is_answered_and_counted_out(tmp_path: Path, monkeypatch):
    """An IPv6 upstream on a host without IPv6 (creating the socket fails): the next server is asked, or SERVFAIL
    at once when none is left, and ``in_flight`` goes back to 0 (a leak would make every later forward SERVFAIL)."""
    real_socket = socket.socket

    def no_ipv6(family=socket.AF_INET, *args, **kwargs):
        if family == socket.AF_INET6:
            raise OSError(97, "Address family not supported by protocol")
        return real_socket(family, *args, **kwargs)

    monkeypatch.setattr(_dns_forward, "MAX_IN_FLIGHT", 3)
    upstream = FakeUpstream()
    state = _local_state(forward=True, upstreams=["2001:db8::53"])
    _second_client(state, True, ["2001:db8::53", upstream.address])
    running = Running(tmp_path, state)
    monkeypatch.setattr(_dns_forward.socket, "socket", no_ipv6)
    try:
        for index in range(6):  # twice MAX_IN_FLIGHT: each is answered and counted out
            assert running.ask(f"q{index}.example.com").rcode() == dns.rcode.SERVFAIL
        assert running.server.forwarder.in_flight == 0
        query = dns.message.make_query("www.example.com", "A")
        answer = dns.query.udp(query, "127.0.0.3", port=running.port, timeout=3)
        assert _addresses(answer) == ["203.0.113.7"]  # the IPv4 server after the IPv6 one
        assert running.server.forwarder.in_flight == 0
    finally:
        monkeypatch.undo()
        running.close()
        upstream.close()


# --- the supervised daemon ----------------------------------------------------------------------------------------


def _run_command(argv: list[str]) -> tuple[int, str, str]:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    return proc.returncode, proc.stdout, proc.stderr


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def test_stop_leaves_no_server_behind_even_when_it_does_not_die(tmp_path: Path, monkeypatch):
    """The supervisor and its server run as a process group; stop() kills what is left of the group once its wait
    is over (the server had outlived a supervisor killed mid-wait: an orphan sharing UDP :53). The server is
    SIGSTOPped so that SIGTERM cannot end it; no address to listen on, so no port is taken."""
    from ansible_collections.wharf.network.plugins.module_utils._dns import daemon as _dns_daemon

    monkeypatch.setattr(_dns_daemon, "STOP_TIMEOUT", 1.0)  # shorter than the supervisor's own wait for its server
    paths = Paths(str(tmp_path / "dns"))
    os.makedirs(paths.state_dir)
    _dns_daemon.write_program(paths, _dns_daemon.program_files())
    state = _local_state(forward=False, upstreams=[])
    state["listen"] = []
    text = render_state(state)
    Path(paths.state).write_text(text)
    control = _dns_daemon.ResolverControl(paths, False, _run_command)
    control.start(_dns_daemon.digest(text))
    supervisor = control.pid
    server = json.loads(Path(paths.status).read_text())["pid"]
    assert supervisor and server != supervisor and os.getpgid(server) == supervisor
    try:
        os.kill(server, signal.SIGSTOP)
        control.stop(supervisor)
        deadline = time.monotonic() + 5
        while not (_gone(server) and _gone(supervisor)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(supervisor) and _gone(server), (supervisor, server)
    finally:
        with contextlib.suppress(OSError):
            os.killpg(supervisor, signal.SIGKILL)


def test_the_program_names_every_file_of_its_package():
    package = Path(_dns_server.__file__).parent
    assert sorted(_dns_server.FILES) == sorted(path.name for path in package.glob("*.py"))


def test_the_program_runs_out_of_the_collection(tmp_path: Path):
    """Copied to the host, the program is its entry point and the package beside it: it imports with the standard
    library alone (-S: no site-packages, so neither ansible_collections nor dnspython; -I: not even the script's
    directory on sys.path, which the entry point adds itself), and writes no bytecode beside itself."""
    from ansible_collections.wharf.network.plugins.module_utils._dns import daemon as _dns_daemon

    paths = Paths(str(tmp_path / "dns"))
    files = _dns_daemon.program_files()
    _dns_daemon.write_program(paths, files)
    (Path(paths.program_dir) / "gone.py").write_text("# a part an older version had\n")
    _dns_daemon.write_program(paths, files)
    written = sorted(str(path.relative_to(paths.state_dir)) for path in Path(paths.state_dir).rglob("*"))
    assert written == sorted(["server", *files]), written
    assert (Path(paths.program_dir) / "answer.py").read_bytes() == Path(_dns_server.__file__).with_name(
        "answer.py"
    ).read_bytes()
    help_text = _run_command([sys.executable, "-I", "-S", paths.program, "--help"])
    assert help_text[0] == 0 and "wharf.network embedded DNS resolver" in help_text[1], help_text
    serve = [sys.executable, "-I", "-S", paths.program, "serve", "--state", paths.state, "--status", paths.status]
    rc, _out, err = _run_command(serve)
    assert rc == 2 and "dnspython is missing" in err, (rc, err)
    assert not list(Path(paths.state_dir).rglob("__pycache__"))
    _dns_daemon.remove_program(paths)
    assert os.listdir(paths.state_dir) == []


def test_the_supervisor_starts_its_server_as_popen_did(tmp_path: Path):
    """stdin from /dev/null, no descriptor beyond 0-2 inherited, the exit code (or -signal) waited for, and an exec
    that fails raises in the supervisor."""
    inherited = os.open(tmp_path / "inherited", os.O_WRONLY | os.O_CREAT)
    os.set_inheritable(inherited, True)
    try:
        fd_path = f"/proc/self/fd/{inherited}"
        code = f"import os,sys; sys.exit(4 if os.read(0, 1) else 5 if os.path.lexists('{fd_path}') else 0)"
        pid = _dns_program._spawn([sys.executable, "-c", code])
        assert _dns_program._wait(pid, 10) == 0  # 4: stdin was not empty, 5: the descriptor was inherited
    finally:
        os.close(inherited)
    pid = _dns_program._spawn([sys.executable, "-c", "import time; time.sleep(30)"])
    assert _dns_program._wait(pid, 0.1) is None
    os.kill(pid, signal.SIGKILL)
    assert _dns_program._wait(pid, 10) == -signal.SIGKILL
    with pytest.raises(FileNotFoundError):
        _dns_program._spawn([str(tmp_path / "no-such-python"), "-c", "pass"])


def test_the_daemon_log_is_capped(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(_dns_program, "LOG_MAX", 1000)
    log = tmp_path / "resolver.log"
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"a" * 600)
        _dns_program._cap_log(str(log), fd)
        assert log.stat().st_size == 600 and not (tmp_path / "resolver.log.1").exists()
        os.write(fd, b"b" * 600)
        _dns_program._cap_log(str(log), fd)
        assert (tmp_path / "resolver.log.1").read_bytes() == b"a" * 600 + b"b" * 600
        os.write(fd, b"c" * 10)  # the writer's descriptor goes on at the start of the emptied file
        assert log.read_bytes() == b"c" * 10
    finally:
        os.close(fd)


def test_edns_versions_other_than_0_get_badvers(resolver):
    for name in ("web", "nosuchname.example"):  # a fast-path name and a slow-path one
        response = resolver.ask(name, use_edns=1)
        assert response.rcode() == dns.rcode.BADVERS and response.edns == 0 and response.answer == []
    assert _addresses(resolver.ask("web", use_edns=0)) == ["10.5.0.10"]


def test_queries_are_answered_while_a_reload_builds(tmp_path: Path, monkeypatch):
    """The tables of a reload are built aside: the loop answers from the current ones meanwhile (a topology of
    hundreds of views takes seconds to build), then swaps."""
    running = Running(tmp_path, _local_state(forward=False, upstreams=[]))
    gate = threading.Event()
    real_load = _dns_tables.load_tables

    def slow_load(raw: bytes):
        assert gate.wait(10)
        return real_load(raw)

    monkeypatch.setattr(_dns_loop, "load_tables", slow_load)
    try:
        before = json.loads(running.status.read_text())["loaded"]
        state = _local_state(forward=False, upstreams=[])
        state["views"]["n"]["names"]["newname"] = ["10.5.0.77"]
        running.state_path.write_text(json.dumps(state))
        running.server.request_reload()
        deadline = time.monotonic() + 5
        while not running.server.building and time.monotonic() < deadline:
            time.sleep(0.01)
        assert running.server.building
        assert _addresses(running.ask("web")) == ["10.5.0.10"]  # answered while the build waits
        assert _addresses(running.ask("svc.n", tcp=True))
        assert running.ask("newname").answer == []
        gate.set()
        running.wait(lambda s: s.get("loaded") != before)
        assert _addresses(running.ask("newname")) == ["10.5.0.77"]
    finally:
        gate.set()
        running.close()


def test_a_container_without_its_namespace_waits_and_a_bad_pin_is_an_error(tmp_path: Path):
    """A container whose namespace does not exist (yet) is no error, nobody is there to ask; a pin that is no
    namespace (a stale empty file) is one, named, and retried; the other containers are listened for all along."""
    from ansible_collections.wharf.network.plugins.module_utils._dns.server import listen as _dns_listen

    selector = __import__("selectors").DefaultSelector()
    listener = _dns_listen.Listener(selector, _free_port())
    stale = tmp_path / "stale"
    stale.write_text("")
    wanted = {
        "here": _dns_listen.Endpoint(None, "127.0.0.1"),
        "unborn": _dns_listen.Endpoint(str(tmp_path / "nothing"), "127.0.0.11"),
        "stale": _dns_listen.Endpoint(str(stale), "127.0.0.11"),
    }
    try:
        error = listener.listen_on(wanted)
        assert listener.names == ["here"] and listener.missing == {"unborn"}
        assert error is not None and error.startswith(f"cannot listen for stale: 127.0.0.11:{listener.port} in {stale}")
        assert "unborn" not in error
        assert listener.retry_at is not None and listener.check_at is not None
        assert not listener.check_pins()  # nothing appeared, nothing changed
        assert os.readlink("/proc/thread-self/ns/net") == os.readlink("/proc/self/ns/net")  # always back home
    finally:
        listener.close_all()


def test_a_container_publishing_port_53_keeps_the_port_and_resolves_through_the_host():
    """A DNS server of its own (pi-hole) binds port 53 of every address: the resolver does not listen inside that
    container (a socket of ours would refuse its bind), which resolves through the host's servers as on Docker's
    default bridge; its names still resolve for the others."""
    document = {
        "networks": {"n": {"subnet": "10.5.0.0/24"}},
        "containers": {
            "hole": {"networks": {"n": {"ipv4_address": "10.5.0.53"}}, "ports": ["53:53/udp"]},
            "app": {"networks": {"n": {"ipv4_address": "10.5.0.10"}}},
        },
    }
    model = parse_topology(document)
    state = resolver_state(model, "h", HOST_RESOLV)
    assert state["listen"] == ["app"] and state["views"]["n"]["names"]["hole"] == ["10.5.0.53"]
    hole = resolv_conf_text(model, model.containers["hole"], HOST_RESOLV).splitlines()
    assert hole[1:3] == ["nameserver 192.0.2.53", "nameserver 10.9.0.1"]
    assert resolv_conf_text(model, model.containers["app"], HOST_RESOLV).splitlines()[1] == "nameserver 127.0.0.11"
