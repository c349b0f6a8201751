"""The embedded resolver attacked from inside the containers and from outside the host (issue 15).

One sandbox host for the file: two networks, a container on both (``neighbour``), a name only ``db`` may see
(``secret``), and an ``outside`` namespace on the host's uplink that runs a slow upstream server (dnsattack.py).
Every attacker is root in its namespace: it may add any address to its interface and send anything.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import Sandbox, built_in_a_sandbox

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
PROBE, ATTACK = HERE / "dnsprobe.py", HERE / "dnsattack.py"
UPLINK, UPSTREAM = "198.51.100.1", "198.51.100.53"
WEB_GW = "10.83.0.1"
NEIGHBOUR_WEB, SECRET = "10.83.0.10", "10.83.1.30"
VICTIM = "10.83.0.30"
SLOW_DELAY = 1.0  # seconds the upstream takes for a name under slow.ext.test

TOPOLOGY = {
    "networks": {"web": {"subnet": "10.83.0.0/24"}, "db": {"subnet": "10.83.1.0/24"}},
    "containers": {
        "neighbour": {"networks": {"web": {"ipv4_address": NEIGHBOUR_WEB}, "db": {"ipv4_address": "10.83.1.10"}}},
        "secret": {"networks": {"db": {"ipv4_address": SECRET, "aliases": ["secretdb"]}}},
        "attacker": {"networks": {"web": {"ipv4_address": "10.83.0.20"}}},
        "victim": {"networks": {"web": {"ipv4_address": VICTIM}}},
        "flooder": {"networks": {"web": {"ipv4_address": "10.83.0.40"}}},
    },
}


class Lab:
    def __init__(self, sandbox: Sandbox, tmp: Path):
        self.sandbox, self.tmp = sandbox, tmp
        self.resolv = tmp / "resolv.conf"
        self.upstream_counts = tmp / "upstream.json"

    def build(self) -> None:
        self.resolv.write_text(f"nameserver {UPSTREAM}\n")
        for module in ("converge", "container_dns"):
            args = {"topology": TOPOLOGY, "host": self.sandbox.name}
            if module == "container_dns":
                args["resolv_conf"] = str(self.resolv)
            result = self.sandbox.module(module, args)
            assert not result.failed, result.output
        self.sandbox.sh(
            "set -e; ip netns add outside; ip link add up0 type veth peer name eth0 netns outside; "
            f"ip addr add {UPLINK}/24 dev up0; ip link set up0 up; "
            f"ip -n outside addr add {UPSTREAM}/24 dev eth0; ip -n outside link set eth0 up; "
            f"ip -n outside link set lo up; ip -n outside route add 10.83.0.0/16 via {UPLINK}"
        )
        out = self.tmp / "upstream.out"
        self.sandbox.sh(
            f"ip netns exec outside {sys.executable} {ATTACK} slowupstream {UPSTREAM} {SLOW_DELAY} "
            f"{self.upstream_counts} >{out} 2>&1 &"
        )
        self.wait_for(lambda: "ready" in _text(out), f"the upstream did not start: {_text(out)}")

    def wait_for(self, condition, message: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, message
            time.sleep(0.05)

    def ask(self, netns: str, queries: dict[str, dict], timeout: float = 60) -> dict[str, dict]:
        specs = [{"label": label, **spec} for label, spec in queries.items()]
        command = f"ip netns exec {netns} {sys.executable} {PROBE} ask {shlex.quote(json.dumps(specs))}"
        return json.loads(self.sandbox.sh(command, timeout=timeout).stdout)

    def background(self, netns: str, script: Path, *args: object) -> Path:
        """Start a long-running probe in ``netns``; its output file (``ready`` first, its JSON result last). The
        probe's pid is in OUT.pid (``stop``)."""
        out = self.tmp / f"{netns}-{uuid.uuid4().hex[:6]}.out"
        words = " ".join(shlex.quote(str(a)) for a in (*args, out))
        self.sandbox.sh(f"ip netns exec {netns} {sys.executable} {script} {words} >{out}.log 2>&1 & echo $! >{out}.pid")
        self.wait_for(
            lambda: "ready" in _text(out), f"{script.name} {args[0]} did not start: {_text(Path(f'{out}.log'))}"
        )
        return out

    def stop(self, out: Path) -> None:
        self.sandbox.sh(f"kill {_text(Path(f'{out}.pid')).strip()} 2>/dev/null", check=False)

    def result_of(self, out: Path, timeout: float = 40) -> dict:
        self.wait_for(lambda: len(_text(out).splitlines()) > 1, f"no result in {out}: {_text(out)}", timeout)
        return json.loads(_text(out).splitlines()[-1])

    def log_tail(self) -> str:
        return self.sandbox.sh("tail -5 /run/wharf/dns/resolver.log", check=False).stdout


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with built_in_a_sandbox(lambda sandbox: Lab(sandbox, tmp_path_factory.mktemp("dnsattack"))) as built:
        yield built


def _q(name: str, rdtype: str = "A", **extra) -> dict:
    return {"server": "resolv", "name": name, "type": rdtype, **extra}


def _answers(seen: dict) -> list[str]:
    return [a for result in seen.values() for a in result.get("answers", [])]


def test_a_self_assigned_neighbour_address_gets_no_other_names(lab):
    """The attacker (on web only) takes the address the multi-homed neighbour has on web: it must still not learn
    the names of db. The neighbour itself does (the positive control), before and after."""
    stolen = {
        "secret": _q("secret"),
        "alias": _q("secretdb"),
        "qualified": _q("secret.db"),
        "ptr": _q("30.1.83.10.in-addr.arpa", "PTR"),
    }
    control = lab.ask("neighbour", stolen)
    assert control["secret"]["answers"] == [SECRET] and control["alias"]["answers"] == [SECRET], control
    assert control["ptr"]["answers"] == ["secret.db."], control

    lab.sandbox.sh(f"ip -n attacker addr add {NEIGHBOUR_WEB}/24 dev eth0")
    # and tells the host that the address is at its MAC now (what sends it the neighbour's answers)
    garp = lab.background("attacker", ATTACK, "garp", "eth0", NEIGHBOUR_WEB, 50)
    try:
        for attempt in range(2):
            tries = {f"{label}-{attempt}": dict(spec, timeout=1) for label, spec in stolen.items()}
            forged = {f"{label}-forged": dict(spec, source=NEIGHBOUR_WEB) for label, spec in tries.items()}
            to_gateway = {f"{label}-gw": dict(spec, server=WEB_GW) for label, spec in forged.items()}
            seen = lab.ask("attacker", {**tries, **forged, **to_gateway})
            leaked = {label: r for label, r in seen.items() if r.get("answers")}
            assert not leaked, f"the attacker got db's names: {leaked}"
            own = lab.ask("attacker", {"own": _q("victim", timeout=3)})["own"]  # its own view still answers
            assert own.get("answers") == [VICTIM], own
    finally:
        lab.stop(garp)
        lab.sandbox.sh(f"ip -n attacker addr del {NEIGHBOUR_WEB}/24 dev eth0")
        lab.sandbox.sh("ip neigh flush dev br-web", check=False)
    assert lab.ask("neighbour", stolen)["secret"]["answers"] == [SECRET]


def test_queries_from_outside_are_neither_answered_nor_reflected(lab):
    """A machine outside the host (the uplink's `outside`) asks the web gateway, from its own address and with the
    victim's address forged: nothing answers it, and the victim, which asked nothing, receives no DNS answer."""
    capture = lab.background("victim", ATTACK, "capture", 12)
    lab.sandbox.sh(f"ip -n outside addr add {VICTIM}/32 dev lo")
    try:
        own = {f"own-{i}": {"server": WEB_GW, "name": "victim", "timeout": 0.5} for i in range(3)}
        forged = {
            f"forged-{i}": {"server": WEB_GW, "name": name, "source": VICTIM, "timeout": 0.5}
            for i, name in enumerate(["neighbour", "secret", "reflect-a.ext.test", "victim"] * 3)
        }
        seen = lab.ask("outside", {**own, **forged})
    finally:
        lab.sandbox.sh(f"ip -n outside addr del {VICTIM}/32 dev lo")
    # the capture ends by itself; its result counts what reached the victim meanwhile
    received = lab.result_of(capture)
    assert received["dns"] == 0, f"the victim received {received['dns']} answers it never asked for: {received}"
    answered = {label: r for label, r in seen.items() if r["rcode"] != "timeout"}
    assert not answered, f"the resolver answered a machine outside: {answered}"


def test_a_flooding_container_does_not_starve_its_neighbour(lab):
    """The flooder sends about 6,000 queries a second for distinct names the upstream answers a second late; its
    neighbour still gets its external names (>= 45 of 50) and every local name, at once."""
    flood = lab.background("flooder", ATTACK, "flood", "resolv", 8, 6000)
    time.sleep(1.0)  # the flood has filled whatever it can fill
    queries = {f"ext-{i}": _q(f"fast-{i}.ext.test", timeout=3) for i in range(50)}
    queries.update({f"local-{i}": _q(["neighbour", "attacker"][i % 2], timeout=3) for i in range(20)})
    seen = lab.ask("victim", queries)
    flooded = lab.result_of(flood)
    external = [label for label, r in seen.items() if label.startswith("ext-") and r.get("answers") == ["203.0.113.7"]]
    local = [label for label, r in seen.items() if label.startswith("local-") and r.get("answers")]
    print(f"flood {flooded}, neighbour: {len(external)}/50 external, {len(local)}/20 local")  # the numbers, with -s
    assert flooded["sent"] > 20000, flooded  # the flood was real
    assert len(external) >= 45, (len(external), flooded, seen, lab.log_tail())
    assert len(local) == 20, (seen, lab.log_tail())
    slow = max((r["ms"] for label, r in seen.items() if label.startswith("local-")), default=0)
    assert slow < 2000, seen  # local names never wait on the upstream


def test_tcp_connections_of_one_container_leave_slots_for_its_neighbour(lab):
    """The attacker holds as many TCP connections as it can (8 from each of 14 addresses, 13 of them
    self-assigned); the victim's TCP queries are still answered, 5 of 5."""
    extra = [f"10.83.0.{100 + i}" for i in range(13)]
    for address in extra:
        lab.sandbox.sh(f"ip -n attacker addr add {address}/24 dev eth0")
    try:
        hold = lab.background("attacker", ATTACK, "tcphold", "resolv", 15, 8, json.dumps([None, *extra]))
        time.sleep(1.0)
        seen = lab.ask("victim", {f"tcp-{i}": _q("neighbour", tcp=True, timeout=3) for i in range(5)})
        held = lab.result_of(hold)
    finally:
        for address in extra:
            lab.sandbox.sh(f"ip -n attacker addr del {address}/24 dev eth0", check=False)
    answered = [label for label, r in seen.items() if r.get("answers") == [NEIGHBOUR_WEB]]
    print(f"tcp hold {held}, neighbour: {len(answered)}/5 over TCP")  # the numbers, with -s
    assert held["opened"] >= 8, held
    assert len(answered) == 5, (seen, held, lab.log_tail())


def test_a_removed_container_leaves_nothing_held_and_a_recreated_one_is_served(lab):
    """The resolver's sockets hold a container's namespace (and so its veths): a converge that removes a container
    closes them in its DNS step, so nothing of the container is left; a namespace replaced behind the resolver's
    back (same name, same state) is listened for again by itself."""
    topo = json.loads(json.dumps(TOPOLOGY))
    topo["containers"]["brief"] = {"networks": {"web": {"ipv4_address": "10.83.0.50"}}}
    args = {"host": lab.sandbox.name, "dns": True, "resolv_conf": str(lab.resolv)}
    result = lab.sandbox.module("converge", {"topology": topo, **args})
    assert not result.failed, result.output
    assert lab.ask("brief", {"own": _q("victim", timeout=3)})["own"].get("answers") == [VICTIM]
    links_before = set(lab.sandbox.links())
    topo["containers"]["brief"]["state"] = "absent"
    result = lab.sandbox.module("converge", {"topology": topo, **args})
    assert not result.failed, result.output
    status = json.loads(lab.sandbox.sh("cat /run/wharf/dns/status.json").stdout)
    assert "brief" not in status["listen"] and status["error"] is None, status
    # the namespace is freed once nothing holds it (the kernel does it asynchronously): its veth goes with it
    lab.wait_for(lambda: len(links_before - set(lab.sandbox.links())) == 1, "the removed container's veth stays")
    assert not lab.sandbox.module("converge", {"topology": topo, **args}).changed

    # the victim's namespace replaced by hand under the same name: the state is the same, no reload comes, and the
    # resolver finds the new namespace by itself (its pin check)
    lab.sandbox.sh("ip netns del victim")
    result = lab.sandbox.module("converge", {"topology": topo, **args})
    assert not result.failed, result.output
    lab.wait_for(
        lambda: lab.ask("victim", {"n": _q("neighbour", timeout=1)})["n"].get("answers") == [NEIGHBOUR_WEB],
        f"the recreated victim is not answered: {lab.log_tail()}",
    )
