#!/usr/bin/env python3
"""Benchmark: wharf.network's embedded resolver next to aardvark-dns and dnsmasq, on the same names, in one run.

Everything happens inside one throwaway sandbox host (``wb…``), removed at the end even on failure or SIGTERM:
a bridge with three addresses (dnsmasq on .2, aardvark-dns on .3; ours answers on 127.0.0.11 inside the
asker's namespace, as Docker's), a container namespace ``bench`` (the asker, 10.77.0.10) and an ``outside``
namespace with a dnsmasq playing the upstream server (answers ``www.ext.example``, NXDOMAIN for the rest). Per
server and per name kind, ``dnsperf`` measures the queries per second at full load (``-c 4 -q 64``) and, in a
second run at a fixed 5000 queries per second, the per-query latency (``-v``), of which p50 and p99 are
printed. Then the time from a change (a new name in the server's configuration + SIGHUP; for ours also through
the ``container_dns`` module) to the first answer for it.

    sudo .venv/bin/python benchmarks/bench_dns.py [--seconds 5] [--containers 50]

Names: ``local`` web1 (one address), ``alias`` svc (three containers), ``nxdomain`` nosuchname (single label:
dnsmasq --domain-needed answers it itself, ours and aardvark-dns forward it, as Docker does), ``forward``
www.ext.example (through the upstream; dnsmasq caches it, the others do not). ``--containers`` adds that many
more containers so the tables are not toy-sized.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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

from ansible_collections.wharf.network.plugins.module_utils._dns.daemon import render_state
from ansible_collections.wharf.network.plugins.module_utils._dns.state import HostResolvConf, resolver_state
from ansible_collections.wharf.network.plugins.module_utils._lab import sandbox as _sandbox
from ansible_collections.wharf.network.plugins.module_utils._model.topology import parse_topology
from ansible_collections.wharf.network.plugins.plugin_utils.process import run_process

STATE, PIDFILE = "/run/wharf/dns/state.json", "/run/wharf/dns/resolver.pid"
DNSMASQ = "dnsmasq -k --log-facility=- --user=root --no-resolv --no-hosts --domain-needed --bind-interfaces"
AARDVARK = "/usr/lib/podman/aardvark-dns"
GATEWAY, DNSMASQ_IP, AARDVARK_IP, ASKER, UPSTREAM = "10.77.0.1", "10.77.0.2", "10.77.0.3", "10.77.0.10", "10.77.1.2"
# ours listens inside the asker's own namespace (as Docker's); the other containers have no namespace here, so
# the resolver listens for `bench` alone
RESOLVER = "127.0.0.11"
SERVERS = {"wharf": RESOLVER, "aardvark-dns": AARDVARK_IP, "dnsmasq": DNSMASQ_IP}
QUERIES = {"local": "web1 A", "alias": "svc A", "nxdomain": "nosuchname A", "forward": "www.ext.example A"}


def topology(extra: int, with_new: bool = False) -> dict:
    def at(address: str, *aliases: str) -> dict:
        return {"networks": {"net0": {"ipv4_address": address, "aliases": list(aliases)}}}

    containers = {"bench": at(ASKER), "web1": at("10.77.0.20")}
    containers.update({f"svc{i}": at(f"10.77.0.{20 + i}", "svc") for i in (1, 2, 3)})
    containers.update({f"c{i:03d}": at(f"10.77.{2 + i // 200}.{1 + i % 200}") for i in range(extra)})
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
        self.host, _created = _sandbox.create(self.name, run=run_process)

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

    def spawn(self, command: str, out: Path | None = None) -> None:
        """Start ``command`` in the background inside the sandbox (stdout to ``out``, the rest to spawn.log)."""
        log = f"{self.work}/spawn.log"
        stdout = str(out) if out else log
        subprocess.run(
            [*self.host.nsenter_argv(), "/bin/sh", "-c", f"{command} >>{stdout} 2>>{log} &"],
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
            f"ip -n outside addr add {UPSTREAM}/30 dev eth0; ip -n outside link set eth0 up; "
            "ip -n outside link set lo up"
        )
        w = self.work
        # the upstream: answers www.ext.example, NXDOMAIN (domain-needed) or REFUSED for the rest
        self.spawn(
            f"ip netns exec outside {DNSMASQ} --listen-address={UPSTREAM} --address=/ext.example/203.0.113.9 "
            f"--local=/example/ --pid-file={w}/up.pid"
        )
        topo = topology(self.extra)
        # ours, started as the role starts it: the container_dns module through Ansible
        (w / "resolv.conf").write_text(f"nameserver {UPSTREAM}\n")
        self.module_seconds = self.container_dns(topo)
        # dnsmasq: the same names from a hosts file, forwarding to the same upstream
        self.write_hosts(topo)
        self.spawn(
            f"{DNSMASQ} --listen-address={DNSMASQ_IP} --addn-hosts={w}/hosts --server={UPSTREAM} "
            f"--pid-file={w}/dnsmasq.pid"
        )
        # aardvark-dns: one network file, the asker among the containers, the upstream named on the first line
        os.makedirs(w / "aardvark", exist_ok=True)
        self.write_aardvark(topo)
        self.spawn(f"{AARDVARK} --config {w}/aardvark -p 53 run")
        for server, address in SERVERS.items():
            self.wait_answer(address, "web1", "10.77.0.20", server)
        self.wait_answer(DNSMASQ_IP, "www.ext.example", "203.0.113.9", "dnsmasq forward")

    def container_dns(self, topo: dict) -> float:
        """Run the container_dns module through Ansible and the sandbox connection; its wall time."""
        args = {"topology": topo, "host": self.name, "resolv_conf": str(self.work / "resolv.conf")}
        argv = [str(Path(sys.executable).parent / "ansible"), "all", "-i", f"{self.name},", "-c"]
        argv += ["wharf.network.sandbox", "-e", f"ansible_python_interpreter={sys.executable}"]
        argv += ["-m", "wharf.network.container_dns", "-a", json.dumps(args)]
        env = dict(
            os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections")
        )
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, timeout=120, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"container_dns failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return time.perf_counter() - start

    def state_text(self, topo: dict) -> str:
        """What the module writes as the resolver's state."""
        return render_state(resolver_state(parse_topology(topo), self.name, HostResolvConf((UPSTREAM,))))

    def hosts_text(self, topo: dict) -> str:
        return "".join(f"{a} {n}\n" for a, n in hosts_of(topo))

    def aardvark_text(self, topo: dict) -> str:
        lines = [f"{AARDVARK_IP} {UPSTREAM}"]
        for name, spec in topo["containers"].items():
            endpoint = spec["networks"]["net0"]
            names = ",".join([name, *endpoint.get("aliases", [])])
            ident = uuid.uuid5(uuid.NAMESPACE_DNS, name).hex + uuid.uuid5(uuid.NAMESPACE_URL, name).hex
            lines.append(f"{ident} {endpoint['ipv4_address']}  {names}")
        return "\n".join(lines) + "\n"

    def inside(self, path: str) -> Path:
        """A path as the sandbox sees it (its /run/wharf is private), reached from here through /proc."""
        return Path(f"/proc/{self.host.pid}/root{path}")

    def write_hosts(self, topo: dict) -> None:
        _replace(self.work / "hosts", self.hosts_text(topo))

    def write_aardvark(self, topo: dict) -> None:
        _replace(self.work / "aardvark" / "net0", self.aardvark_text(topo))

    def ask(self, server: str, name: str) -> str:
        return self.sh(f"ip netns exec bench dig +short +tries=1 +time=1 @{server} {name} A", check=False).strip()

    def wait_answer(self, server: str, name: str, expected: str, what: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if expected in self.ask(server, name).split():
                return
            time.sleep(0.1)
        log = self.sh(f"cat {self.work}/spawn.log", check=False)
        raise RuntimeError(f"{what} on {server} does not answer {name} with {expected}: {log}")

    def dnsperf(self, server: str, query: str, seconds: float, rate: int | None = None) -> dict:
        qfile = self.work / "queries.txt"
        qfile.write_text(query + "\n")
        if rate is None:
            command = f"ip netns exec bench dnsperf -s {server} -d {qfile} -l {seconds} -c 4 -q 64 -t 2"
            out = self.sh(command, timeout=seconds + 30)
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

    def change_to_answer(self, server: str, via_module: bool = False) -> float:
        """A new container in the configuration → the first answer for its name, in ms. A poller in the asker's
        namespace asks every 2 ms from before the change; the change is the new file + SIGHUP (for ours, with
        ``via_module``, the whole container_dns module run through Ansible instead)."""
        topo = topology(self.extra, with_new=True)
        w = self.work
        out = w / f"poll-{server}-{via_module}.txt"
        poller = (
            "import sys,time,dns.message,dns.query\n"
            "q=dns.message.make_query('newcomer','A')\n"
            "print('ready',flush=True)\n"
            "while True:\n"
            "  try:\n"
            "    if dns.query.udp(q,sys.argv[1],timeout=0.05).answer: break\n"
            "  except Exception: pass\n"
            "  time.sleep(0.002)\n"
            "print(time.time(),flush=True)\n"
        )
        (w / "poller.py").write_text(poller)
        self.spawn(f"ip netns exec bench {sys.executable} {w}/poller.py {SERVERS[server]}", out)
        deadline = time.monotonic() + 20
        while "ready" not in (out.read_text() if out.exists() else ""):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the poller did not start: {self.sh(f'cat {w}/spawn.log', check=False)}")
            time.sleep(0.01)
        # everything but the write and the signal is prepared before the clock starts, for all three alike
        if server == "wharf":
            path, render = self.inside(STATE), self.state_text
            pid = int(self.inside(PIDFILE).read_text())
        elif server == "dnsmasq":
            path, render = w / "hosts", self.hosts_text
            pid = int((w / "dnsmasq.pid").read_text())
        else:
            path, render = w / "aardvark" / "net0", self.aardvark_text
            pid = int(self.sh("pgrep --ns $$ --nslist net -x aardvark-dns").split()[0])
        grown, common = render(topo), render(topology(self.extra))
        start = time.time()
        if via_module:
            self.container_dns(topo)
        else:
            _replace(path, grown)
            os.kill(pid, signal.SIGHUP)
        while len(out.read_text().split()) < 2:
            if time.time() - start > 20:
                raise RuntimeError(f"{server}: newcomer never resolved")
            time.sleep(0.005)
        elapsed = (float(out.read_text().split()[-1]) - start) * 1000
        if server == "wharf" and not via_module:
            loads = re.findall(r"loaded \w+ in (\d+) ms", self.sh("cat /run/wharf/dns/resolver.log"))
            self.reload_inside_ms = int(loads[-1])
        if via_module:
            self.container_dns(topology(self.extra))
        else:
            _replace(path, common)  # back to the common names
            os.kill(pid, signal.SIGHUP)
        return elapsed

    def destroy(self) -> None:
        _sandbox.destroy(self.name)


def _replace(path: Path, text: str) -> None:
    """Write atomically, as the module does: a reader sees the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _field(text: str, label: str) -> float:
    for line in text.splitlines():
        if label in line:
            return float(line.split(label, 1)[1].split()[0])
    raise RuntimeError(f"no {label!r} in dnsperf output: {text[-800:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
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
        module_ms = lab.change_to_answer("wharf", via_module=True)
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
    print(
        "change → first answer (new config file + SIGHUP, polled every 2 ms): "
        + ", ".join(f"{s} {ms:.0f} ms" for s, ms in reload_ms.items())
    )
    print(
        f"change → first answer through `ansible -m wharf.network.container_dns` (all included): {module_ms:.0f} ms"
        f"; the first module run (resolver started) took {lab.module_seconds:.2f} s"
    )
    print(f"of which the resolver's own reload (parse the state, precompute every answer): {lab.reload_inside_ms} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
