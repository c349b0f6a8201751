#!/usr/bin/env python3
"""How long the firewall takes to apply 1, 100 and 1000 published ports, next to `nft -f` of the same rules.

Runs inside a throwaway sandbox host (never the machine's own namespace). For each N, in one run:
  hand     `nft -f` of a hand-written table doing the same job the way one writes it by hand (and Docker
           does): one DNAT rule per published port in a nat chain, one accept rule per port in a filter
           chain, plus the isolation and masquerade rules of the network. The baseline every ratio divides by.
  ours     `nft -f` of exactly the transaction the module sends (its rendered table, ports in maps): the
           kernel-side share of the module's time
  cold     the `firewall` module file run as Ansible runs it on the host (a fresh Python process:
           interpreter, imports, validation, host listeners, render, the one transaction, list back, record)
           on a sandbox with no table
  engine   the engine alone in a warm process (FirewallResource plan + apply: validation, render, the one
           transaction, list back, record), i.e. the module without interpreter start-up, Ansible's imports
           and argument checking; cold and no-op
  no-op    the module again: must report changed=false and send no transaction (counted through an
           `nft` wrapper on PATH: calls with `-f` are transactions)
  update   one publish moved to another host port (one transaction, the whole table swapped)

Usage: sudo .venv/bin/python benchmarks/bench_firewall.py [--sizes 1,100,1000] [--repeat 5]
Not a test: numbers vary by machine.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / ".collections"))

from ansible_collections.wharf.network.plugins.module_utils._firewall.model import parse_networks, parse_publishes
from ansible_collections.wharf.network.plugins.module_utils._firewall.render import render, transaction
from ansible_collections.wharf.network.plugins.module_utils._lab import sandbox as _sandbox
from ansible_collections.wharf.network.plugins.plugin_utils.process import run_process

MODULE = REPO / "plugins" / "modules" / "firewall.py"
SUBNET = ipaddress.ip_network("10.88.0.0/16")
BRIDGE = "br-bench"
FIRST_PORT = 20000


def publishes(n: int, shift: int = 0) -> list[dict]:
    """N TCP publishes host port 20000+i -> a container address (250 containers, 4 ports each at most)."""
    items = []
    for index in range(n):
        address = SUBNET[2 + index // 4]
        items.append({"address": str(address), "port": f"{FIRST_PORT + index + shift}:{8000 + index % 4}"})
    return items


def hand_written(n: int) -> str:
    """The same job as one writes it by hand: a rule per port, no maps."""
    lines = [
        "table inet wbhand {",
        "  chain prerouting {",
        "    type nat hook prerouting priority dstnat; policy accept;",
    ]
    for item in publishes(n):
        host, target = item["port"].split(":")
        lines.append(f"    fib daddr type local tcp dport {host} dnat ip to {item['address']}:{target}")
    lines += ["  }", "  chain postrouting {", "    type nat hook postrouting priority srcnat; policy accept;"]
    lines.append(f'    ip saddr {SUBNET} oifname != "{BRIDGE}" masquerade')
    lines += ["  }", "  chain forward {", "    type filter hook forward priority filter; policy accept;"]
    lines.append(f'    iifname "{BRIDGE}" oifname "{BRIDGE}" accept')
    lines.append(f'    oifname "{BRIDGE}" ct state established,related accept')
    for item in publishes(n):
        target = item["port"].split(":")[1]
        lines.append(f'    oifname "{BRIDGE}" ip daddr {item["address"]} tcp dport {target} accept')
    lines.append(f'    oifname "{BRIDGE}" drop')
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


ENGINE = """
import json, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
from bench_firewall import BRIDGE, SUBNET, publishes
from ansible_collections.wharf.network.plugins.module_utils._firewall.resource import FirewallResource

def run(argv, data=None):
    proc = subprocess.run(argv, input=data, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr

networks, items = [{"bridge": BRIDGE, "subnet": str(SUBNET)}], publishes(int(sys.argv[3]))
out = {}
for label in ("engine_cold", "engine_noop"):
    start = time.perf_counter()
    plan = FirewallResource(run, networks, items, "present", True).plan()
    plan.apply()
    out[label] = time.perf_counter() - start
    assert plan.changed == (label == "engine_cold"), plan.summary()
print(json.dumps(out))
"""


class Bench:
    def __init__(self) -> None:
        self.name = f"wb{os.getpid():x}-{uuid.uuid4().hex[:4]}"
        self.host, _created = _sandbox.create(self.name, run=run_process)
        self.tmp = Path(tempfile.mkdtemp(prefix="wharf-bench-fw-"))
        self.shim = self.tmp / "bin"
        self.shim.mkdir()
        self.calls = self.tmp / "nft-calls.log"
        nft = shutil.which("nft") or "/usr/sbin/nft"
        (self.shim / "nft").write_text(f'#!/bin/sh\necho "$*" >> {self.calls}\nexec {nft} "$@"\n')
        (self.shim / "nft").chmod(0o755)
        self.env = dict(os.environ, PYTHONPATH=str(REPO / ".collections"))
        # a bridge for the network the publishes point into (exists only inside the sandbox)
        self.sh(f"ip link add {BRIDGE} type bridge && ip addr add {SUBNET[1]}/{SUBNET.prefixlen} dev {BRIDGE}")

    def sh(self, command: str, stdin: str | None = None) -> float:
        start = time.perf_counter()
        proc = subprocess.run(
            [*self.host.nsenter_argv(), "/bin/sh", "-c", command],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            check=False,
        )
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{command[:60]} failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return elapsed

    def nft_file(self, text: str) -> float:
        return self.sh("nft -f -", stdin=text)

    def module(self, args: dict, counted: bool = False) -> tuple[float, dict]:
        with tempfile.NamedTemporaryFile("w", suffix=".json", dir=self.tmp, delete=False) as handle:
            json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
        env = dict(self.env)
        if counted:
            env["PATH"] = f"{self.shim}:{env.get('PATH', '/usr/sbin:/usr/bin')}"
        start = time.perf_counter()
        proc = subprocess.run(
            [*self.host.nsenter_argv(), sys.executable, str(MODULE), handle.name],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        elapsed = time.perf_counter() - start
        result = json.loads(proc.stdout)
        if result.get("failed"):
            raise RuntimeError(f"firewall: {result.get('msg')}")
        return elapsed, result

    def engine(self, n: int) -> dict[str, float]:
        argv = [sys.executable, "-c", ENGINE, str(REPO / ".collections"), str(REPO / "benchmarks"), str(n)]
        proc = subprocess.run(
            [*self.host.nsenter_argv(), *argv], capture_output=True, text=True, env=self.env, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"engine run failed: {proc.stderr[-2000:]}")
        return json.loads(proc.stdout)

    def transactions(self) -> int:
        lines = self.calls.read_text().splitlines() if self.calls.exists() else []
        return sum(1 for line in lines if line.split()[:1] == ["-f"])

    def reset(self) -> None:
        self.sh(
            "nft delete table inet wharf 2>/dev/null; nft delete table inet wharf-user 2>/dev/null; "
            "nft delete table inet wbhand 2>/dev/null; rm -f /run/wharf/firewall.json /run/wharf/firewall.nft; true"
        )
        self.calls.unlink(missing_ok=True)

    def close(self) -> None:
        _sandbox.destroy(self.name)
        shutil.rmtree(self.tmp, ignore_errors=True)


def measure(bench: Bench, n: int) -> dict[str, float]:
    networks = [{"bridge": BRIDGE, "subnet": str(SUBNET)}]
    args = {"networks": networks, "publishes": publishes(n)}
    out: dict[str, float] = {}
    bench.reset()
    out["hand"] = bench.nft_file(hand_written(n))
    bench.reset()
    ours = transaction(render(parse_networks(networks), parse_publishes(publishes(n))), user_table="create")
    out["ours_nft"] = bench.nft_file(ours)
    bench.reset()
    out.update(bench.engine(n))
    bench.reset()
    out["cold"], result = bench.module(args)
    assert result["changed"], result
    out["noop"], result = bench.module(args)
    assert not result["changed"], result
    bench.calls.unlink(missing_ok=True)
    _elapsed, result = bench.module(args, counted=True)
    out["noop_transactions"] = bench.transactions()
    out["noop_nft_calls"] = len(bench.calls.read_text().splitlines())
    assert not result["changed"] and out["noop_transactions"] == 0, "a no-op must send no transaction"
    moved = publishes(n)
    moved[0] = {**moved[0], "port": f"{FIRST_PORT - 1}:{moved[0]['port'].split(':')[1]}"}
    bench.calls.unlink(missing_ok=True)
    out["update"], result = bench.module({"networks": networks, "publishes": moved}, counted=True)
    out["update_transactions"] = bench.transactions()
    assert result["changed"] and out["update_transactions"] == 1, result
    out["python_floor"] = bench.sh(f"{sys.executable} -c 'import ansible.module_utils.basic'")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,100,1000")
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args()
    bench = Bench()
    try:
        print(f"sandbox host {bench.name}; median of {opts.repeat} runs; seconds; ratio = / hand-written nft -f")
        header = (
            f"{'N':>5} | {'hand nft -f':>11} {'ours nft -f':>11} {'ratio':>6} | {'engine cold':>11} {'ratio':>6}"
            f" {'no-op':>6} | {'module cold':>11} {'ratio':>6} {'no-op':>6} {'tx':>3} {'nft calls':>9}"
            f" | {'update':>6} {'tx':>3} | {'py+imports':>10}"
        )
        print(header)
        print("-" * len(header))
        for n in (int(s) for s in opts.sizes.split(",")):
            runs = [measure(bench, n) for _attempt in range(opts.repeat)]
            m = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            print(
                f"{n:>5} | {m['hand']:>11.3f} {m['ours_nft']:>11.3f} {m['ours_nft'] / m['hand']:>6.2f}"
                f" | {m['engine_cold']:>11.3f} {m['engine_cold'] / m['hand']:>6.2f} {m['engine_noop']:>6.3f}"
                f" | {m['cold']:>11.3f} {m['cold'] / m['hand']:>6.2f}"
                f" {m['noop']:>6.3f} {int(m['noop_transactions']):>3} {int(m['noop_nft_calls']):>9}"
                f" | {m['update']:>6.3f} {int(m['update_transactions']):>3} | {m['python_floor']:>10.3f}",
                flush=True,
            )
    finally:
        bench.close()


if __name__ == "__main__":
    main()
