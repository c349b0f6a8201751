#!/usr/bin/env python3
"""Benchmark: wharf.network's embedded resolver next to aardvark-dns and dnsmasq, on the same names, in one run.

Everything happens inside one throwaway sandbox host (``wb…``), removed at the end even on failure or SIGTERM:
a bridge with three addresses (one per server: ours on .1, dnsmasq on .2, aardvark-dns on .3), a container
namespace ``bench`` (the asker, 10.77.0.10) and an ``outside`` namespace with a dnsmasq playing the upstream
server (answers ``www.ext.example``, NXDOMAIN for the rest). Per server and per name kind, ``dnsperf`` measures
the queries per second at full load (``-c 4 -q 64``) and, in a second run at a fixed 5000 queries per second,
the per-query latency (``-v``), of which p50 and p99 are printed. Then the time from a change (a new name in the
server's configuration + SIGHUP; for ours also through the ``container_dns`` module) to the first answer for it.

    sudo .venv/bin/python benchmarks/bench_dns.py [--seconds 5] [--containers 50]

Names: ``local`` web1 (one address), ``alias`` svc (three containers), ``nxdomain`` nosuchname (single label: ours
and dnsmasq --domain-needed answer it themselves, aardvark-dns forwards it), ``forward`` www.ext.example (through
the upstream; dnsmasq caches it, the others do not). ``--containers`` adds that many more containers so the tables
are not toy-sized.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / ".collections"))

from ansible_collections.wharf.network.plugins.module_utils import _sandbox
from ansible_collections.wharf.network.plugins.module_utils._dns_state import HostResolvConf, resolver_state
from ansible_collections.wharf.network.plugins.module_utils._topology import parse_topology

SERVER = REPO / "plugins" / "module_utils" / "_dns_server.py"
AARDVARK = "/usr/lib/podman/aardvark-dns"
GATEWAY, DNSMASQ_IP, AARDVARK_IP, ASKER, UPSTREAM = "10.77.0.1", "10.77.0.2", "10.77.0.3", "10.77.0.10", "10.77.1.2"
SERVERS = {"wharf": GATEWAY, "aardvark-dns": AARDVARK_IP, "dnsmasq": DNSMASQ_IP}
QUERIES = {"local": "web1 A", "alias": "svc A", "nxdomain": "nosuchname A", "forward": "www.ext.example A"}


def topology(extra: int, with_new: bool = False) -> dict:
    containers = {
        "bench": {"networks": {"net0": {"ipv4_address": ASKER}}},
        "web1": {"networks": {"net0": {"ipv4_address": "10.77.0.20"}}},
        **{f"svc{i}": {"networks": {"net0": {"ipv4_address": f"10.77.0.{20 + i}", "aliases": ["svc"]}}} for i in (1, 2, 3)},
        **{f"c{i:03d}": {"networks": {"net0": {"ipv4_address": f"10.77.{2 + i // 200}.{1 + i % 200}"}}} for i in range(extra)},
    }
    if with_new:
        containers["newcomer"] = {"networks": {"net0": {"ipv4_address": "10.77.0.99"}}}
    return {"networks": {"net0": {"subnet": "10.77.0.0/16", "gateway": GATEWAY}}, "containers": containers}


def hosts_of(topo: dict) -> list[tuple[str, str]]:
    """(address, name) for every container name and alias: what dnsmasq and aardvark-dns are given."""
    pairs = []
    for name, spec in topo["containers"].items():
        endpoint = spec["networks"]["net0"]
        for label in [name, *endpoint.get("aliases", [])]:
            pairs.append((endpoint["ipv4_address"], label))
    return pairs


class Lab:
    def __init__(self, work: Path, extra: int):
        self.name = f"wb{os.getpid():x}-{uuid.uuid4().hex[:4]}"
        self.work = work
        self.extra = extra
        self.host, _created = _sandbox.create(self.name)

    def sh(self, command: str, check: bool = True, timeout: float = 120) -> str:
        proc = subprocess.run(
            [*self.host.nsenter_argv(), "/bin/sh", "-c", command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"`{command}` failed: {proc.stdout[-1500:]}{proc.stderr[-1500:]}")
        return proc.stdout + proc.stderr

    def spawn(self, command: str) -> None:
        subprocess.run(
            [*self.host.nsenter_argv(), "/bin/sh", "-c", f"{command} >>{self.work}/spawn.log 2>&1 &"],
            check=True,
        )

    def setup(self) -> None:
        self.sh(
            "set -e; ip link add br0 type bridge; ip link set br0 up; "
            f"for a in {GATEWAY} {DNSMASQ_IP} {AARDVARK_IP}; do ip addr add $a/16 dev br0; done; "
            "ip netns add bench; ip link add vb0 type veth peer name eth0 netns bench; ip link set vb0 master br0 up; "
            f"ip -n bench addr add {ASKER}/16 dev eth0; ip -n bench link set eth0 up; ip -n bench link set lo up; "
            "ip netns add outside; ip link add up0 type veth peer name eth0 netns outside; "
            "ip addr add 10.77.1.1/30 dev up0; ip link set up0 up; "
            f"ip -n outside addr add {UPSTREAM}/30 dev eth0; ip -n outside link set eth0 up; ip -n outside link set lo up"
        )
        w = self.work
        # the upstream: answers www.ext.example, NXDOMAIN (domain-needed) or REFUSED for the rest
        self.spawn(
            f"ip netns exec outside dnsmasq -k --log-facility=- --user=root --no-resolv --no-hosts --domain-needed --bind-interfaces "
            f"--listen-address={UPSTREAM} --address=/ext.example/203.0.113.9 --local=/example/ --pid-file={w}/up.pid"
        )
        topo = topology(self.extra)
        # ours
        self.write_state(topo)
        self.spawn(f"{sys.executable} {SERVER} serve --state {w}/state.json --status {w}/status.json")
        # dnsmasq: the same names from a hosts file, forwarding to the same upstream
        self.write_hosts(topo)
        self.spawn(
            f"dnsmasq -k --log-facility=- --user=root --no-resolv --no-hosts --domain-needed --bind-interfaces --listen-address={DNSMASQ_IP} "
            f"--addn-hosts={w}/hosts --server={UPSTREAM} --pid-file={w}/dnsmasq.pid"
        )
        # aardvark-dns: one network file, the asker among the containers, the upstream named on the first line
        os.makedirs(w / "aardvark", exist_ok=True)
        self.write_aardvark(topo)
        self.spawn(f"{AARDVARK} --config {w}/aardvark -p 53 run")
        for server, address in SERVERS.items():
            self.wait_answer(address, "web1", "10.77.0.20", server)
        self.wait_answer(DNSMASQ_IP, "www.ext.example", "203.0.113.9", "dnsmasq forward")

    def write_state(self, topo: dict) -> None:
        state = resolver_state(parse_topology(topo), "bench", HostResolvConf((UPSTREAM,)))
        tmp = self.work / "state.json.tmp"
        tmp.write_text(json.dumps(state, sort_keys=True))
        os.replace(tmp, self.work / "state.json")

    def write_hosts(self, topo: dict) -> None:
        tmp = self.work / "hosts.tmp"
        tmp.write_text("".join(f"{a} {n}\n" for a, n in hosts_of(topo)))
        os.replace(tmp, self.work / "hosts")

    def write_aardvark(self, topo: dict) -> None:
        lines = [f"{AARDVARK_IP} {UPSTREAM}"]
        for name, spec in topo["containers"].items():
            endpoint = spec["networks"]["net0"]
            names = ",".join([name, *endpoint.get("aliases", [])])
            lines.append(f"{uuid.uuid5(uuid.NAMESPACE_DNS, name).hex}{uuid.uuid5(uuid.NAMESPACE_URL, name).hex} "
                         f"{endpoint['ipv4_address']}  {names}")
        tmp = self.work / "aardvark" / ".net0.tmp"
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, self.work / "aardvark" / "net0")

    def ask(self, server: str, name: str) -> str:
        return self.sh(f"ip netns exec bench dig +short +tries=1 +time=1 @{server} {name} A", check=False).strip()

    def wait_answer(self, server: str, name: str, expected: str, what: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if expected in self.ask(server, name).split():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{what} on {server} does not answer {name} with {expected}: {self.sh('cat ' + str(self.work / 'spawn.log'))}")

    def dnsperf(self, server: str, query: str, seconds: float, rate: int | None = None) -> dict:
        qfile = self.work / "queries.txt"
        qfile.write_text(query + "\n")
        if rate is None:
            out = self.sh(f"ip netns exec bench dnsperf -s {server} -d {qfile} -l {seconds} -c 4 -q 64 -t 2", timeout=seconds + 30)
            return {"qps": _field(out, "Queries per second:"), "lost": _field(out, "Queries lost:")}
        out = self.sh(
            f"ip netns exec bench dnsperf -s {server} -d {qfile} -l {seconds} -Q {rate} -c 1 -q 64 -t 2 -v",
            timeout=seconds + 30,
        )
        latencies = sorted(float(line.split()[-1]) for line in out.splitlines() if line.startswith("> "))
        if not latencies:
            raise RuntimeError(f"dnsperf -v printed no latencies: {out[-800:]}")
        return {
            "p50": statistics.median(latencies) * 1000,
            "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
            "rcodes": sorted({line.split()[1] for line in out.splitlines() if line.startswith("> ")}),
        }

    def change_to_answer(self, server: str) -> float:
        """A new container in the configuration + SIGHUP → first answer for its name, in ms."""
        topo = topology(self.extra, with_new=True)
        w = self.work
        poll = (
            f"ip netns exec bench {sys.executable} -c '"
            "import socket,sys,time,dns.message,dns.query\n"
            "q=dns.message.make_query(\"newcomer\",\"A\")\n"
            "t0=float(sys.argv[1])\n"
            "while True:\n"
            "  try:\n"
            "    r=dns.query.udp(q,sys.argv[2],timeout=0.05)\n"
            "    if r.answer: break\n"
            "  except Exception: pass\n"
            "print(time.time()-t0)' "
        )
        if server == "wharf":
            change = f"kill -HUP $(pgrep --ns $$ --nslist net -f '^{sys.executable} {SERVER} serve')"
            writer = self.write_state
        elif server == "dnsmasq":
            change = f"kill -HUP $(cat {w}/dnsmasq.pid)"
            writer = self.write_hosts
        else:
            change = "kill -HUP $(pgrep --ns $$ --nslist net -x aardvark-dns)"
            writer = self.write_aardvark
        start = time.time()
        writer(topo)
        self.sh(change)
        out = self.sh(poll + f"{start} {SERVERS[server]}", timeout=30)
        elapsed = float(out.strip().splitlines()[-1]) * 1000
        writer(topology(self.extra))  # back to the common names
        self.sh(change)
        return elapsed

    def destroy(self) -> None:
        _sandbox.destroy(self.name)


def _field(text: str, label: str) -> float:
    for line in text.splitlines():
        if label in line:
            return float(line.split(label, 1)[1].split()[0])
    raise RuntimeError(f"no {label!r} in dnsperf output: {text[-800:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--containers", type=int, default=50)
    args = parser.parse_args()
    for tool in ("dnsperf", "dnsmasq", "dig", AARDVARK):
        if shutil.which(tool) is None:
            print(f"missing {tool}: make debian installs it", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="wharf-bench-dns-"))
    lab = Lab(work, args.containers)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    try:
        lab.setup()
        rows = {}
        for kind, query in QUERIES.items():
            for server, address in SERVERS.items():
                load = lab.dnsperf(address, query, args.seconds)
                latency = lab.dnsperf(address, query, 2, rate=5000)
                rows[(kind, server)] = {**load, **latency}
        reload_ms = {server: lab.change_to_answer(server) for server in SERVERS}
    finally:
        lab.destroy()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.containers + 5} containers, dnsperf -c 4 -q 64 for {args.seconds:g} s (qps); -Q 5000 -v for latency")
    print(f"{'name':9} {'server':13} {'qps':>9} {'vs aardvark':>11} {'p50 ms':>8} {'p99 ms':>8}  rcode")
    for kind in QUERIES:
        base = rows[(kind, "aardvark-dns")]["qps"]
        for server in SERVERS:
            row = rows[(kind, server)]
            print(
                f"{kind:9} {server:13} {row['qps']:9.0f} {row['qps'] / base:10.2f}x {row['p50']:8.3f} {row['p99']:8.3f}"
                f"  {','.join(row['rcodes'])}{'  lost ' + str(int(row['lost'])) if row['lost'] else ''}"
            )
    print("change → first answer (write config + SIGHUP, poll every 50 ms at most): "
          + ", ".join(f"{s} {ms:.0f} ms" for s, ms in reload_ms.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
