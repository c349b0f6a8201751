#!/usr/bin/env python3
"""Our ctnetlink and neighbour code next to pyroute2 and the command-line tools, on the same kernel objects.

Everything runs inside one throwaway sandbox host (`wbct…`), removed at the end even on failure or SIGTERM; the
machine's own namespace is never touched (no address, route, sysctl, nftables rule or conntrack flush there).

Conntrack (`--sizes`, default 100,1000,5000): in the sandbox, a bridge 10.89.0.1/24 with a client and a server
namespace on it, and an nftables DNAT of UDP host ports 20000 and 20001 to the server. For each N the client sends
one datagram from each of N/2 source ports to each of the two host ports: N real conntrack entries (unreplied,
NATed), half of them to port 20000. Then each way deletes the entries of port 20000 (what the firewall does when
that UDP mapping changed: list, match, delete) and runs again on what is left (the scan: N/2 entries, none match):

  conntrack -D  `conntrack -D -p udp --orig-dst 10.89.0.1 --orig-port-dst 20000` (Debian's conntrack-tools);
                the baseline the ratios divide by, its process start included
  ours          `delete_entries(matches)` of plugins/module_utils/_kernel/conntrack.py with the firewall's matcher
  pyroute2      the same through pyroute2's Conntrack (benchmarks/proposed_conntrack_pyroute2.py: dump, match in
                Python, delete by tuple)
  pyroute2 async  the same dump, then every delete at once (AsyncConntrack, asyncio.gather; pyroute2 0.9 only)

  Each Python way runs in a fresh interpreter in the sandbox that first imports what a firewall module process
  has loaded anyway (ansible.module_utils.basic, our rtnetlink client), then times the import of the library
  (pyroute2 would be imported lazily, on the first flush), the delete and the scan. Each way must delete N/2 and
  then 0, and leave the other N/2 in place. The order of the ways rotates with every repeat.

FDB and neighbours (`--fdb`, default 500; 0 skips): a VXLAN device as the overlay builds it (nolearning, proxy,
port of a bridge) and, for K remote containers on 50 remote hosts: the all-zeros FDB entry of each remote host,
one FDB entry (MAC -> host), one permanent neighbour entry (IP -> MAC) and one static bridge FDB entry per
container: what plugins/module_utils/_kernel/vxlan.py writes. Added, dumped (both tables, reduced to the
strings vxlan.py compares) and deleted three ways: `bridge -batch` + `ip -batch` (the baseline), our `Rtnl`
(add_fdb, set_neighbour, add_bridge_fdb, neighbours(), del_*) and pyroute2's IPRoute (fdb(), neigh()). After
each add the kernel's tables (read with `bridge -j fdb` / `ip -j neigh`) must be the same for all three.

Usage: sudo .venv/bin/python benchmarks/bench_conntrack.py [--sizes 100,1000,5000] [--repeat 3] [--fdb 500]
                                                         [--python PYTHON]
`--ways cli,ours,pyroute2` leaves out the async variant (pyroute2 0.7 has no AsyncConntrack). `--python` runs
the in-sandbox workers with another interpreter (e.g. .venv-compat/bin/python: Python 3.11 with
ansible-core 2.19 and pyroute2). Not a test: numbers vary by machine and by what else runs on it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / ".collections"))

MODULE_UTILS = "ansible_collections.wharf.network.plugins.module_utils."


def module_util(new: str, old: str) -> ModuleType:
    """A module_utils module by its path after the layout move (`_kernel.conntrack`) or before it (`_conntrack`)."""
    try:
        return importlib.import_module(MODULE_UTILS + new)
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith(MODULE_UTILS):
            raise
        return importlib.import_module(MODULE_UTILS + old)


BRIDGE = "br-ct"
HOST, SERVER, CLIENT = "10.89.0.1", "10.89.0.2", "10.89.0.3"
CHANGED_PORT, KEPT_PORT, FIRST_SOURCE_PORT = 20000, 20001, 30000
VXLAN, OVERLAY_BRIDGE, UNDERLAY_LOCAL, REMOTE_HOSTS = "vx-ct", "br-ov", "10.77.0.1", 50
NUD_NOARP, NUD_PERMANENT, NTF_SELF, NTF_MASTER = 0x40, 0x80, 0x02, 0x04
ZERO_MAC = "00:00:00:00:00:00"

SETUP = f"""set -e
echo 1 > /proc/sys/net/ipv4/ip_forward
ip link add {BRIDGE} address 02:00:0a:59:00:01 type bridge
ip addr add {HOST}/24 dev {BRIDGE}
ip link set {BRIDGE} up
for side in srv:{SERVER}:02 cli:{CLIENT}:03; do
  ns=${{side%%:*}}; rest=${{side#*:}}; address=${{rest%%:*}}; byte=${{rest#*:}}
  ip netns add wbct-$ns
  ip link add wbct-$ns type veth peer name eth0 address 02:00:0a:59:00:$byte netns wbct-$ns
  ip link set wbct-$ns master {BRIDGE} up
  ip -n wbct-$ns link set lo up
  ip -n wbct-$ns addr add $address/24 dev eth0
  ip -n wbct-$ns link set eth0 up
done
# neighbours pinned: no ARP round trip (and no queue overflow) while the client sends a burst
ip -n wbct-cli neigh replace {HOST} lladdr 02:00:0a:59:00:01 dev eth0 nud permanent
ip neigh replace {SERVER} lladdr 02:00:0a:59:00:02 dev {BRIDGE} nud permanent
nft -f - <<'EOF'
table ip wbct {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr {HOST} udp dport {CHANGED_PORT} dnat to {SERVER}:5000
    ip daddr {HOST} udp dport {KEPT_PORT} dnat to {SERVER}:5001
  }}
}}
EOF
# this sandbox's own conntrack timeouts: no entry expires during a run
echo 600 > /proc/sys/net/netfilter/nf_conntrack_udp_timeout
echo 600 > /proc/sys/net/netfilter/nf_conntrack_udp_timeout_stream
ip link add ul0 type veth peer name ul1
ip link set ul1 up
ip addr add {UNDERLAY_LOCAL}/24 dev ul0
ip link set ul0 up
ip link add {OVERLAY_BRIDGE} type bridge
ip link set {OVERLAY_BRIDGE} up
ip link add {VXLAN} type vxlan id 42 local {UNDERLAY_LOCAL} dev ul0 dstport 4789 nolearning proxy
ip link set {VXLAN} master {OVERLAY_BRIDGE}
bridge link set dev {VXLAN} learning off
ip link set {VXLAN} up
"""

SENDER = """
import socket, sys
client, host, first, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for port in map(int, sys.argv[5].split(",")):
    for sport in range(first, first + count):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((client, sport))
            sock.sendto(b"x", (host, port))
"""

CT_WORKER = """
import ipaddress, json, re, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
method = sys.argv[3]
import ansible.module_utils.basic  # loaded in every module process
from bench_conntrack import CHANGED_PORT, HOST, module_util
module_util("_kernel.rtnl", "_rtnl")  # the firewall module has our netlink client loaded anyway
host_ip = ipaddress.IPv4Address(HOST)

def matches(entry):  # the firewall's matcher (resources/firewall.py, _flusher) for udp HOST:CHANGED_PORT
    if entry.protocol != 17 or not CHANGED_PORT <= entry.destination_port <= CHANGED_PORT:
        return False
    return entry.destination == host_ip

out = {}
start = time.perf_counter()
if method == "ours":
    lib = module_util("_kernel.conntrack", "_conntrack")
elif method.startswith("pyroute2"):
    import pyroute2.conntrack
    import proposed_conntrack_pyroute2 as lib
out["import"] = time.perf_counter() - start

def delete_concurrently(matches):
    # the proposal's dump, then every delete sent at once through AsyncConntrack (asyncio.gather)
    import asyncio, errno, socket
    from pyroute2 import AsyncConntrack
    from pyroute2.netlink.exceptions import NetlinkError
    from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple

    async def run():
        async with AsyncConntrack() as ct:
            targets = []
            async for msg in await ct.dump():
                orig = NFCTAttrTuple.from_netlink(socket.AF_INET, msg.get_attr("CTA_TUPLE_ORIG"))
                entry = lib.Entry(orig.proto, ipaddress.IPv4Address(orig.saddr), ipaddress.IPv4Address(orig.daddr),
                                  orig.sport or 0, orig.dport or 0, msg.get_attr("CTA_ZONE"), orig)
                if matches(entry):
                    targets.append(entry)
            if not targets:
                return 0
            await ct.entry("del", tuple_orig=targets[0].tuple_orig)  # the first request sets the endpoint up
            results = await asyncio.gather(*(ct.entry("del", tuple_orig=e.tuple_orig) for e in targets[1:]),
                                           return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException) and not (
                        isinstance(result, NetlinkError) and result.code == errno.ENOENT):
                    raise result
            return len(targets) - sum(1 for r in results if isinstance(r, BaseException))

    return asyncio.run(run())

for label in ("delete", "scan"):
    start = time.perf_counter()
    if method == "cli":
        argv = ["conntrack", "-D", "-p", "udp", "--orig-dst", HOST, "--orig-port-dst", str(CHANGED_PORT)]
        proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
        found = re.search(r"(\\d+) flow entries have been deleted", proc.stderr)
        if found is None:
            sys.exit(f"conntrack -D: exit {proc.returncode}: {proc.stderr}")
        deleted = int(found.group(1))
    elif method == "pyroute2-async":
        deleted = delete_concurrently(matches)
    else:
        deleted = lib.delete_entries(matches)
    out[label] = time.perf_counter() - start
    out[label + "_n"] = deleted
print(json.dumps(out))
"""

FDB_WORKER = """
import json, socket, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
method, phase, count = sys.argv[3], sys.argv[4], int(sys.argv[5])
import ansible.module_utils.basic  # loaded in every module process
from bench_conntrack import NTF_SELF, NUD_NOARP, NUD_PERMANENT, VXLAN, ZERO_MAC, module_util, remotes, vteps
NTF_MASTER, AF_BRIDGE = 0x04, 7
Rtnl = module_util("_kernel.rtnl", "_rtnl").Rtnl  # the overlay module has our netlink client loaded anyway
out = {}
start = time.perf_counter()
if method == "pyroute2":
    from pyroute2 import IPRoute
out["import"] = time.perf_counter() - start
items, hosts = remotes(count), vteps()

def observe_ours(sock, index):  # what vxlan.py's observe reads, as the strings it compares
    fdb, bridge_fdb, neighbours = [], [], []
    for entry in sock.neighbours(AF_BRIDGE, index):
        if entry.master is None and entry.flags & NTF_SELF and entry.address:
            fdb.append(f"{entry.mac} dst {entry.address}")
        elif entry.master is not None and entry.state == NUD_NOARP:
            bridge_fdb.append(entry.mac)
    for entry in sock.neighbours(socket.AF_INET, index):
        if entry.state & NUD_PERMANENT and entry.address:
            neighbours.append(f"{entry.address} lladdr {entry.mac}")
    return sorted(fdb), sorted(neighbours), sorted(bridge_fdb)

def observe_pyroute2(ipr, index):
    fdb, bridge_fdb, neighbours = [], [], []
    for msg in ipr.fdb("dump", ifindex=index):
        mac, dst, master = msg.get("NDA_LLADDR"), msg.get("NDA_DST"), msg.get("NDA_MASTER")
        if master is None and msg["flags"] & NTF_SELF and dst:
            fdb.append(f"{mac} dst {dst}")
        elif master is not None and msg["state"] == NUD_NOARP:
            bridge_fdb.append(mac)
    for msg in ipr.neigh("dump", ifindex=index, family=socket.AF_INET):
        if msg["state"] & NUD_PERMANENT and msg.get("NDA_DST"):
            neighbours.append(f"{msg.get('NDA_DST')} lladdr {msg.get('NDA_LLADDR')}")
    return sorted(fdb), sorted(neighbours), sorted(bridge_fdb)

if method == "ours":
    sock = Rtnl()
    index = sock.link(name=VXLAN).index
    start = time.perf_counter()
    if phase == "add":
        for host in hosts:
            sock.add_fdb(index, ZERO_MAC, host)
        for mac, address, host in items:
            sock.add_fdb(index, mac, host)
            sock.set_neighbour(index, address, mac)
            sock.add_bridge_fdb(index, mac)
        out["add"] = time.perf_counter() - start
        start = time.perf_counter()
        observed = observe_ours(sock, index)
        out["dump"] = time.perf_counter() - start
        out["observed"] = [len(part) for part in observed]
    else:
        for mac, address, host in items:
            sock.del_neighbour(index, address)
            sock.del_fdb(index, mac, host)
            sock.del_bridge_fdb(index, mac)
        for host in hosts:
            sock.del_fdb(index, ZERO_MAC, host)
        out["delete"] = time.perf_counter() - start
    sock.close()
else:
    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=VXLAN)[0]
        start = time.perf_counter()
        if phase == "add":
            for host in hosts:
                ipr.fdb("append", ifindex=index, lladdr=ZERO_MAC, dst=host)
            for mac, address, host in items:
                ipr.fdb("append", ifindex=index, lladdr=mac, dst=host)
                ipr.neigh("replace", ifindex=index, dst=address, lladdr=mac, state=NUD_PERMANENT)
                ipr.fdb("replace", ifindex=index, lladdr=mac, state=NUD_NOARP, flags=NTF_MASTER)
            out["add"] = time.perf_counter() - start
            start = time.perf_counter()
            observed = observe_pyroute2(ipr, index)
            out["dump"] = time.perf_counter() - start
            out["observed"] = [len(part) for part in observed]
        else:
            for mac, address, host in items:
                ipr.neigh("del", ifindex=index, dst=address)
                ipr.fdb("del", ifindex=index, lladdr=mac, dst=host)
                ipr.fdb("del", ifindex=index, lladdr=mac, flags=NTF_MASTER)
            for host in hosts:
                ipr.fdb("del", ifindex=index, lladdr=ZERO_MAC, dst=host)
            out["delete"] = time.perf_counter() - start
print(json.dumps(out))
"""


def remotes(count: int) -> list[tuple[str, str, str]]:
    """(MAC, IP, VTEP) of `count` remote containers spread over REMOTE_HOSTS hosts."""
    return [
        (
            f"02:42:0a:5a:{i >> 8:02x}:{i & 0xFF:02x}",
            f"10.90.{i // 250}.{i % 250 + 2}",
            f"10.77.0.{2 + i % REMOTE_HOSTS}",
        )
        for i in range(count)
    ]


def vteps() -> list[str]:
    return [f"10.77.0.{2 + i}" for i in range(REMOTE_HOSTS)]


def iproute2_batches(count: int, add: bool) -> tuple[str, str]:
    """The same entries as `bridge -batch` and `ip -batch` input."""
    bridge, ip = [], []
    for host in vteps():
        bridge.append(f"fdb {'append' if add else 'del'} {ZERO_MAC} dev {VXLAN} dst {host} self")
    for mac, address, host in remotes(count):
        if add:
            bridge.append(f"fdb append {mac} dev {VXLAN} dst {host} self permanent")
            bridge.append(f"fdb replace {mac} dev {VXLAN} master static")
            ip.append(f"neigh replace {address} lladdr {mac} dev {VXLAN} nud permanent")
        else:
            bridge.append(f"fdb del {mac} dev {VXLAN} dst {host} self")
            bridge.append(f"fdb del {mac} dev {VXLAN} master")
            ip.append(f"neigh del {address} dev {VXLAN}")
    return "\n".join(bridge) + "\n", "\n".join(ip) + "\n"


def code_lines(path: Path) -> tuple[int, int]:
    """(lines, lines that are neither blank nor a comment) of a source file."""
    lines = path.read_text().splitlines()
    return len(lines), sum(1 for line in lines if line.strip() and not line.strip().startswith("#"))


class Bench:
    def __init__(self, python: str) -> None:
        self.sandbox = module_util("_lab.sandbox", "_sandbox")
        self.name = f"wbct{os.getpid():x}-{uuid.uuid4().hex[:4]}"
        try:  # the runner argument came with the house's layout; older checkouts start processes themselves
            from ansible_collections.wharf.network.plugins.plugin_utils.process import run_process
        except ModuleNotFoundError:
            self.host, _created = self.sandbox.create(self.name)
        else:
            self.host, _created = self.sandbox.create(self.name, run=run_process)
        self.python = python
        self.env = dict(os.environ, PYTHONPATH=str(REPO / ".collections"))
        try:
            self.sh(SETUP)
        except BaseException:
            self.close()
            raise

    def run(self, argv: list[str], stdin: str | None = None) -> tuple[float, str]:
        start = time.perf_counter()
        proc = subprocess.run(
            [*self.host.nsenter_argv(), *argv], input=stdin, capture_output=True, text=True, env=self.env, check=False
        )
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)[:80]} failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return elapsed, proc.stdout

    def sh(self, command: str, stdin: str | None = None) -> tuple[float, str]:
        return self.run(["/bin/sh", "-c", command], stdin)

    def worker(self, script: str, *args: object) -> dict:
        argv = [self.python, "-c", script, str(REPO / ".collections"), str(REPO / "benchmarks"), *map(str, args)]
        return json.loads(self.run(argv)[1])

    # conntrack --------------------------------------------------------------------------------------
    def udp_entries(self) -> tuple[int, int]:
        """(entries to HOST, of them to CHANGED_PORT) in the sandbox's table."""
        _elapsed, listing = self.sh(f"conntrack -L -p udp --orig-dst {HOST} 2>/dev/null")
        lines = listing.splitlines()
        return len(lines), sum(1 for line in lines if f" dport={CHANGED_PORT} " in line.split(" src=")[1] + " ")

    def populate(self, n: int) -> None:
        """N/2 flows to each of the two host ports (re-sending the kept ones only refreshes them)."""
        half = n // 2
        for _attempt in range(5):
            argv = ["ip", "netns", "exec", "wbct-cli", self.python, "-c", SENDER]
            self.run([*argv, CLIENT, HOST, str(FIRST_SOURCE_PORT), str(half), f"{CHANGED_PORT},{KEPT_PORT}"])
            if self.udp_entries() == (2 * half, half):
                return
        raise RuntimeError(f"expected {2 * half} entries, {half} to port {CHANGED_PORT}; have {self.udp_entries()}")

    def conntrack_round(self, n: int, method: str) -> dict[str, float]:
        self.populate(n)
        out = self.worker(CT_WORKER, method)
        half = n // 2
        if (out["delete_n"], out["scan_n"]) != (half, 0) or self.udp_entries() != (half, 0):
            raise RuntimeError(f"{method}: deleted {out['delete_n']} then {out['scan_n']}, left {self.udp_entries()}")
        return out

    def flush(self) -> None:
        """Empty this sandbox's conntrack table (the sandbox's own namespace, never the machine's)."""
        self.sh("conntrack -F 2>/dev/null")

    # FDB and neighbours -----------------------------------------------------------------------------
    def kernel_tables(self) -> tuple[list[str], list[str], list[str]]:
        """The VXLAN device's FDB (MAC dst VTEP), neighbours and the bridge's static entries, from iproute2."""
        fdb, bridge_fdb, neighbours = [], [], []
        for entry in json.loads(self.sh(f"bridge -j fdb show dev {VXLAN}")[1]):
            if entry.get("dst") and "master" not in entry:
                fdb.append(f"{entry['mac']} dst {entry['dst']}")
            elif entry.get("master") and entry.get("state") == "static":
                bridge_fdb.append(entry["mac"])
        for entry in json.loads(self.sh(f"ip -j neigh show dev {VXLAN}")[1]):
            if "PERMANENT" in entry.get("state", []):
                neighbours.append(f"{entry['dst']} lladdr {entry['lladdr']}")
        return sorted(fdb), sorted(neighbours), sorted(bridge_fdb)

    def fdb_round(self, count: int, method: str) -> tuple[dict[str, float], tuple]:
        if method == "iproute2":
            out: dict[str, float] = {"import": 0.0}
            bridge, ip = iproute2_batches(count, add=True)
            out["add"] = self.run(["bridge", "-batch", "-"], bridge)[0] + self.run(["ip", "-batch", "-"], ip)[0]
            out["dump"] = (
                self.run(["bridge", "fdb", "show", "dev", VXLAN])[0]
                + self.run(["ip", "neigh", "show", "dev", VXLAN])[0]
            )
            tables = self.kernel_tables()
            bridge, ip = iproute2_batches(count, add=False)
            out["delete"] = self.run(["ip", "-batch", "-"], ip)[0] + self.run(["bridge", "-batch", "-"], bridge)[0]
        else:
            out = self.worker(FDB_WORKER, method, "add", count)
            tables = self.kernel_tables()
            observed, kernel = out.pop("observed"), [len(part) for part in tables]
            if observed != kernel:
                raise RuntimeError(
                    f"{method}: its dump found {observed} (FDB, neighbours, bridge FDB), iproute2 {kernel}"
                )
            out.update({k: v for k, v in self.worker(FDB_WORKER, method, "del", count).items() if k != "import"})
        if self.kernel_tables() != ([], [], []):
            raise RuntimeError(f"{method}: entries left after delete")
        return out, tables

    def close(self) -> None:
        self.sandbox.destroy(self.name)


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


CT_WAYS = {"cli": "conntrack -D", "ours": "ours", "pyroute2": "pyroute2", "pyroute2-async": "pyroute2 async"}


def conntrack_table(bench: Bench, sizes: list[int], repeat: int, methods: list[str]) -> None:
    print(
        f"conntrack: N entries, N/2 deleted, then a scan of the N/2 left (none match); seconds, median of {repeat};"
        " (x) = / conntrack -D of the same step (its process start included); total = import + delete"
    )
    header = f"{'N':>5} {'way':<14} | {'import':>7} | {'delete':>16} | {'scan':>16} | {'total':>7} {'/ ours':>7}"
    print(header)
    print("-" * len(header))
    for n in sizes:
        runs: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
        for attempt in range(repeat):
            shift = attempt % len(methods)
            for method in methods[shift:] + methods[:shift]:
                runs[method].append(bench.conntrack_round(n, method))
            bench.flush()
        medians = {m: median_of(runs[m]) for m in methods}
        base, ours = medians["cli"], medians["ours"]
        for method, m in medians.items():
            total = m["import"] + m["delete"]
            cells = " | ".join(f"{m[k]:>7.4f} ({m[k] / base[k]:5.1f}x)" for k in ("delete", "scan"))
            print(
                f"{n:>5} {CT_WAYS[method]:<14} | {m['import']:>7.4f} | {cells} | {total:>7.4f}"
                f" {total / (ours['import'] + ours['delete']):>6.1f}x",
                flush=True,
            )


def fdb_table(bench: Bench, count: int, repeat: int) -> None:
    methods = ["iproute2", "ours", "pyroute2"]
    entries = REMOTE_HOSTS + 3 * count
    print(
        f"\nFDB + neighbours: {count} remote containers on {REMOTE_HOSTS} hosts = {entries} entries"
        f" ({REMOTE_HOSTS} all-zeros FDB, {count} FDB, {count} neighbour, {count} bridge FDB); seconds, median of"
        f" {repeat}; (x) = / bridge + ip -batch"
    )
    header = f"{'':>8} | {'import':>7} | {'add':>14} | {'dump both':>14} | {'delete':>14}"
    print(header)
    print("-" * len(header))
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    reference = None
    for attempt in range(repeat):
        shift = attempt % len(methods)
        for method in methods[shift:] + methods[:shift]:
            out, tables = bench.fdb_round(count, method)
            if reference is None:
                reference = tables
                if [len(part) for part in tables] != [REMOTE_HOSTS + count, count, count]:
                    raise RuntimeError(f"unexpected tables after add: {[len(part) for part in tables]}")
            elif tables != reference:
                raise RuntimeError(f"{method}: the tables after add differ from the first way's")
            runs[method].append(out)
    base = median_of(runs["iproute2"])
    for method in methods:
        m = median_of(runs[method])
        cells = " | ".join(f"{m[k]:>6.3f} ({m[k] / base[k]:4.1f}x)" for k in ("add", "dump", "delete"))
        print(f"{method:>8} | {m['import']:>7.3f} | {cells}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000,5000", help="conntrack entries (0 skips)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fdb", type=int, default=500, help="remote containers of the FDB/neighbour part (0 skips)")
    parser.add_argument("--python", default=sys.executable, help="interpreter of the in-sandbox workers")
    parser.add_argument("--ways", default=",".join(CT_WAYS), help="conntrack ways (cli and ours always run)")
    opts = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_conntrack.py needs root (namespaces)")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    probe = "import sys, pyroute2; print(sys.version.split()[0], pyroute2.__version__)"
    version = subprocess.run([opts.python, "-c", probe], capture_output=True, text=True, check=False)
    if version.returncode != 0:
        sys.exit(f"{opts.python} has no pyroute2: `{opts.python} -m pip install pyroute2==0.9.7` (benchmark only)")
    for program, package in (("conntrack", "conntrack"), ("bridge", "iproute2"), ("nft", "nftables")):
        if shutil.which(program) is None:
            sys.exit(f"`{program}` is missing: apt-get install {package}")
    python_version, pyroute2_version = version.stdout.split()
    bench = Bench(opts.python)
    try:
        print(f"sandbox host {bench.name}; Python {python_version}, pyroute2 {pyroute2_version}")
        ours_path = Path(module_util("_kernel.conntrack", "_conntrack").__file__)
        ours_lines, proposed_lines = (
            code_lines(ours_path),
            code_lines(REPO / "benchmarks" / "proposed_conntrack_pyroute2.py"),
        )
        print(
            f"code: ours {ours_path.name} {ours_lines[0]} lines ({ours_lines[1]} not blank or comment), on our"
            f" netlink framing; the pyroute2 version {proposed_lines[0]} ({proposed_lines[1]}), on pyroute2\n"
        )
        sizes = [int(s) for s in opts.sizes.split(",") if int(s)]
        if sizes:
            ways = ["cli", "ours"] + [w for w in opts.ways.split(",") if w in CT_WAYS and w not in ("cli", "ours")]
            conntrack_table(bench, sizes, opts.repeat, ways)
        if opts.fdb:
            fdb_table(bench, opts.fdb, opts.repeat)
    finally:
        bench.close()


if __name__ == "__main__":
    main()
