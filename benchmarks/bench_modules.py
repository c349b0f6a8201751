#!/usr/bin/env python3
"""How long one module call takes for 1, 50 and 250 items, next to `ip -batch` doing the same kernel work.

Runs inside a throwaway sandbox host (never the machine's own namespace). For each N:
  baseline  `ip -batch` creating N namespaces, then N veth pairs (peer created in its namespace, host end up)
  module    the module file run as Ansible runs it on the host (a fresh Python process: interpreter start,
            imports, validation, observe, plan, apply), for the same objects: created, then unchanged
  ansible   optionally (--ansible) the same veth call through `ansible` ad-hoc and the sandbox connection

Usage: sudo .venv/bin/python benchmarks/bench_modules.py [--sizes 1,50,250] [--repeat 3] [--ansible]
Prints a table with the ratio module / ip -batch. Not a test: numbers vary by machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / ".collections"))

from ansible_collections.wharf.network.plugins.module_utils._lab import sandbox as _sandbox
from ansible_collections.wharf.network.plugins.plugin_utils.process import run_process

MODULES = REPO / "plugins" / "modules"


class Bench:
    def __init__(self) -> None:
        self.name = f"wb{os.getpid():x}-{uuid.uuid4().hex[:4]}"
        self.host, _created = _sandbox.create(self.name, run=run_process)
        self.env = dict(os.environ, PYTHONPATH=str(REPO / ".collections"))

    def inside(self, argv: list[str], stdin: str | None = None) -> float:
        start = time.perf_counter()
        proc = subprocess.run(
            [*self.host.nsenter_argv(), *argv], input=stdin, capture_output=True, text=True, env=self.env, check=False
        )
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[:3]} failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return elapsed

    def ip_batch(self, lines: list[str]) -> float:
        return self.inside(["ip", "-batch", "-"], stdin="\n".join(lines) + "\n")

    def module(self, name: str, args: dict) -> tuple[float, dict]:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
        try:
            start = time.perf_counter()
            proc = subprocess.run(
                [*self.host.nsenter_argv(), sys.executable, str(MODULES / f"{name}.py"), handle.name],
                capture_output=True,
                text=True,
                env=self.env,
                check=False,
            )
            elapsed = time.perf_counter() - start
        finally:
            os.unlink(handle.name)
        result = json.loads(proc.stdout)
        if result.get("failed"):
            raise RuntimeError(f"{name}: {result.get('msg')}")
        return elapsed, result

    def ansible(self, name: str, args: dict) -> float:
        env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
        argv = [
            str(Path(sys.executable).parent / "ansible"), "all", "-i", f"{self.name},", "-c", "wharf.network.sandbox",
            "-e", f"ansible_python_interpreter={sys.executable}", "-m", f"wharf.network.{name}", "-a", json.dumps(args),
        ]  # fmt: skip
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, check=False)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(proc.stdout[-2000:])
        return elapsed

    def close(self) -> None:
        _sandbox.destroy(self.name)


def measure(bench: Bench, n: int, with_ansible: bool) -> dict[str, float]:
    names = [f"c{i}" for i in range(n)]
    netns_batch = [f"netns add {c}" for c in names]
    veth_batch = []
    for c in names:
        # ip -batch cannot address another namespace per line, so the peers stay down here: the
        # baseline does strictly less work than the module, which also brings every peer up
        veth_batch += [f"link add v{c} type veth peer name eth0 netns {c}", f"link set v{c} up"]
    out: dict[str, float] = {}
    out["batch_netns"] = bench.ip_batch(netns_batch)
    out["batch_veth"] = bench.ip_batch(veth_batch)
    bench.ip_batch([f"netns del {c}" for c in names])

    namespaces = {"namespaces": [{"name": c} for c in names]}
    veths = {"veths": [{"name": f"v{c}", "peer": "eth0", "peer_namespace": c} for c in names]}
    out["netns_create"], r = bench.module("netns", namespaces)
    assert r["changed"] and len(r["changes"]) == n
    out["netns_noop"], r = bench.module("netns", namespaces)
    assert not r["changed"]
    out["veth_create"], r = bench.module("veth", veths)
    assert r["changed"] and len(r["changes"]) == n
    out["veth_noop"], r = bench.module("veth", veths)
    assert not r["changed"]
    if with_ansible:
        out["veth_noop_ansible"] = bench.ansible("veth", veths)
    out["netns_remove"], r = bench.module("netns", {**namespaces, "state": "absent"})
    out["python_floor"] = bench.inside([sys.executable, "-c", "import ansible.module_utils.basic"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,50,250")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ansible", action="store_true", help="also time a no-op veth call through ansible")
    opts = parser.parse_args()
    bench = Bench()
    try:
        print(f"sandbox host {bench.name}; median of {opts.repeat} runs; seconds")
        header = (
            f"{'N':>4} | {'ip-batch netns':>14} {'netns create':>12} {'ratio':>6} {'netns no-op':>11}"
            f" | {'ip-batch veth':>13} {'veth create':>11} {'ratio':>6} {'veth no-op':>10}"
            f" | {'py+imports':>10}" + (f" | {'veth no-op via ansible':>22}" if opts.ansible else "")
        )
        print(header)
        print("-" * len(header))
        for n in (int(s) for s in opts.sizes.split(",")):
            runs = [measure(bench, n, opts.ansible) for _attempt in range(opts.repeat)]
            m = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            line = (
                f"{n:>4} | {m['batch_netns']:>14.3f} {m['netns_create']:>12.3f} "
                f"{m['netns_create'] / m['batch_netns']:>6.2f} {m['netns_noop']:>11.3f}"
                f" | {m['batch_veth']:>13.3f} {m['veth_create']:>11.3f} "
                f"{m['veth_create'] / m['batch_veth']:>6.2f} {m['veth_noop']:>10.3f} | {m['python_floor']:>10.3f}"
            )
            if opts.ansible:
                line += f" | {m['veth_noop_ansible']:>22.3f}"
            print(line, flush=True)
    finally:
        bench.close()


if __name__ == "__main__":
    main()
