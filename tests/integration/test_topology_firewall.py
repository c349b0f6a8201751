"""The topology role with the firewall: isolation, egress, published ports from the topology's `ports`, drift
repair and conflicts, proven with real TCP and UDP traffic on a sandbox host.

An `outside` namespace plays another machine on the host's uplink (203.0.113.0/24) and knows a route to the
container subnets, so only the firewall can stop it. Servers in every container answer "NAME CLIENT_ADDRESS"
(netpeer.py), so each probe shows who answered and which source address they saw.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
from test_firewall import Lab
from test_topology_role import Playbook

pytestmark = pytest.mark.integration

HOST = "203.0.113.1"
OUTSIDE = "203.0.113.2"
WEB, APP_FRONT, APP_BACK, DB, VAULT = "10.61.0.10", "10.61.0.20", "10.62.0.20", "10.62.0.30", "10.63.0.40"

TOPOLOGY = {
    "networks": {
        "front": {"subnet": "10.61.0.0/24"},
        "back": {"subnet": "10.62.0.0/24"},
        "secret": {"subnet": "10.63.0.0/24", "internal": True},
    },
    "containers": {
        "web": {
            "networks": {"front": {"ipv4_address": WEB}},
            "ports": ["8080:80", "127.0.0.1:8081:80", "5353:53/udp", {"target": 80}],
        },
        "app": {"networks": {"front": {"ipv4_address": APP_FRONT}, "back": {"ipv4_address": APP_BACK}}},
        "db": {"networks": {"back": {"ipv4_address": DB}}},
        "vault": {"networks": {"secret": {"ipv4_address": VAULT}}},
    },
}


def with_changes(**containers: dict) -> dict:
    topology = json.loads(json.dumps(TOPOLOGY))
    topology["containers"].update(containers)
    return topology


@pytest.fixture
def lab(sandbox, tmp_path: Path):
    """The sandbox host converged to TOPOLOGY, with its uplink, the outside machine and servers everywhere."""
    book = Playbook(sandbox, tmp_path)
    sandbox.sh(
        "ip netns add outside && ip link add uplink type veth peer name eth0 netns outside && "
        f"ip addr add {HOST}/24 dev uplink && ip link set uplink up && "
        f"ip -n outside addr add {OUTSIDE}/24 dev eth0 && ip -n outside link set eth0 up && "
        f"ip -n outside link set lo up && ip -n outside route add 10.60.0.0/14 via {HOST}"
    )
    rc, output, _recap = book.run(TOPOLOGY)  # with the report play: its expected/measured matrix must agree
    assert rc == 0, output
    assert "all as expected" in output, output
    helper = Lab(sandbox, tmp_path)
    servers = [[name, "tcp", 80, name] for name in ("web", "app", "db", "vault", "outside")]
    servers += [["web", "udp", 53, "web"]]
    helper.serve(servers)
    return book, helper


def published_free_port(book: Playbook) -> int:
    """The host port the topology's `{target: 80}` (no host port) got, from the converge's record."""
    record = json.loads(book.sandbox.sh("cat /run/wharf/firewall.json").stdout)
    (free,) = [p for p in record["publishes"] if p["auto"]]
    return int(free["published"])


def test_isolation_egress_and_published_ports(lab):
    book, helper = lab
    free_port = published_free_port(book)
    answers = helper.probe(
        {
            # published ports: from the outside (real client address), UDP too, from the host, hairpin
            "outside->8080": ("outside", "tcp", HOST, 8080),
            "outside->5353/udp": ("outside", "udp", HOST, 5353),
            "outside->free port": ("outside", "tcp", HOST, free_port),
            "host->127.0.0.1:8081": (None, "tcp", "127.0.0.1", 8081),
            "host->uplink:8080": (None, "tcp", HOST, 8080),
            "app->host:8080 (hairpin)": ("app", "tcp", HOST, 8080),
            "web->host:8080 (its own port)": ("web", "tcp", HOST, 8080),
            # the loopback publish is the host's only
            "outside->8081": ("outside", "tcp", HOST, 8081),
            # networks: within, across through a container on both, across without one
            "app->web": ("app", "tcp", WEB, 80),
            "app->db": ("app", "tcp", DB, 80),
            "db->web": ("db", "tcp", WEB, 80),
            "web->db": ("web", "tcp", DB, 80),
            "web->vault": ("web", "tcp", VAULT, 80),
            # egress: masqueraded to the uplink address; none from an internal network
            "web->outside": ("web", "tcp", OUTSIDE, 80),
            "vault->outside": ("vault", "tcp", OUTSIDE, 80),
            # nothing from outside reaches a container address directly
            "outside->web:80 direct": ("outside", "tcp", WEB, 80),
            "outside->db:80 direct": ("outside", "tcp", DB, 80),
        }
    )
    assert answers == {
        "outside->8080": f"web {OUTSIDE}",
        "outside->5353/udp": f"web {OUTSIDE}",
        "outside->free port": f"web {OUTSIDE}",
        "host->127.0.0.1:8081": answers["host->127.0.0.1:8081"],  # the source is a host address, checked below
        "host->uplink:8080": answers["host->uplink:8080"],
        "app->host:8080 (hairpin)": answers["app->host:8080 (hairpin)"],
        "web->host:8080 (its own port)": answers["web->host:8080 (its own port)"],
        "outside->8081": None,
        "app->web": f"web {APP_FRONT}",
        "app->db": f"db {APP_BACK}",
        "db->web": None,
        "web->db": None,
        "web->vault": None,
        "web->outside": f"outside {HOST}",
        "vault->outside": None,
        "outside->web:80 direct": None,
        "outside->db:80 direct": None,
    }, answers
    for label in (
        "host->127.0.0.1:8081",
        "host->uplink:8080",
        "app->host:8080 (hairpin)",
        "web->host:8080 (its own port)",
    ):
        assert (answers[label] or "").startswith("web "), (label, answers)


def test_unchanged_topology_is_a_no_op_and_drift_is_repaired(lab):
    book, helper = lab
    rc, output, recap = book.run(TOPOLOGY, "--skip-tags", "report", "--check")
    assert rc == 0 and recap["changed"] == 0, output
    rc, output, recap = book.run(TOPOLOGY, "--skip-tags", "report")
    assert rc == 0 and recap["changed"] == 0, output

    # a firewalld reload or an admin deletes our table: everything is open until the next run restores it
    book.sandbox.sh("nft delete table inet wharf")
    assert helper.probe({"db->web": ("db", "tcp", WEB, 80)}) == {"db->web": f"web {DB}"}
    rc, output, recap = book.run(TOPOLOGY, "--skip-tags", "report", "--check", "--diff", "-v")
    assert rc == 0 and recap["changed"] == 1 and "restore nftables table" in output, output
    assert "+\tchain to-br-front {" in output, "the diff shows the rules that come back"
    tables = book.sandbox.sh("nft list tables").stdout.splitlines()
    assert "table inet wharf" not in tables, "check mode changed nothing"
    rc, output, recap = book.run(TOPOLOGY, "--skip-tags", "report", "-v")
    assert rc == 0 and recap["changed"] == 1 and "deleted, or the ruleset was flushed" in output, output
    answers = helper.probe({"db->web": ("db", "tcp", WEB, 80), "outside->8080": ("outside", "tcp", HOST, 8080)})
    assert answers == {"db->web": None, "outside->8080": f"web {OUTSIDE}"}


def test_port_changes_and_conflicts(lab, tmp_path: Path):
    book, helper = lab
    # a host process holds 9090: publishing it fails before anything changes, naming the entry and the process
    helper.serve([[None, "tcp", 9090, "hostproc"]])
    web = dict(TOPOLOGY["containers"]["web"], ports=["8080:80", "9090:80"])
    newcomer = {"networks": {"front": {"ipv4_address": "10.61.0.50"}}}
    rc, output, _recap = book.run(with_changes(web=web, newcomer=newcomer), "--skip-tags", "report")
    assert rc != 0
    assert "containers.web.ports[1]" in output and "9090" in output and "python" in output, output
    assert "newcomer" not in book.sandbox.sh("ip netns list").stdout, "nothing was changed"

    # moving a published port: the old one stops answering, the new one answers, with a port range too
    web = dict(TOPOLOGY["containers"]["web"], ports=["8082:80", "7000-7001:53-54/udp"])
    rc, output, recap = book.run(with_changes(web=web), "--skip-tags", "report")
    assert rc == 0 and recap["changed"] == 1, output
    answers = helper.probe(
        {
            "outside->8080": ("outside", "tcp", HOST, 8080),
            "outside->8082": ("outside", "tcp", HOST, 8082),
            "outside->7000/udp": ("outside", "udp", HOST, 7000),
            "outside->5353/udp": ("outside", "udp", HOST, 5353),
        }
    )
    assert answers == {
        "outside->8080": None,
        "outside->8082": f"web {OUTSIDE}",
        "outside->7000/udp": f"web {OUTSIDE}",
        "outside->5353/udp": None,
    }


def test_teardown_removes_the_table(lab):
    book, _helper = lab
    rc, output, _recap = book.run({**TOPOLOGY, "state": "absent"}, "--skip-tags", "report")
    assert rc == 0, output
    tables = book.sandbox.sh("nft list tables").stdout.splitlines()
    assert "table inet wharf" not in tables and "table inet wharf-user" not in tables, tables
    assert book.sandbox.sh("test -e /run/wharf/firewall.json", check=False).returncode != 0


SPOOF = """
import socket, sys, time
sys.path.insert(0, sys.argv[1])
from netpeer import netns
listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
listener.bind((sys.argv[2], 9999))  # on the host: vault's gateway
listener.settimeout(1.0)
with netns("vault"):
    for source in (sys.argv[3], sys.argv[4]):  # vault's own address, then app's address on another network
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.setsockopt(socket.SOL_IP, 19, 1)  # IP_TRANSPARENT: bind an address this namespace does not have
        sender.bind((source, 0))
        sender.sendto(b"hello", (sys.argv[2], 9999))
seen = []
try:
    while True:
        seen.append(listener.recvfrom(64)[1][0])
except socket.timeout:
    pass
print(" ".join(seen))
"""


def test_a_forged_source_address_does_not_enter_from_a_network(lab):
    """A container on the internal network posing as a container of another network (the resolver and the
    forward chain decide by source address) is dropped where it enters, whatever rp_filter says."""
    book, _helper = lab
    book.sandbox.sh("sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.br-secret.rp_filter=0")
    argv = [sys.executable, "-c", shlex.quote(SPOOF), str(Path(__file__).parent), "10.63.0.1", VAULT, APP_FRONT]
    assert book.sandbox.sh(" ".join(argv)).stdout.split() == [VAULT], "only the real source arrives"
    book.sandbox.sh("nft delete table inet wharf")  # the guard is what stops it: without the table it arrives
    assert book.sandbox.sh(" ".join(argv)).stdout.split() == [VAULT, APP_FRONT]


def test_a_published_dns_port_does_not_take_the_containers_own_resolver(lab):
    """A container publishing port 53 on every address (a DNS server such as pi-hole) gets the outside's queries;
    the other containers' queries to their gateway still reach the embedded resolver."""
    book, helper = lab
    web = dict(TOPOLOGY["containers"]["web"], ports=["8080:80", "53:53/udp"])
    rc, output, _recap = book.run(with_changes(web=web), "--skip-tags", "report")
    assert rc == 0, output  # the resolver's own socket on the gateway's port 53 is no conflict
    assert helper.probe({"outside->53/udp": ("outside", "udp", HOST, 53)}) == {"outside->53/udp": f"web {OUTSIDE}"}
    answer = book.sandbox.sh("ip netns exec app getent hosts web", check=False)
    assert answer.stdout.split()[:1] == [WEB], answer
