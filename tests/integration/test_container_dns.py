"""wharf.network.container_dns on a sandbox host, proven with real DNS queries from inside the containers.

One sandbox host for the whole file (building it is the slow part): the topology below converged with
`converge`, then `container_dns`, and an `outside` namespace on the host's uplink (198.51.100.0/24) running a
fake upstream server that logs every query it receives (dnsprobe.py). Queries come from the containers'
own namespaces with dnspython (dnsprobe.py ask) and through glibc (`getent`, which reads the container's
resolv.conf and hosts as any program there does).
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import pytest
from conftest import Sandbox, built_in_a_sandbox

pytestmark = pytest.mark.integration

PROBE = Path(__file__).resolve().parent / "dnsprobe.py"
UPLINK, UPSTREAM, DEAD_UPSTREAM = "198.51.100.1", "198.51.100.53", "198.51.100.99"
FRONT_GW, BACK_GW = "10.81.0.1", "10.81.1.1"
RESOLVER = "127.0.0.11"  # inside each container's namespace, as Docker's
MANY = 40  # containers sharing the alias `many`: more A records than fit 512 bytes


def topology(extra: dict | None = None) -> dict:
    containers = {
        "a": {
            "hostname": "alpha",
            "networks": {"front": {"ipv4_address": "10.81.0.10"}},
            "extra_hosts": ["myapp.local:192.0.2.100", "b:192.0.2.55", "gw.local:host-gateway"],
            "dns_search": ["corp.example"],
        },
        "b": {
            "networks": {
                "front": {"ipv4_address": "10.81.0.11", "aliases": ["bee"]},
                "back": {"ipv4_address": "10.81.1.11"},
            }
        },
        "c": {"networks": {"back": {"ipv4_address": "10.81.1.12", "aliases": ["dbalias"]}}},
        "d": {"networks": {"front": {"ipv4_address": "10.81.0.13"}}, "dns": [DEAD_UPSTREAM]},
        **{f"s{i}": {"networks": {"front": {"ipv4_address": f"10.81.0.2{i}", "aliases": ["svc"]}}} for i in (1, 2, 3)},
        **{f"m{i:02d}": {"networks": {"back": {"aliases": ["many"]}}} for i in range(MANY)},
    }
    containers.update(extra or {})
    return {
        "networks": {"front": {"subnet": "10.81.0.0/24"}, "back": {"subnet": "10.81.1.0/24", "internal": True}},
        "containers": containers,
    }


class Lab:
    def __init__(self, sandbox: Sandbox, tmp: Path):
        self.sandbox = sandbox
        self.tmp = tmp
        self.upstream_log = tmp / "upstream.log"
        self.resolv = tmp / "resolv.conf"

    def module(self, name: str, args: dict, **kwargs):
        result = self.sandbox.module(name, args, **kwargs)
        assert not result.failed, result.output
        return result

    def dns(self, topo: dict, **kwargs):
        return self.module(
            "container_dns", {"topology": topo, "host": self.sandbox.name, "resolv_conf": str(self.resolv)}, **kwargs
        )

    def build(self) -> None:
        self.resolv.write_text(f"nameserver {UPSTREAM}\nsearch example.test\noptions timeout:2\n")
        self.module("converge", {"topology": topology(), "host": self.sandbox.name})
        self.sandbox.sh(
            "set -e; ip netns add outside; ip link add up0 type veth peer name eth0 netns outside; "
            f"ip addr add {UPLINK}/24 dev up0; ip link set up0 up; "
            f"ip -n outside addr add {UPSTREAM}/24 dev eth0; ip -n outside link set eth0 up; "
            "ip -n outside link set lo up"
        )
        out = self.tmp / "upstream.out"
        self.sandbox.sh(
            f"ip netns exec outside {sys.executable} {PROBE} upstream {self.upstream_log} {UPSTREAM} >{out} 2>&1 &"
        )
        deadline = time.monotonic() + 10
        while "ready" not in (out.read_text() if out.exists() else ""):
            assert time.monotonic() < deadline, out.read_text() if out.exists() else "no upstream output"
            time.sleep(0.05)

    def ask(self, netns: str, queries: dict[str, dict]) -> dict[str, dict]:
        specs = [{"label": label, **spec} for label, spec in queries.items()]
        out = self.sandbox.sh(
            f"ip netns exec {netns} {sys.executable} {PROBE} ask {shlex.quote(json.dumps(specs))}", timeout=60
        ).stdout
        answers = json.loads(out)
        lost = [label for label, answer in answers.items() if answer["rcode"] == "timeout"]
        lost = [label for label in lost if not queries[label].get("timeout")]  # a timeout asked for is expected
        if lost:
            log = self.sandbox.sh("tail -20 /run/wharf/dns/resolver.log", check=False).stdout
            raise AssertionError(f"no answer from {netns} for {lost}: {answers}\nresolver log: {log}")
        return answers

    def getent(self, netns: str, name: str) -> list[str]:
        out = self.sandbox.sh(f"ip netns exec {netns} getent ahostsv4 {shlex.quote(name)}", check=False).stdout
        return list(dict.fromkeys(line.split()[0] for line in out.splitlines() if line.strip()))

    def upstream_queries(self) -> list[str]:
        return self.upstream_log.read_text().splitlines() if self.upstream_log.exists() else []

    def resolver_pid(self) -> int:
        return int(self.sandbox.sh("cat /run/wharf/dns/resolver.pid").stdout)

    def server_pid(self) -> int:
        return json.loads(self.sandbox.sh("cat /run/wharf/dns/status.json").stdout)["pid"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with built_in_a_sandbox(lambda sandbox: Lab(sandbox, tmp_path_factory.mktemp("dns"))) as built:
        yield built


def q(server: str, name: str, rdtype: str = "A", **extra) -> dict:
    return {"server": server, "name": name, "type": rdtype, **extra}


def test_converge_check_idempotence_and_files(lab):
    check = lab.dns(topology(), check=True, diff=True)
    assert check.changed
    predicted = check.result["changes"]
    assert "create resolver 'wharf-dns'" in predicted
    assert "create file '/etc/netns/a/hosts'" in predicted
    assert lab.sandbox.sh("test -e /run/wharf/dns/state.json", check=False).returncode != 0  # check mode wrote nothing

    first = lab.dns(topology())
    assert first.changed and first.result["changes"] == predicted
    assert first.result["listen"] == sorted(topology()["containers"])  # one per container, in its namespace
    pid = lab.resolver_pid()
    second = lab.dns(topology())
    assert not second.changed, second.result["changes"]
    assert not lab.dns(topology(), check=True).changed
    assert lab.resolver_pid() == pid

    resolv_a = lab.sandbox.sh("cat /etc/netns/a/resolv.conf").stdout.splitlines()
    assert f"nameserver {RESOLVER}" in resolv_a and "search corp.example" in resolv_a
    assert "options timeout:2 ndots:0" in resolv_a
    resolv_b = lab.sandbox.sh("cat /etc/netns/b/resolv.conf").stdout
    assert [line for line in resolv_b.splitlines() if line.startswith("nameserver")] == [f"nameserver {RESOLVER}"]
    assert "search example.test" in resolv_b  # the host's search list when the container sets none

    # through glibc, as any program in the container: extra_hosts win over DNS, host-gateway is the gateway
    assert lab.getent("a", "myapp.local") == ["192.0.2.100"]
    assert lab.getent("a", "b") == ["192.0.2.55"]
    assert lab.getent("a", "gw.local") == [FRONT_GW]
    assert lab.getent("a", "alpha") == ["10.81.0.10"]
    assert lab.getent("a", "bee") == ["10.81.0.11"]  # DNS (not in the hosts file)
    assert lab.getent("c", "b") == ["10.81.1.11"]
    assert lab.getent("a", "www.ext.test") == ["203.0.113.7"]
    assert "www.ext.test A" in lab.upstream_queries()


def test_answers_by_asker(lab):
    lab.dns(topology())
    seen = lab.ask(
        "a",
        {
            "b": q(RESOLVER, "b"),
            "alias": q(RESOLVER, "bee"),
            "qualified": q(RESOLVER, "b.front"),
            "hostname": q(RESOLVER, "alpha"),
            "case": q(RESOLVER, "BeE"),
            "c": q(RESOLVER, "c"),
            "c-alias": q(RESOLVER, "dbalias"),
            "b-back-name": q(RESOLVER, "b.back"),
            "aaaa": q(RESOLVER, "b", "AAAA"),
            "mx": q(RESOLVER, "b", "MX"),
            "ptr": q(RESOLVER, "11.0.81.10.in-addr.arpa", "PTR"),
            "ptr-hidden": q(RESOLVER, "12.1.81.10.in-addr.arpa", "PTR"),
            "unknown": q(RESOLVER, "nosuchname"),
            "com-ns": q(RESOLVER, "com", "NS"),
            "com-ds": q(RESOLVER, "com", "DS"),
            "c-ds": q(RESOLVER, "c", "DS"),
            "forward": q(RESOLVER, "fwd-a.ext.test"),
            "tcp": q(RESOLVER, "b", tcp=True),
            "tcp-forward": q(RESOLVER, "tcp-a.ext.test", tcp=True),
        },
    )
    assert seen["b"]["answers"] == ["10.81.0.11"]
    assert seen["alias"]["answers"] == ["10.81.0.11"]
    assert seen["qualified"]["answers"] == ["10.81.0.11"]
    assert seen["hostname"]["answers"] == ["10.81.0.10"]
    assert seen["case"]["answers"] == ["10.81.0.11"] and seen["case"]["question"] == "BeE."  # 0x20 echoed
    for hidden in ("c", "c-alias", "b-back-name", "ptr-hidden", "c-ds"):
        assert seen[hidden]["rcode"] == "NXDOMAIN", (hidden, seen[hidden])
    assert seen["aaaa"]["rcode"] == "NOERROR" and seen["aaaa"]["answers"] == []
    assert seen["mx"]["rcode"] == "NOERROR" and seen["mx"]["answers"] == []
    assert seen["ptr"]["answers"] == ["b.front."]  # NAME.NETWORK, as Docker answers
    assert seen["forward"]["answers"] == ["203.0.113.7"]
    assert seen["unknown"]["rcode"] == "NXDOMAIN"  # the upstream's answer: single labels are forwarded as Docker does
    assert seen["com-ns"]["rcode"] == seen["com-ds"]["rcode"] == "NXDOMAIN"
    assert seen["tcp"]["answers"] == ["10.81.0.11"]
    assert seen["tcp-forward"]["answers"] == ["203.0.113.7"]

    # b is on both networks: names of both
    both = lab.ask(
        "b", {"a": q(RESOLVER, "a"), "c": q(RESOLVER, "c"), "c2": q(RESOLVER, "dbalias"), "a2": q(RESOLVER, "alpha")}
    )
    assert both["a"]["answers"] == ["10.81.0.10"] and both["a2"]["answers"] == ["10.81.0.10"]
    assert both["c"]["answers"] == ["10.81.1.12"] and both["c2"]["answers"] == ["10.81.1.12"]

    log = lab.upstream_queries()
    assert "fwd-a.ext.test A" in log and "tcp-a.ext.test A" in log
    assert {"nosuchname A", "com NS", "com DS"} <= set(log), log
    topology_names = {"b", "bee", "alpha", "c", "dbalias", "b.back", "b.front"}
    assert not [line for line in log if line.split()[0] in topology_names], log  # never forwarded (moby#35118)
    assert not [line for line in log if "in-addr.arpa" in line], log


def test_internal_network_never_forwards(lab):
    lab.dns(topology())
    before = len(lab.upstream_queries())
    from_c = lab.ask(
        "c",
        {
            "local": q(RESOLVER, "b"),
            "alias": q(RESOLVER, "dbalias"),
            "ext": q(RESOLVER, "leak-c.ext.test"),
            "ext-tcp": q(RESOLVER, "leak-ctcp.ext.test", tcp=True),
            "front-name": q(RESOLVER, "a"),
        },
    )
    assert from_c["local"]["answers"] == ["10.81.1.11"] and from_c["alias"]["answers"] == ["10.81.1.12"]
    assert from_c["front-name"]["rcode"] == "NXDOMAIN"
    assert from_c["ext"]["rcode"] == "REFUSED" and from_c["ext-tcp"]["rcode"] == "REFUSED"
    # the old gateway addresses answer nothing (no resolver there any more), whatever asks
    assert lab.ask("c", {"gw": q(BACK_GW, "b", timeout=1)})["gw"]["rcode"] in ("timeout", "error")
    assert lab.getent("c", "leak-getent.ext.test") == []
    # b is on a non-internal network too: it has external access, so its names are forwarded (as Docker does)
    assert lab.getent("b", "ok-b.ext.test") == ["203.0.113.7"]
    log = lab.upstream_queries()[before:]
    assert not [line for line in log if line.startswith("leak-")], log
    assert "ok-b.ext.test A" in log


def test_round_robin_and_truncation(lab):
    lab.dns(topology())
    first: dict[str, int] = {}
    runs = lab.ask("a", {f"q{i}": q(RESOLVER, "svc") for i in range(30)})
    for result in runs.values():
        assert sorted(result["answers"]) == ["10.81.0.21", "10.81.0.22", "10.81.0.23"]
        first[result["answers"][0]] = first.get(result["answers"][0], 0) + 1
    assert len(first) == 3 and min(first.values()) >= 5, first

    big = lab.ask(
        "b",
        {
            "udp": q(RESOLVER, "many", edns=None),
            "edns": q(RESOLVER, "many", edns=1232),
            "small-edns": q(RESOLVER, "many", edns=512),
            "tcp": q(RESOLVER, "many", tcp=True),
            "fwd-udp": q(RESOLVER, "big.ext.test", edns=None),
            "fwd-tcp": q(RESOLVER, "big.ext.test", tcp=True),
        },
    )
    assert big["udp"]["tc"] and big["udp"]["answers"] == []
    assert big["small-edns"]["tc"]
    assert not big["edns"]["tc"] and len(big["edns"]["answers"]) == MANY
    assert not big["tcp"]["tc"] and len(big["tcp"]["answers"]) == MANY
    assert big["fwd-udp"]["tc"] and len(big["fwd-tcp"]["answers"]) == 40
    # glibc retries over TCP by itself
    assert len(lab.getent("b", "many")) == MANY


def test_upstream_failure_gives_servfail_not_a_hang(lab):
    lab.dns(topology())
    seen = lab.ask("d", {"dead": q(RESOLVER, "x.ext.test"), "local": q(RESOLVER, "a")})
    assert seen["dead"]["rcode"] == "SERVFAIL" and seen["dead"]["ms"] < 5000, seen["dead"]
    assert seen["local"]["answers"] == ["10.81.0.10"]


def test_malformed_packets_reload_under_load_and_supervision(lab):
    lab.dns(topology())
    pid, server = lab.resolver_pid(), lab.server_pid()
    garbage = [
        "00",
        "ffff",
        "12348000000100000000000000",
        "1234010000010000000000000377777700000100",
        "123401000001000000000000" + "3f" * 300,
        "1234012000010000000000010161000001000100" + "00002910",
    ]
    for payload in garbage:
        lab.sandbox.sh(f"ip netns exec a {sys.executable} {PROBE} raw {RESOLVER} {payload}")
    assert lab.ask("a", {"b": q(RESOLVER, "b")})["b"]["answers"] == ["10.81.0.11"]
    assert lab.server_pid() == server

    # queries in a loop while the topology gains a container and the resolver reloads
    out = lab.tmp / "load.json"
    lab.sandbox.sh(f"ip netns exec a {sys.executable} {PROBE} load {RESOLVER} bee 6 >{out} 2>&1 &")
    time.sleep(1)
    grown = topology({"newbie": {"networks": {"front": {"ipv4_address": "10.81.0.77"}}}})
    lab.module("converge", {"topology": grown, "host": lab.sandbox.name})
    changed = lab.dns(grown)
    assert "reload resolver 'wharf-dns'" in changed.result["changes"]
    assert lab.ask("a", {"new": q(RESOLVER, "newbie")})["new"]["answers"] == ["10.81.0.77"]
    deadline = time.monotonic() + 15
    while not (out.exists() and out.read_text().strip()):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    load = json.loads(out.read_text())
    assert load["sent"] > 100 and load["lost"] == 0, load
    assert lab.resolver_pid() == pid and lab.server_pid() == server  # reloaded, not restarted

    # a broken state file: the last good state stays and the error is reported
    lab.sandbox.sh("echo '{broken' > /run/wharf/dns/state.json && kill -HUP $(cat /run/wharf/dns/resolver.pid)")
    deadline = time.monotonic() + 5
    while (
        "error" not in lab.sandbox.sh("cat /run/wharf/dns/status.json").stdout
        or json.loads(lab.sandbox.sh("cat /run/wharf/dns/status.json").stdout)["error"] is None
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert lab.ask("a", {"new": q(RESOLVER, "newbie")})["new"]["answers"] == ["10.81.0.77"]
    repaired = lab.dns(grown)
    assert "write file '/run/wharf/dns/state.json'" in repaired.result["changes"]

    # the server dies: the supervisor starts it again, and the module finds nothing to do
    lab.sandbox.sh(f"kill -9 {lab.server_pid()}")
    deadline = time.monotonic() + 10
    while True:
        try:
            if lab.server_pid() != server and lab.ask("a", {"b": q(RESOLVER, "b")})["b"].get("answers"):
                break
        except (AssertionError, ValueError, KeyError):
            pass
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert not lab.dns(grown).changed

    # a new program means a restart
    lab.sandbox.sh("echo '# old' >> /run/wharf/dns/server.py")
    restarted = lab.dns(grown)
    assert "restart resolver 'wharf-dns'" in restarted.result["changes"]
    assert lab.resolver_pid() != pid


def test_a_port_taken_by_another_program_fails_until_the_resolver_listens(lab):
    """A process inside a new container holds 127.0.0.11:53 there, so the resolver cannot listen for it: every run
    fails (not changed=false without DNS), the other containers are answered meanwhile, and once the port is free
    the resolver listens there (it retries on its own)."""
    topo = topology({"e": {"networks": {"third": {"ipv4_address": "10.81.2.10"}}}})
    topo["networks"]["third"] = {"subnet": "10.81.2.0/24"}
    lab.module("converge", {"topology": topo, "host": lab.sandbox.name})
    holder = lab.tmp / "holder.pid"
    code = (
        "import os,socket,sys,time; s=socket.socket(); s.bind((sys.argv[1], 53)); s.listen(1); "
        "open(sys.argv[2], 'w').write(str(os.getpid())); time.sleep(120)"
    )
    lab.sandbox.sh(f"ip netns exec e {sys.executable} -c {shlex.quote(code)} {RESOLVER} {holder} >/dev/null 2>&1 &")
    deadline = time.monotonic() + 10
    while not (holder.exists() and holder.read_text()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    try:
        for _attempt in range(2):
            failed = lab.sandbox.module(
                "container_dns", {"topology": topo, "host": lab.sandbox.name, "resolv_conf": str(lab.resolv)}
            )
            assert failed.failed, failed.output
            assert f"cannot listen for e: {RESOLVER}:53 in /run/netns/e" in failed.output
        assert lab.ask("a", {"b": q(RESOLVER, "b")})["b"]["answers"] == ["10.81.0.11"]
    finally:
        lab.sandbox.sh(f"kill {holder.read_text()}")
    deadline = time.monotonic() + 15
    while True:  # the resolver binds the freed port by itself
        status = json.loads(lab.sandbox.sh("cat /run/wharf/dns/status.json").stdout)
        if status["error"] is None and "e" in status["listen"]:
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    answers = lab.ask("e", {"udp": q(RESOLVER, "e"), "tcp": q(RESOLVER, "e", tcp=True)})
    assert answers["udp"]["answers"] == answers["tcp"]["answers"] == ["10.81.2.10"]
    assert not lab.dns(topo).changed
    lab.dns(dict(topo, state="absent"))  # e's files go too; the next tests start from the usual topology
    lab.dns(topology())


def test_teardown_removes_files_and_stops_resolver(lab):
    gone = dict(topology(), state="absent")
    lab.dns(gone)
    assert lab.sandbox.sh("ls /etc/netns 2>/dev/null | wc -l").stdout.strip() == "0"
    assert lab.sandbox.sh("test -e /run/wharf/dns/resolver.pid", check=False).returncode != 0
    assert f"{RESOLVER}:53" not in lab.sandbox.sh("ip netns exec a ss -lnu").stdout
    assert not lab.dns(gone).changed

    # started again, then the sandbox host is destroyed: the resolver (a session leader of its own) goes with it
    lab.dns(topology())
    pids = [lab.resolver_pid(), lab.server_pid()]
    lab.sandbox.destroy()
    deadline = time.monotonic() + 5
    while left := [pid for pid in pids if _running(pid)]:  # killed ones may stay zombies until init reaps them
        assert time.monotonic() < deadline, left
        time.sleep(0.05)


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_overlay_names_of_other_hosts_resolve(fleet):
    """Two sandbox hosts on one underlay with an overlay network: each host's resolver answers for the containers of
    the other host (one L2 segment, addresses known from the topology), and a bridge network stays per host."""
    one, two = fleet.add(1), fleet.add(2)
    peers = {one.name: fleet.underlay(1), two.name: fleet.underlay(2)}
    topo = {
        "networks": {"over": {"driver": "overlay", "subnet": "172.30.5.0/24"}, "local": {"subnet": "10.82.0.0/24"}},
        "containers": {
            "o1": {"host": one.name, "networks": {"over": {"ipv4_address": "172.30.5.11", "aliases": ["pair"]}}},
            "o2": {"host": two.name, "networks": {"over": {"ipv4_address": "172.30.5.12", "aliases": ["pair"]}}},
            "l2": {"host": two.name, "networks": {"local": {"ipv4_address": "10.82.0.12"}, "over": {}}},
        },
    }
    for host in (one, two):
        result = host.module("converge", {"topology": topo, "host": host.name, "peers": peers})
        assert not result.failed, result.output
        result = host.module("container_dns", {"topology": topo, "host": host.name, "resolv_conf": "/dev/null"})
        assert not result.failed, result.output
    assert one.sh("ip netns exec o1 getent hosts o2").stdout.split()[0] == "172.30.5.12"
    assert two.sh("ip netns exec o2 getent hosts o1").stdout.split()[0] == "172.30.5.11"
    pair = one.sh("ip netns exec o1 getent ahostsv4 pair").stdout.split()
    assert {"172.30.5.11", "172.30.5.12"} <= set(pair)
    # l2 is on the overlay too: reachable from o1 by name, on its overlay address, never its host-local one
    assert one.sh("ip netns exec o1 getent hosts l2").stdout.split()[0].startswith("172.30.5.")
    assert one.sh("ip netns exec o1 getent hosts l2.local", check=False).returncode != 0
    assert one.sh("ip netns exec o1 ping -n -c1 -W2 o2", check=False).returncode == 0  # by name, across hosts
