#!/usr/bin/env python3
"""Overlay throughput next to the bare underlay and a hand-built VXLAN, and how long a fleet takes to converge.

Everything runs inside throwaway sandbox hosts (`wb…` names) on an underlay segment held by a lab sandbox, as
`playbooks/sandbox.yml` builds a fleet; nothing touches the machine's own namespace, and every sandbox is
destroyed at the end, also on failure or SIGTERM.

Throughput (iperf3, TCP, one stream, node1 -> node2, each run `--seconds` long, the three kinds interleaved in
every repeat so drift hits them alike; every column is the median of the repeats;
every other repeat runs them in reverse order, and `ours/hand` is also given paired per repeat):

  underlay    iperf3 between the two hosts' underlay addresses (eth0, MTU 1500): what the wire gives
  hand vxlan  a VXLAN bridge built by hand with iproute2 between the same two hosts, as a person would: `ip link
              add … type vxlan id 99 dstport 4789 local … dev eth0`, a bridge, one all-zeros FDB entry to the
              other host, a container namespace per host on a veth with MTU 1450
  ours        a container on each host on an overlay network converged by `ansible-playbook site.yml` (role
              wharf.network.topology: VXLAN with nolearning/proxy, static FDB and neighbour entries, the
              distributed gateway)

  The ratios are against the underlay measured in the same run; `ours/hand` is the target (>= 0.95: no MTU or
  offload penalty of our making).

Fleet converge (`--hosts`, default 5): a topology with `--per-host` containers per host on two overlay
networks, converged on all hosts at once (`ansible-playbook -i INV site.yml --skip-tags report`): cold, no-op
(asserts changed=0), then one more host joins with its containers (cold on it, the others update their tables),
next to `ansible-playbook` of one `meta: noop` task on the same inventory (Ansible's own floor).

Usage: sudo .venv/bin/python benchmarks/bench_overlay.py [--seconds 5] [--repeat 6] [--hosts 5] [--per-host 4]
Not a test: numbers vary by machine and by what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / ".collections"))

from ansible_collections.wharf.network.plugins.module_utils._lab import sandbox as _sandbox
from ansible_collections.wharf.network.plugins.plugin_utils.process import run_process

BIN = Path(sys.executable).parent
RECAP_RE = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
HAND_SCRIPT = """set -e
ip link add hvx mtu 1450 type vxlan id 99 dstport 4789 local {local} dev eth0
ip link add hbr mtu 1450 type bridge
ip link set hvx master hbr up
ip link set hbr up
bridge fdb append 00:00:00:00:00:00 dev hvx dst {remote}
ip netns add hc
ip link add hveth mtu 1450 type veth peer name eth0 netns hc
ip link set hveth master hbr up
ip -n hc link set lo up
ip -n hc link set eth0 up
ip -n hc addr add 10.99.0.{index}/24 dev eth0
"""


class Fleet:
    """Sandbox hosts node1..nodeN on one underlay (10.77.0.i/24), destroyed together."""

    def __init__(self, count: int) -> None:
        self.prefix = f"wb{os.getpid():x}-{uuid.uuid4().hex[:4]}"
        self.lab = f"{self.prefix}-ul"
        self.names: list[str] = []  # every sandbox made so far (the lab included), what destroy() removes
        self.hosts: list[_sandbox.SandboxHost] = []
        try:
            for index in range(1, count + 1):
                self.add(index)
        except BaseException:
            self.destroy()  # the caller's try/finally only starts once the fleet exists
            raise

    def add(self, index: int) -> _sandbox.SandboxHost:
        """Make host `index` and join it to the underlay; recorded before the join, so a failing join leaks
        nothing."""
        name = f"{self.prefix}-n{index}"
        self.names.append(name)
        host, _created = _sandbox.create(name, run=run_process)
        if self.lab not in self.names:
            self.names.append(self.lab)  # join_underlay makes the lab on first use
        _sandbox.join_underlay(host.name, self.lab, f"10.77.0.{index}/24", run=run_process)
        self.hosts.append(host)
        return host

    def sh(self, index: int, script: str, check: bool = True) -> str:
        host = self.hosts[index - 1]
        proc = subprocess.run(
            [*host.nsenter_argv(), "/bin/sh", "-c", script], capture_output=True, text=True, check=False
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"{host.name}: `{script}` failed: {proc.stderr.strip()}")
        return proc.stdout

    def inventory(self, path: Path) -> Path:
        hosts = {host.name: {"wharf_underlay_address": f"10.77.0.{index}"} for index, host in enumerate(self.hosts, 1)}
        inventory = {
            "all": {
                "vars": {
                    "ansible_connection": "wharf.network.sandbox",
                    "ansible_python_interpreter": sys.executable,
                },
                "hosts": hosts,
            }
        }
        path.write_text(yaml.safe_dump(inventory))
        return path

    def destroy(self) -> None:
        """Remove every sandbox this fleet made, each tried even when another fails (the first error is raised)."""
        failures: list[Exception] = []
        for name in self.names:
            try:
                _sandbox.destroy(name)
            except Exception as exc:  # the others must still go
                failures.append(exc)
        if failures:
            raise failures[0]


def iperf(fleet: Fleet, server: str, client: str, address: str, seconds: float) -> float:
    """Gbit/s of one TCP stream from `client` (`host:netns` or `host:`) to `server` at `address`."""

    def prefix(where: str) -> str:
        netns = where.split(":", 1)[1]
        return f"ip netns exec {netns} " if netns else ""

    server_host = int(server.split(":")[0])
    client_host = int(client.split(":")[0])
    fleet.sh(server_host, f"{prefix(server)}iperf3 -s -1 -D -B {address} --logfile /dev/null")
    deadline = time.monotonic() + 5
    while True:
        out = fleet.sh(client_host, f"{prefix(client)}iperf3 -J -c {address} -t {seconds} -O 1", check=False)
        result = json.loads(out or "{}")
        if "error" not in result and "end" in result:
            return result["end"]["sum_received"]["bits_per_second"] / 1e9
        if time.monotonic() > deadline:
            raise RuntimeError(f"iperf3 to {address} failed: {result.get('error', out)}")
        time.sleep(0.1)


def playbook(inventory: Path, args: list[str]) -> tuple[float, dict[str, int]]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    start = time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"ansible-playbook {' '.join(args)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    changed = {m.group(1): int(m.group(3)) for m in RECAP_RE.finditer(proc.stdout)}
    return elapsed, changed


def fleet_topology(names: list[str], per_host: int) -> dict:
    containers = {}
    for index, name in enumerate(names, 1):
        for slot in range(per_host):
            network = "front" if slot % 2 == 0 else "back"
            containers[f"c{index}x{slot}"] = {"host": name, "networks": [network]}
    return {
        "wharf_topology": {
            "networks": {
                "front": {"driver": "overlay", "subnet": "172.30.0.0/22", "vni": 4242},
                "back": {"driver": "overlay", "subnet": "172.30.4.0/22", "vni": 4343},
            },
            "containers": containers,
        }
    }


def throughput(tmp: Path, opts: argparse.Namespace) -> dict[str, list[float]]:
    fleet = Fleet(2)
    try:
        inventory = fleet.inventory(tmp / "pair.yml")
        names = [h.name for h in fleet.hosts]
        topology = {
            "wharf_topology": {
                "networks": {"over": {"driver": "overlay", "subnet": "172.30.0.0/24"}},
                "containers": {
                    "c1": {"host": names[0], "networks": {"over": {"ipv4_address": "172.30.0.11"}}},
                    "c2": {"host": names[1], "networks": {"over": {"ipv4_address": "172.30.0.12"}}},
                },
            }
        }
        varsfile = tmp / "pair-topology.yml"
        varsfile.write_text(yaml.safe_dump(topology))
        playbook(inventory, ["site.yml", "--skip-tags", "report", "-e", f"@{varsfile}"])
        for index in (1, 2):
            fleet.sh(index, HAND_SCRIPT.format(local=f"10.77.0.{index}", remote=f"10.77.0.{3 - index}", index=index))
        runs: dict[str, list[float]] = {"underlay": [], "hand vxlan": [], "ours": []}
        kinds = [
            ("underlay", "2:", "1:", "10.77.0.2"),
            ("hand vxlan", "2:hc", "1:hc", "10.99.0.2"),
            ("ours", "2:c2", "1:c1", "172.30.0.12"),
        ]
        for repeat in range(opts.repeat):
            # every other repeat in reverse order, so a machine getting slower or faster hits all kinds alike
            for kind, server, client, address in kinds if repeat % 2 == 0 else kinds[::-1]:
                runs[kind].append(iperf(fleet, server, client, address, opts.seconds))
        return runs
    finally:
        fleet.destroy()


def converge_times(tmp: Path, opts: argparse.Namespace) -> dict[str, float]:
    fleet = Fleet(opts.hosts)
    try:
        inventory = fleet.inventory(tmp / "fleet.yml")
        names = [h.name for h in fleet.hosts]
        varsfile = tmp / "fleet-topology.yml"
        varsfile.write_text(yaml.safe_dump(fleet_topology(names, opts.per_host)))
        noop = tmp / "noop.yml"
        noop.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - meta: noop\n")
        times: dict[str, float] = {}
        times["floor play"], _changed = playbook(inventory, [str(noop)])
        args = ["site.yml", "--skip-tags", "report", "-e", f"@{varsfile}"]
        times["cold"], changed = playbook(inventory, args)
        if not all(changed.values()):
            raise RuntimeError(f"cold converge changed nothing on some host: {changed}")
        times["no-op"], changed = playbook(inventory, args)
        if any(changed.values()):
            raise RuntimeError(f"second converge changed something: {changed}")
        fleet.add(opts.hosts + 1)
        inventory = fleet.inventory(tmp / "fleet.yml")
        names = [h.name for h in fleet.hosts]
        varsfile.write_text(yaml.safe_dump(fleet_topology(names, opts.per_host)))
        times["join one"], changed = playbook(inventory, args)
        if not all(changed.values()):
            raise RuntimeError(f"after a join every host must update its tables: {changed}")
        joined = opts.hosts + 1
        address = fleet.sh(joined, f"ip -n c{joined}x0 -4 -o addr show eth0").split()[3].split("/")[0]
        if "ok" not in fleet.sh(1, f"ip netns exec c1x0 ping -c1 -W1 {address} >/dev/null && echo ok", check=False):
            raise RuntimeError(f"c1x0 on the first host does not reach {address} on the host that joined")
        return times
    finally:
        fleet.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each iperf3 run")
    parser.add_argument("--repeat", type=int, default=6)
    parser.add_argument("--hosts", type=int, default=5, help="hosts of the fleet converge")
    parser.add_argument("--per-host", type=int, default=4, help="containers per host in the fleet converge")
    parser.add_argument("--skip-converge", action="store_true")
    opts = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_overlay.py needs root (namespaces)")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    with tempfile.TemporaryDirectory(prefix="wb-overlay-") as tmp:
        runs = throughput(Path(tmp), opts)
        medians = {kind: statistics.median(values) for kind, values in runs.items()}
        print(f"throughput, iperf3 TCP 1 stream, {opts.seconds:g} s x {opts.repeat} (median, Gbit/s):")
        base = medians["underlay"]
        for kind, value in medians.items():
            spread = ", ".join(f"{v:.2f}" for v in runs[kind])
            print(f"  {kind:<11} {value:7.2f}  ({value / base:.2f}x underlay)  runs: {spread}")
        paired = [ours / hand for ours, hand in zip(runs["ours"], runs["hand vxlan"], strict=True)]
        print(
            f"  ours / hand vxlan: {medians['ours'] / medians['hand vxlan']:.2f}x of the medians, paired per repeat:"
            f" median {statistics.median(paired):.2f}x (runs: {', '.join(f'{r:.2f}' for r in paired)}; target >= 0.95)"
        )
        if not opts.skip_converge:
            times = converge_times(Path(tmp), opts)
            print(
                f"\nfleet converge, {opts.hosts} hosts x {opts.per_host} containers on 2 overlays"
                f" (seconds, ansible-playbook site.yml --skip-tags report):"
            )
            for name, value in times.items():
                print(f"  {name:<10} {value:6.2f}  ({value / times['floor play']:.1f}x floor play)")


if __name__ == "__main__":
    main()
