"""The topology role through `ansible-playbook site.yml` on a sandbox host, with a topology made up per run.

The topology is generated from a random seed (printed on failure), so the role is tested on topologies
it has never seen; expectations come from the pure filter, never from the code under test's kernel side.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import COLLECTIONS, REPO, VENV_BIN, ansible_env

sys.path.insert(0, str(COLLECTIONS))
from ansible_collections.wharf.network.plugins.filter.topology import wharf_host_items

pytestmark = pytest.mark.integration

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo"]


def make_topology(seed: int) -> dict:
    """Three networks in private ranges (they exist only inside the sandbox) and eight containers."""
    rng = random.Random(seed)
    base = rng.randrange(16, 31)
    networks = {f"net-{w}": {"subnet": f"172.{base}.{i * 16}.0/20"} for i, w in enumerate(rng.sample(WORDS, 3))}
    names = list(networks)
    containers: dict[str, dict] = {}
    for i, word in enumerate(rng.sample(WORDS, 6)):
        name = f"{word}-{rng.randrange(100, 999)}"
        containers[name] = {"networks": {names[i % 3]: {"aliases": [f"svc{i % 2}"]}}}
    first = next(iter(containers))
    # one container on two networks, one fixed address, one with no network, one with none
    two = list(containers)[1]
    containers[two]["networks"][names[(1 + 1) % 3]] = {}
    fixed_net = next(iter(containers[first]["networks"]))
    prefix = networks[fixed_net]["subnet"].rsplit(".", 2)[0]
    containers[first]["networks"][fixed_net]["ipv4_address"] = f"{prefix}.{16 * names.index(fixed_net) + 3}.77"
    containers["lonely"] = {}
    containers["offline"] = {"network_mode": "none"}
    return {"networks": networks, "containers": containers}


class Playbook:
    def __init__(self, sandbox, tmp_path: Path):
        self.sandbox = sandbox
        self.tmp = tmp_path
        self.inventory = tmp_path / "hosts.yml"
        self.inventory.write_text(
            yaml.safe_dump(
                {
                    "all": {
                        "hosts": {
                            sandbox.name: {
                                "ansible_connection": "wharf.network.sandbox",
                                "ansible_python_interpreter": sys.executable,
                            }
                        }
                    }
                }
            )
        )

    def run(self, topology: dict, *extra: str) -> tuple[int, str, dict[str, int]]:
        vars_file = self.tmp / "topology.yml"
        vars_file.write_text(yaml.safe_dump({"wharf_topology": topology}, sort_keys=False))  # order is meaning
        argv = [
            str(VENV_BIN / "ansible-playbook"),
            "-i",
            str(self.inventory),
            str(REPO / "site.yml"),
            "-e",
            f"@{vars_file}",
            *extra,
            *(["-v"] if os.environ.get("WHARF_TEST_VERBOSE") else []),
        ]
        proc = subprocess.run(
            argv, capture_output=True, text=True, env=ansible_env(), cwd=REPO, timeout=300, check=False
        )
        output = proc.stdout + proc.stderr
        if os.environ.get("WHARF_TEST_VERBOSE"):
            with open("/tmp/wharf-test-playbooks.log", "a") as log:
                log.write(output)
        match = re.search(rf"{re.escape(self.sandbox.name)}\s*:\s*(.*)", output.split("PLAY RECAP")[-1])
        recap = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))} if match else {}
        return proc.returncode, output, recap


@pytest.fixture
def seed() -> int:
    return int(os.environ.get("WHARF_TEST_SEED", random.randrange(1 << 30)))


def addresses(sandbox, namespace: str) -> dict[str, list[str]]:
    out = json.loads(sandbox.sh(f"ip -n {namespace} -j addr show").stdout)
    return {
        link["ifname"]: sorted(f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"] if a["family"] == "inet")
        for link in out
    }


def ping(sandbox, namespace: str, address: str) -> bool:
    return sandbox.sh(f"ip netns exec {namespace} ping -c1 -W1 -q {address}", check=False).returncode == 0


def test_role_converges_an_unseen_topology(sandbox, tmp_path, seed):
    topology = make_topology(seed)
    expected = wharf_host_items(topology, sandbox.name)
    book = Playbook(sandbox, tmp_path)
    # a host that routes (any Docker host does): networks must stay isolated all the same
    sandbox.sh("sysctl -qw net.ipv4.ip_forward=1")

    rc, output, recap = book.run(topology)
    assert rc == 0, f"seed {seed}\n{output[-4000:]}"
    assert "all as expected" in output, output[-3000:]  # the report's matrix, measured with real packets

    containers = {c["name"]: c for c in expected["containers"]}
    assert sandbox.netns() == sorted(containers)
    for name, container in containers.items():
        have = addresses(sandbox, name)
        assert sandbox.sh(f"nsenter --uts=/run/wharf/uts/{name} hostname").stdout.strip() == container["hostname"]
        if container["network_mode"] == "none":
            assert list(have) == ["lo"], f"seed {seed}: {name} should have only loopback, has {have}"
            continue
        for i, endpoint in enumerate(container["endpoints"]):
            assert endpoint["interface"] == f"eth{i}"
            assert have[endpoint["interface"]] == [f"{endpoint['address']}/{endpoint['prefixlen']}"], seed
        gateway = container["endpoints"][0]["gateway"]
        assert f"default via {gateway} dev eth0" in sandbox.sh(f"ip -n {name} route").stdout
    fixed = next(iter(topology["containers"].values()))
    fixed_address = next(iter(fixed["networks"].values()))["ipv4_address"]
    assert any(e["address"] == fixed_address for c in containers.values() for e in c["endpoints"]), (
        f"seed {seed}: fixed address {fixed_address} not allocated"
    )
    assert "172.31." in json.dumps(containers["lonely"]["endpoints"])  # the default network
    assert "wharf0" in sandbox.links()

    # same network: reachable; different networks: isolated
    pairs = [
        (a, b, eb)
        for a in containers.values()
        for b in containers.values()
        if a["name"] != b["name"] and a["endpoints"]
        for eb in b["endpoints"]
    ]
    for a, b, eb in pairs:
        shares = eb["network"] in {e["network"] for e in a["endpoints"]}
        assert ping(sandbox, a["name"], eb["address"]) == shares, f"seed {seed}: {a['name']} -> {b['name']} {eb}"

    rc, output, recap = book.run(topology, "--skip-tags", "report")
    assert rc == 0 and recap["changed"] == 0, f"seed {seed}: second converge changed something\n{output[-3000:]}"
    rc, output, recap = book.run(topology, "--check", "--skip-tags", "report")
    assert rc == 0 and recap["changed"] == 0, output[-3000:]

    # drift: a veth deleted out of band is predicted by --check, not touched by it, repaired by a run
    victim = next(c for c in containers.values() if c["endpoints"])
    host_end = victim["endpoints"][0]["host_interface"]
    sandbox.sh(f"ip link del {host_end}")
    rc, output, recap = book.run(topology, "--check", "--skip-tags", "report")
    assert rc == 0 and recap["changed"] >= 1, output[-3000:]
    assert host_end not in sandbox.links()
    rc, output, recap = book.run(topology, "--skip-tags", "report")
    assert rc == 0 and recap["changed"] >= 1
    assert host_end in sandbox.links()
    assert ping(sandbox, victim["name"], victim["endpoints"][0]["gateway"])
    rc, output, recap = book.run(topology, "--skip-tags", "report")
    assert recap["changed"] == 0, output[-3000:]

    # teardown leaves no namespace, link or file behind
    rc, output, recap = book.run({**topology, "state": "absent"}, "--skip-tags", "report")
    assert rc == 0, output[-3000:]
    assert sandbox.netns() == []
    assert set(sandbox.links()) == {"lo"}
    assert sandbox.sh("ls -A /run/wharf /run/netns").stdout.split() == ["/run/netns:", "/run/wharf:"]


def test_connect_and_disconnect_touch_only_that_endpoint(sandbox, tmp_path):
    topology = {
        "networks": {"front": {"subnet": "10.41.0.0/24"}, "back": {"subnet": "10.42.0.0/24"}},
        "containers": {
            "app": {"networks": {"front": {"ipv4_address": "10.41.0.5"}}},
            "db": {"networks": {"back": {"ipv4_address": "10.42.0.6"}}},
        },
    }
    book = Playbook(sandbox, tmp_path)
    assert book.run(topology, "--skip-tags", "report")[0] == 0
    # a process inside the container must survive connect and disconnect
    sandbox.sh("ip netns exec app sleep 300 >/dev/null 2>&1 &")
    sleeper = sandbox.sh("pgrep -f 'sleep 300'").stdout.split()[0]
    inode = sandbox.sh("stat -L -c %i /run/netns/app").stdout.strip()
    assert not ping(sandbox, "app", "10.42.0.6")

    topology["containers"]["app"]["networks"]["back"] = {"ipv4_address": "10.42.0.5"}  # network connect
    rc, output, recap = book.run(topology, "--skip-tags", "report")
    assert rc == 0, output[-3000:]
    assert ping(sandbox, "app", "10.42.0.6")
    assert addresses(sandbox, "app")["eth0"] == ["10.41.0.5/24"]
    assert sandbox.sh(f"kill -0 {sleeper}", check=False).returncode == 0
    assert sandbox.sh("stat -L -c %i /run/netns/app").stdout.strip() == inode

    del topology["containers"]["app"]["networks"]["back"]  # network disconnect
    rc, output, recap = book.run(topology, "--skip-tags", "report")
    assert rc == 0 and recap["changed"] >= 1
    assert set(addresses(sandbox, "app")) == {"lo", "eth0"}
    assert not ping(sandbox, "app", "10.42.0.6")
    assert sandbox.sh(f"kill -0 {sleeper}", check=False).returncode == 0
    assert sandbox.sh("stat -L -c %i /run/netns/app").stdout.strip() == inode


def test_prune_removes_only_what_the_collection_made(sandbox, tmp_path):
    topology = {
        "networks": {"front": {"subnet": "10.51.0.0/24"}, "old": {"subnet": "10.52.0.0/24"}},
        "containers": {"keep": {"networks": ["front"]}, "gone": {"networks": ["old"]}},
    }
    book = Playbook(sandbox, tmp_path)
    assert book.run(topology, "--skip-tags", "report")[0] == 0
    sandbox.sh("ip netns add foreign && ip link add br-foreign type bridge")
    smaller = {"networks": {"front": topology["networks"]["front"]}, "containers": {"keep": {"networks": ["front"]}}}
    rc, output, recap = book.run(smaller, "--skip-tags", "report", "-v")
    # without prune nothing undeclared is removed; only the names served by DNS follow the topology
    assert rc == 0 and recap["changed"] == 1, output[-3000:]
    steps = re.search(r"steps:\n((?:\s+\w[\w ]*: \d+\n)+)", output)
    assert steps is not None, output[-3000:]
    changed_steps = {k.strip() for k, v in re.findall(r"([\w ]+): (\d+)", steps.group(1)) if int(v)}
    assert changed_steps == {"dns"}, steps.group(1)
    assert "gone" in sandbox.netns()
    assert sandbox.sh("cat /etc/netns/gone/hosts").stdout  # its files stay with its namespace
    rc, output, recap = book.run({**smaller, "prune": True}, "--skip-tags", "report")
    assert rc == 0, output[-3000:]
    assert sandbox.netns() == ["foreign", "keep"]
    assert sandbox.sh("test -e /etc/netns/gone", check=False).returncode != 0  # pruned with its namespace
    links = sandbox.links()
    assert "br-old" not in links and "br-foreign" in links and "br-front" in links


def test_invalid_topology_lists_every_error_and_changes_nothing(sandbox, tmp_path):
    bad = {
        "networks": {
            "shop": {"subnet": "10.91.0.0/24"},
            "ledger": {"subnet": "10.91.0.128/25"},
            "Bad_Name": {"subnet": "10.92.0.0/24"},
        },
        "containers": {
            "web": {"networks": {"shop": {"ipv4_address": "10.99.0.5"}}},
            "api": {"networks": ["nowhere"]},
            "side": {"network_mode": "container:ghost"},
        },
    }
    book = Playbook(sandbox, tmp_path)
    rc, output, _recap = book.run(bad)
    assert rc != 0
    assert "overlap" in output and "networks.ledger.subnet" in output
    assert "10.99.0.5" in output
    assert "nowhere" in output
    assert "ghost" in output
    assert "Bad_Name" in output
    assert sandbox.netns() == [] and set(sandbox.links()) == {"lo"}


def test_container_mode_switches_converge(sandbox, tmp_path):
    """container:OTHER → a namespace of its own → container:OTHER again, each in one converge."""
    shared = {
        "networks": {"n5": {"subnet": "10.55.0.0/24"}},
        "containers": {"a5": {"networks": ["n5"]}, "b5": {"network_mode": "container:a5"}},
    }
    own = {"networks": shared["networks"], "containers": {"a5": {"networks": ["n5"]}, "b5": {"networks": ["n5"]}}}
    book = Playbook(sandbox, tmp_path)
    for topology in (shared, own, shared, own):
        rc, output, _recap = book.run(topology, "--skip-tags", "report")
        assert rc == 0, output[-3000:]
        rc, output, recap = book.run(topology, "--skip-tags", "report")
        assert rc == 0 and recap["changed"] == 0, output[-3000:]
        same = sandbox.sh("stat -L -c %i /run/netns/a5").stdout == sandbox.sh("stat -L -c %i /run/netns/b5").stdout
        assert same == (topology is shared)
        assert len(json.loads(sandbox.sh("ip -n a5 -j -4 addr show dev eth0").stdout)[0]["addr_info"]) == 1


def test_disconnecting_the_first_network_keeps_the_other_interface_as_it_is(sandbox, tmp_path):
    """Docker keeps eth1 as eth1 when eth0's network is disconnected: same interface, same routes."""
    topology = {
        "networks": {"front": {"subnet": "10.61.0.0/24"}, "back": {"subnet": "10.62.0.0/24"}},
        "containers": {
            "app": {"networks": {"front": {"ipv4_address": "10.61.0.5"}, "back": {"ipv4_address": "10.62.0.5"}}},
            "db": {"networks": {"back": {"ipv4_address": "10.62.0.6"}}},
        },
    }
    book = Playbook(sandbox, tmp_path)
    assert book.run(topology, "--skip-tags", "report")[0] == 0
    eth1 = sandbox.links("app")["eth1"]["ifindex"]
    sandbox.sh("ip -n app route add 192.0.2.0/24 via 10.62.0.6 dev eth1")  # a route someone added by hand

    del topology["containers"]["app"]["networks"]["front"]
    rc, output, _recap = book.run(topology, "--check", "--diff", "--skip-tags", "report")
    assert rc == 0, output[-3000:]
    assert "eth1" in sandbox.links("app") and "eth0" in sandbox.links("app")  # check mode changed nothing
    rc, output, recap = book.run(topology, "--skip-tags", "report")
    assert rc == 0, output[-3000:]
    links = sandbox.links("app")
    assert set(links) == {"lo", "eth1"} and links["eth1"]["ifindex"] == eth1
    routes = sandbox.sh("ip -n app route").stdout
    assert "default via 10.62.0.1 dev eth1" in routes  # the first network now gives the default route
    assert "192.0.2.0/24 via 10.62.0.6 dev eth1" in routes
    assert ping(sandbox, "app", "10.62.0.6")
    rc, output, recap = book.run(topology, "--skip-tags", "report")
    assert recap["changed"] == 0, output[-3000:]
    # connecting again gives the new endpoint the lowest free name
    topology["containers"]["app"]["networks"]["front"] = {"ipv4_address": "10.61.0.5"}
    assert book.run(topology, "--skip-tags", "report")[0] == 0
    assert set(sandbox.links("app")) == {"lo", "eth0", "eth1"} and sandbox.links("app")["eth1"]["ifindex"] == eth1
    assert addresses(sandbox, "app")["eth0"] == ["10.61.0.5/24"]
