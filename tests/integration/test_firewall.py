"""wharf.network.firewall and port_publish on a sandbox host, proven with real TCP and UDP traffic.

The sandbox host is the machine; an `outside` namespace plays another machine on its uplink
(203.0.113.0/24, default route via the host). Containers and networks are built with the collection's own
modules; servers in every container answer "NAME CLIENT_ADDRESS", so each probe shows who answered and
which source address they saw (netpeer.py). Before the firewall, every path is open: the probes after it
show what the firewall blocks, not what routing never allowed.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

PEER = Path(__file__).resolve().parent / "netpeer.py"
HOST = "203.0.113.1"
OUTSIDE = "203.0.113.2"

NETWORKS = [
    {"bridge": "br-front", "subnet": "172.28.0.0/24"},
    {"bridge": "br-back", "subnet": "172.29.0.0/24"},
    {"bridge": "br-int", "subnet": "172.30.0.0/24", "internal": True},
    {"bridge": "br-noicc", "subnet": "172.31.0.0/24", "icc": False},
]
# container -> (bridge, address)
CONTAINERS = {
    "a1": ("br-front", "172.28.0.10"),
    "a2": ("br-front", "172.28.0.11"),
    "b1": ("br-back", "172.29.0.10"),
    "i1": ("br-int", "172.30.0.10"),
    "c1": ("br-noicc", "172.31.0.10"),
    "c2": ("br-noicc", "172.31.0.11"),
}
A1, A2, B1, I1, C1 = (CONTAINERS[name][1] for name in ("a1", "a2", "b1", "i1", "c1"))
PUBLISHES = [
    {"address": A1, "port": "8080:80"},
    {"address": A1, "port": "5353:53/udp"},
    {"address": A1, "port": "127.0.0.1:8081:80"},
    {"address": C1, "port": "8090:80"},
]


class Lab:
    """The sandbox host with its containers, the `outside` machine and servers everywhere."""

    def __init__(self, sandbox, tmp_path: Path):
        self.sandbox = sandbox
        self.tmp = tmp_path

    def module(self, name: str, args: dict, **kwargs):
        result = self.sandbox.module(name, args, **kwargs)
        assert not result.failed, result.output
        return result

    def build(self) -> None:
        sandbox = self.sandbox
        sandbox.sh("sysctl -qw net.ipv4.ip_forward=1")
        self.module("netns", {"namespaces": [{"name": name} for name in [*CONTAINERS, "outside"]]})
        bridges = [{"name": n["bridge"], "forwarding": True} for n in NETWORKS]
        self.module("bridge", {"bridges": bridges})
        veths = [
            {"name": f"ve-{name}", "peer": "eth0", "peer_namespace": name, "master": bridge}
            for name, (bridge, _address) in CONTAINERS.items()
        ]
        veths.append({"name": "uplink", "peer": "eth0", "peer_namespace": "outside"})
        self.module("veth", {"veths": veths})
        interfaces = [{"name": n["bridge"], "addresses": [n["subnet"].replace(".0/24", ".1/24")]} for n in NETWORKS]
        for name, (_bridge, address) in CONTAINERS.items():
            gateway = address.rsplit(".", 1)[0] + ".1"
            interfaces.append(
                {"name": "eth0", "namespace": name, "addresses": [f"{address}/24"], "routes": [{"gateway": gateway}]}
            )
        interfaces.append({"name": "uplink", "addresses": [f"{HOST}/24"]})
        interfaces.append(
            {"name": "eth0", "namespace": "outside", "addresses": [f"{OUTSIDE}/24"], "routes": [{"gateway": HOST}]}
        )
        self.module("ip_addr", {"interfaces": interfaces})
        # the other machine knows the way to the container subnets: only the firewall stops it
        sandbox.sh(f"ip -n outside route add 172.16.0.0/12 via {HOST}")
        servers = []
        for name in [*CONTAINERS, "outside"]:
            servers += [[name, "tcp", 80, name], [name, "udp", 53, name]]
        self.serve(servers)

    def serve(self, specs: list) -> None:
        log = self.tmp / f"serve-{time.monotonic_ns()}.log"
        self.sandbox.sh(f"{sys.executable} {PEER} serve {shlex.quote(json.dumps(specs))} >{log} 2>&1 &")
        deadline = time.monotonic() + 10
        while "ready" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, log.read_text() if log.exists() else "no server log"
            time.sleep(0.02)

    def probe(self, probes: dict[str, tuple], timeout: float = 1.0) -> dict[str, str | None]:
        """label -> (netns or None for the host, proto, host, port[, source port])."""
        specs = []
        for label, (netns, proto, host, port, *rest) in probes.items():
            spec = {"label": label, "netns": netns, "proto": proto, "host": host, "port": port, "timeout": timeout}
            if rest:
                spec["sport"] = rest[0]
            specs.append(spec)
        out = self.sandbox.sh(f"{sys.executable} {PEER} probe {shlex.quote(json.dumps(specs))}").stdout
        return json.loads(out)

    def nft_json(self, *args: str) -> list[dict]:
        return json.loads(self.sandbox.sh("nft -j " + " ".join(args)).stdout)["nftables"]

    def table_handle(self, name: str = "wharf") -> int | None:
        for entry in self.nft_json("list", "tables"):
            table = entry.get("table")
            if table and table["family"] == "inet" and table["name"] == name:
                return table["handle"]
        return None

    def monitor(self) -> tuple[str, Path]:
        """Start `nft monitor` inside the sandbox; returns its pid and output file."""
        out = self.tmp / f"monitor-{time.monotonic_ns()}.txt"
        pid = self.sandbox.sh(f"nft monitor >{out} 2>&1 & echo $!").stdout.strip()
        time.sleep(0.3)
        return pid, out

    def stop(self, pid: str) -> None:
        self.sandbox.sh(f"kill {pid}", check=False)

    def counter(self, netns: str | None, rule: str, hook: str = "prerouting") -> None:
        """A test-only table `inet wtprobe` counting the packets `rule` matches (priority -400: first)."""
        prefix = f"ip netns exec {netns} " if netns else ""
        self.sandbox.sh(
            f"{prefix}nft add table inet wtprobe && "
            f"{prefix}nft add chain inet wtprobe {hook} '{{ type filter hook {hook} priority -400; }}' && "
            f"{prefix}nft add rule inet wtprobe {hook} {rule} counter"
        )

    def counted(self, netns: str | None) -> int:
        prefix = f"ip netns exec {netns} " if netns else ""
        total = 0
        for entry in json.loads(self.sandbox.sh(f"{prefix}nft -j list table inet wtprobe").stdout)["nftables"]:
            for expr in entry.get("rule", {}).get("expr", []):
                if "counter" in expr:
                    total += expr["counter"]["packets"]
        return total


@pytest.fixture
def lab(sandbox, tmp_path):
    built = Lab(sandbox, tmp_path)
    built.build()
    return built


def firewall_args(**extra) -> dict:
    return {"networks": NETWORKS, "publishes": PUBLISHES, "exclusive": True, **extra}


def test_isolation_egress_and_published_ports(lab):
    before = lab.probe(
        {
            "cross": ("a1", "tcp", B1, 80),
            "direct": ("outside", "tcp", A1, 80),
            "internal egress": ("i1", "tcp", OUTSIDE, 80),
            "icc": ("c2", "tcp", C1, 80),
        }
    )
    assert all(before.values()), f"routing must be open before the firewall: {before}"

    predicted = lab.module("firewall", firewall_args(), check=True, diff=True)
    assert predicted.changed
    assert lab.table_handle() is None, "check mode changed nothing"
    assert "create publish '0.0.0.0:8080/tcp'" in predicted.result["changes"]
    assert "dnat ip to meta l4proto . th dport map @publish-any" in predicted.result["diff"]["after"]
    applied = lab.module("firewall", firewall_args())
    assert applied.result["changes"] == predicted.result["changes"]
    assert applied.result["firewall"]["drift"] is None
    assert lab.table_handle("wharf-user") is not None

    seen = lab.probe(
        {
            "same network tcp": ("a2", "tcp", A1, 80),
            "same network udp": ("a2", "udp", A1, 53),
            "front to back": ("a1", "tcp", B1, 80),
            "back to front": ("b1", "tcp", A1, 80),
            "back to front udp": ("b1", "udp", A1, 53),
            "icc false": ("c2", "tcp", C1, 80),
            "into internal": ("a1", "tcp", I1, 80),
            "internal egress": ("i1", "tcp", OUTSIDE, 80),
            "internal egress udp": ("i1", "udp", OUTSIDE, 53),
            "internal to published": ("i1", "tcp", HOST, 8080),
            "egress tcp": ("a1", "tcp", OUTSIDE, 80),
            "egress udp": ("b1", "udp", OUTSIDE, 53),
            "direct tcp": ("outside", "tcp", A1, 80),
            "direct udp": ("outside", "udp", A1, 53),
            "published tcp": ("outside", "tcp", HOST, 8080),
            "published udp": ("outside", "udp", HOST, 5353),
            "loopback publish from outside": ("outside", "tcp", HOST, 8081),
            "from host": (None, "tcp", HOST, 8080),
            "from host 127.0.0.1": (None, "tcp", "127.0.0.1", 8080),
            "loopback publish from host": (None, "tcp", "127.0.0.1", 8081),
            "hairpin": ("a2", "tcp", HOST, 8080),
            "hairpin icc false": ("c2", "tcp", HOST, 8090),
            "other network to published": ("b1", "tcp", HOST, 8080),
        }
    )
    assert seen == {
        "same network tcp": "a1 172.28.0.11",
        "same network udp": "a1 172.28.0.11",
        "front to back": None,
        "back to front": None,
        "back to front udp": None,
        "icc false": None,
        "into internal": None,
        "internal egress": None,
        "internal egress udp": None,
        "internal to published": None,
        "egress tcp": f"outside {HOST}",  # masquerade: outside sees the host
        "egress udp": f"outside {HOST}",
        "direct tcp": None,  # no direct routing to container addresses (moby#48724)
        "direct udp": None,
        "published tcp": f"a1 {OUTSIDE}",  # the container sees the real client
        "published udp": f"a1 {OUTSIDE}",
        "loopback publish from outside": None,
        "from host": f"a1 {HOST}",
        "from host 127.0.0.1": "a1 172.28.0.1",
        "loopback publish from host": "a1 172.28.0.1",
        "hairpin": "a1 172.28.0.1",
        "hairpin icc false": "c1 172.31.0.1",
        "other network to published": f"a1 {B1}",
    }

    # a second run is a no-op: changed=false and not one netlink message to nftables
    handle = lab.table_handle()
    pid, events = lab.monitor()
    try:
        again = lab.module("firewall", firewall_args())
        lab.sandbox.sh("nft add table inet wtcontrol && nft delete table inet wtcontrol")
        time.sleep(0.3)
    finally:
        lab.stop(pid)
    assert not again.changed, again.result["changes"]
    assert again.result["changes"] == []
    text = events.read_text()
    assert "wtcontrol" in text, f"the monitor saw nothing at all: {text!r}"
    assert "wharf" not in text, text
    assert lab.table_handle() == handle
    assert not lab.module("firewall", firewall_args(), check=True).changed


def test_loopback_publish_unreachable_even_when_routed(lab):
    lab.module("firewall", firewall_args())
    # the neighbour sends to 127.0.0.1 through the host, with the kernel's own loopback guards taken off
    lab.sandbox.sh(
        "ip netns exec outside sh -c '"
        "ip route del local 127.0.0.0/8 dev lo table local; ip route del local 127.0.0.1 dev lo table local; "
        f"ip route add 127.0.0.1/32 via {HOST}; "
        "sysctl -qw net.ipv4.conf.all.route_localnet=1 net.ipv4.conf.eth0.route_localnet=1'"
    )
    lab.counter(None, 'iifname "uplink" ip daddr 127.0.0.1 tcp dport 8081')
    lab.counter("a1", f"ip saddr {OUTSIDE} tcp dport 80")
    seen = lab.probe({"tcp": ("outside", "tcp", "127.0.0.1", 8081), "again": ("outside", "tcp", "127.0.0.1", 8081)})
    assert seen == {"tcp": None, "again": None}
    assert lab.counted(None) >= 2, "the packets reached the host"
    assert lab.counted("a1") == 0, "and none reached the container"
    assert lab.probe({"host": (None, "tcp", "127.0.0.1", 8081)}) == {"host": "a1 172.28.0.1"}

    # control: without the guard and the prerouting exclusion (an edit of our table) they do get through...
    lab.sandbox.sh(
        "nft flush chain inet wharf guard && nft flush chain inet wharf prerouting && "
        "nft add rule inet wharf prerouting dnat ip to ip daddr . meta l4proto . th dport map @publish-addr"
    )
    lab.probe({"tcp": ("outside", "tcp", "127.0.0.1", 8081)})
    assert lab.counted("a1") >= 1, "without the guard the neighbour reaches the container (moby#45610)"
    # ...and the next run reports the edit and restores the table
    restored = lab.module("firewall", firewall_args())
    assert restored.changed
    assert restored.result["firewall"]["drift"] == "changed outside wharf.network"
    assert "restore nftables table 'inet wharf': changed outside wharf.network" in restored.result["changes"]
    reached = lab.counted("a1")
    lab.probe({"tcp": ("outside", "tcp", "127.0.0.1", 8081)})
    assert lab.counted("a1") == reached


def test_drift_is_reported_and_restored(lab):
    lab.module("firewall", firewall_args())
    lab.sandbox.sh("nft add rule inet wharf-user forward ip saddr 192.0.2.0/24 drop")  # a user rule

    lab.sandbox.sh("nft delete table inet wharf")
    assert lab.probe({"published": ("outside", "tcp", HOST, 8080)}) == {"published": None}
    predicted = lab.module("firewall", firewall_args(), check=True)
    assert predicted.result["firewall"]["drift"].startswith("missing")
    restored = lab.module("firewall", firewall_args())
    assert restored.result["firewall"]["drift"].startswith("missing")
    assert [c for c in restored.result["changes"] if "nftables" in c] == [
        "restore nftables table 'inet wharf': missing: deleted, or the ruleset was flushed "
        "(a firewalld reload does that)"
    ]
    assert "192.0.2.0/24" in lab.sandbox.sh("nft list table inet wharf-user").stdout, "the user table is untouched"
    assert lab.probe({"published": ("outside", "tcp", HOST, 8080)}) == {"published": f"a1 {OUTSIDE}"}
    assert not lab.module("firewall", firewall_args()).changed

    # a flushed ruleset (inside this sandbox only) loses both tables: both come back, isolation too
    lab.sandbox.sh("nft flush ruleset")
    assert lab.probe({"cross": ("a1", "tcp", B1, 80)}) == {"cross": "b1 172.28.0.10"}
    restored = lab.module("firewall", firewall_args())
    assert "create nftables table 'inet wharf-user'" in restored.result["changes"]
    assert restored.result["firewall"]["drift"].startswith("missing")
    seen = lab.probe({"cross": ("a1", "tcp", B1, 80), "published": ("outside", "tcp", HOST, 8080)})
    assert seen == {"cross": None, "published": f"a1 {OUTSIDE}"}

    # an edited rule (a publish added by hand) is drift as well
    lab.sandbox.sh(f"nft add element inet wharf publish-any '{{ tcp . 9999 : {A1} . 80 }}'")
    restored = lab.module("firewall", firewall_args())
    assert restored.result["firewall"]["drift"] == "changed outside wharf.network"
    assert "9999" not in lab.sandbox.sh("nft list map inet wharf publish-any").stdout
    assert not lab.module("firewall", firewall_args()).changed

    lab.sandbox.sh("nft add rule inet wharf-user forward ip saddr 192.0.2.0/24 drop")  # the flush took it
    removed = lab.module("firewall", {"state": "absent"})
    assert "delete nftables table 'inet wharf'" in removed.result["changes"]
    assert lab.table_handle() is None
    assert lab.table_handle("wharf-user") is not None, "it holds a user rule: kept"


def test_conflicts_fail_before_any_change(lab):
    lab.module("firewall", firewall_args())
    lab.serve([[None, "tcp", 2222, "host"], [None, "udp", 5300, "host"]])  # host processes
    listing = lab.sandbox.sh("nft list ruleset").stdout

    duplicate = lab.sandbox.module(
        "firewall",
        firewall_args(publishes=[{"address": A1, "port": "127.0.0.1:7000:80"}, {"address": A2, "port": "7000:80"}]),
    )
    assert duplicate.failed
    assert duplicate.result["errors"] == [
        "publishes[1] 0.0.0.0:7000/tcp -> 172.28.0.11:80 clashes with publishes[0] 127.0.0.1:7000/tcp -> "
        "172.28.0.10:80: the same host port and protocol (0.0.0.0 is every address)"
    ]
    earlier = lab.sandbox.module("port_publish", {"publishes": [{"address": A2, "port": "8079-8081:80-82"}]})
    assert earlier.failed
    assert earlier.result["errors"] == [
        "publishes[0] 0.0.0.0:8079-8081/tcp -> 172.28.0.11:80-82 clashes with (published earlier) "
        "0.0.0.0:8080/tcp -> 172.28.0.10:80: the same host port and protocol (0.0.0.0 is every address)"
    ]
    in_use = lab.sandbox.module(
        "port_publish",
        {"publishes": [{"address": A1, "port": "2222:22"}, {"address": A1, "port": "5300:53/udp"}]},
    )
    assert in_use.failed
    errors = in_use.result["errors"]
    assert len(errors) == 2, errors
    assert errors[0].startswith(
        "publishes[0] 0.0.0.0:2222/tcp -> 172.28.0.10:22: a host process already listens on 0.0.0.0:2222/tcp (pid "
    )
    assert errors[1].startswith(
        "publishes[1] 0.0.0.0:5300/udp -> 172.28.0.10:53: a host process already listens on 0.0.0.0:5300/udp (pid "
    )
    internal = lab.sandbox.module("port_publish", {"publishes": [{"address": I1, "port": "7001:80"}]})
    assert internal.failed
    assert "is on internal network br-int" in internal.result["msg"]
    assert lab.sandbox.sh("nft list ruleset").stdout == listing, "nothing changed"


def test_port_publish_shares_the_table_and_free_ports_stay(lab):
    lab.module("firewall", {"networks": NETWORKS, "exclusive": True})
    assert lab.probe({"cross": ("a1", "tcp", B1, 80)}) == {"cross": None}

    first = lab.module("port_publish", {"publishes": [{"address": A2, "target": 80}]})
    port = int(first.result["publishes"][0]["published"])
    assert 32768 <= port <= 60999
    assert first.result["publishes"][0]["auto"] is True
    seen = lab.probe({"free port": ("outside", "tcp", HOST, port), "cross": ("a1", "tcp", B1, 80)})
    assert seen == {"free port": f"a2 {OUTSIDE}", "cross": None}, "networks stay isolated"
    assert not lab.module("port_publish", {"publishes": [{"address": A2, "target": 80}]}).changed

    more = lab.module("port_publish", {"publishes": [{"address": B1, "port": "9000-9001:80-81"}]})
    assert more.result["changes"][0] == "create publish '0.0.0.0:9000-9001/tcp'"
    again = lab.module("firewall", {"state": "present"})
    assert not again.changed
    assert [p["published"] for p in again.result["firewall"]["publishes"]] == [str(port), "9000-9001"]
    assert [n["bridge"] for n in again.result["firewall"]["networks"]] == [n["bridge"] for n in NETWORKS]

    gone = lab.module("port_publish", {"publishes": [{"address": A2, "target": 80}], "state": "absent"})
    assert gone.result["changes"][0].startswith("delete publish 'free port 0.0.0.0/tcp -> 172.28.0.11:80'")
    assert lab.probe({"free port": ("outside", "tcp", HOST, port)}) == {"free port": None}
    back = lab.module("port_publish", {"publishes": [{"address": A2, "target": 80}]})
    assert int(back.result["publishes"][0]["published"]) == port, "derived from the publish, not from history"


def test_udp_mapping_change_flushes_stale_conntrack(lab):
    to_a1 = {"publishes": [{"address": A1, "port": "5353:53/udp"}]}
    to_a2 = {"publishes": [{"address": A2, "port": "5353:53/udp"}]}
    lab.module("firewall", {"networks": NETWORKS, "exclusive": True})
    lab.module("port_publish", to_a1)
    client = ("outside", "udp", HOST, 5353, 40000)  # one client: the same source port every time
    assert lab.probe({"dns": client}) == {"dns": f"a1 {OUTSIDE}"}
    assert "dport=5353" in lab.sandbox.sh("cat /proc/net/nf_conntrack").stdout

    changed = lab.module("port_publish", to_a2, check=True, diff=True)
    assert "flush conntrack 'udp 0.0.0.0:5353'" in changed.result["changes"]
    changed = lab.module("port_publish", to_a2)
    lines = changed.result["changes"]
    assert lines[0] == "update publish '0.0.0.0:5353/udp': target '172.28.0.10:53' -> '172.28.0.11:53'"
    assert lines[1].startswith("update nftables table 'inet wharf': digest ")
    assert lines[2:] == ["flush conntrack 'udp 0.0.0.0:5353'"]
    assert lab.probe({"dns": client}) == {"dns": f"a2 {OUTSIDE}"}, "the same client reaches the new target"

    # control: the same change made without the flush leaves the client on the old target
    lab.sandbox.sh(
        "nft delete element inet wharf publish-any '{ udp . 5353 }' && "
        f"nft add element inet wharf publish-any '{{ udp . 5353 : {A1} . 53 }}'"
    )
    assert lab.probe({"dns": client}) == {"dns": f"a2 {OUTSIDE}"}, "stale: still the old binding"
