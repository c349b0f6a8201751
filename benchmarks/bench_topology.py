#!/usr/bin/env python3
"""How long `ansible-playbook site.yml` takes to converge N containers over M networks, next to `ip -batch`.

Runs inside throwaway sandbox hosts (never the machine's own namespace), one fresh sandbox per size and repeat,
destroyed afterwards even on failure. For each N a topology is generated (containers c000, c001... spread
round-robin over networks net0..net{M-1}; every tenth container is also on the next network), written to a temp
vars file, and timed:

  ip host     one `ip -batch` in the sandbox's root namespace: N `netns add`, M bridges (the gateway's MAC,
              alias, up, gateway address), one veth pair per endpoint with the peer created in its netns (name,
              mtu, MAC), host end enslaved, aliased and up
  ip per-ns   what `ip -batch` cannot do from the root namespace (a batch line cannot name another namespace):
              one `ip -n NS -batch -` per container, from one shell script: lo up, peer aliased and up, its
              addresses, its default route; the same script first writes net.ipv4.ip_forward=1 and
              net.ipv4.conf.BRIDGE.forwarding=1 and each bridge's IPv6 sysctls (accept_ra 0, disable_ipv6 1:
              shell builtins, no process), as the role does; a container whose interface has IPv6 set gets
              `ip netns exec NS sh -c 'echo ... > accept_ra; echo ... > disable_ipv6; exec ip -batch -'` instead
              (one more exec per container: a sysctl of another namespace is written only from inside it).
  nft         `nft -f` of the firewall's transaction for this topology (the very text the role renders:
              isolation, egress masquerade), as the role applies it.
              `ip total` = host + per-ns + nft is the baseline the ratios use.
              Not done by the baseline: the containers' hostnames (the netns module pins a UTS namespace per
              container under /run/wharf/uts), the owner-mark files, and any reading of existing state.
  ip del      one `ip -batch`: netns del for every container, link del for every bridge
  cold        `ansible-playbook -i INV site.yml --skip-tags report -e @topology.yml` on the empty sandbox
  no-op       the same again; asserts changed=0 in the recap
  add-one     the topology plus one container c{N}; asserts changed>0
  teardown    the topology (with c{N}) and `state: absent`; asserts the sandbox is empty afterwards
  floor play  `ansible-playbook` of a play whose only task is `meta: noop` (never reaches the host)
  +1 module   `ansible-playbook` of a play with one `ansible.builtin.ping` through the sandbox connection

After the baseline build and after the cold converge the kernel state is read back (links, flags, MTU, master,
alias, container MACs, IPv4 addresses, routes, in every namespace) and must be identical, so both columns build
the same kernel objects.

--profile also prints, per N, the wall time of every task of the cold converge (a tiny callback plugin written to
the temp dir), the four modules run directly inside the sandbox on the same item lists (a fresh Python process
each, as bench_modules.py does), and the filters timed in-process.

Usage: sudo .venv/bin/python benchmarks/bench_topology.py [--sizes 10,50,250] [--networks 5] [--prefixlen 16]
                                                          [--repeat 1] [--profile]
--repeat defaults to 1 (a run for 10,50,250 takes about a minute); every column is the median of the repeats.
Not a test: numbers vary by machine.
"""

from __future__ import annotations

import argparse
import ipaddress
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / ".collections"))

from ansible_collections.wharf.network.plugins.filter.topology import wharf_host_items, wharf_topology_errors
from ansible_collections.wharf.network.plugins.module_utils._firewall.model import parse_networks, parse_publishes
from ansible_collections.wharf.network.plugins.module_utils._firewall.render import render, transaction
from ansible_collections.wharf.network.plugins.module_utils._lab import sandbox as _sandbox
from ansible_collections.wharf.network.plugins.plugin_utils.process import run_process

MODULES = REPO / "plugins" / "modules"
BIN = Path(sys.executable).parent
OWNER_MARK = "wharf.network"
RECAP_RE = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)

TIMER_CALLBACK = """
import json, os, time
from ansible.plugins.callback import CallbackBase

class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "wbtopo_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.init = time.time()
        self.tasks = []

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.tasks.append([task.get_name(), time.time()])

    def v2_playbook_on_stats(self, stats):
        with open(os.environ["WBTOPO_PROFILE"], "w") as handle:
            json.dump({"init": self.init, "tasks": self.tasks, "stats": time.time()}, handle)
"""


def generate(n: int, networks: int, prefixlen: int, extra: int = 0) -> dict:
    """N containers (plus ``extra`` more) round-robin over ``networks`` networks; every tenth also on the next."""
    width = max(3, len(str(n + extra)))
    if prefixlen == 16:
        subnets = [f"10.{100 + k}.0.0/16" for k in range(networks)]
    else:
        base = ipaddress.IPv4Network("172.20.0.0/16")
        subnets = [str(s) for s in list(base.subnets(new_prefix=prefixlen))[:networks]]
    topo: dict = {"networks": {f"net{k}": {"subnet": subnets[k]} for k in range(networks)}, "containers": {}}
    for i in range(n + extra):
        nets = [f"net{i % networks}"]
        if i % 10 == 9 and networks > 1:
            nets.append(f"net{(i + 1) % networks}")
        topo["containers"][f"c{i:0{width}d}"] = {"networks": nets}
    return topo


class Bench:
    def __init__(self, tmp: Path, profile: bool) -> None:
        self.name = f"wbtopo-{os.getpid():x}-{uuid.uuid4().hex[:4]}"
        self.tmp = tmp
        self.host, _created = _sandbox.create(self.name, run=run_process)
        self.env = dict(os.environ, PYTHONPATH=str(REPO / ".collections"))
        self.inventory = tmp / "inventory.yml"
        self.inventory.write_text(
            f"all:\n  hosts:\n    {self.name}:\n      ansible_connection: wharf.network.sandbox\n"
            f"      ansible_python_interpreter: {sys.executable}\n"
        )
        self.ansible_env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
        self.profile_file = tmp / "profile.json"
        if profile:
            (tmp / "callback_plugins").mkdir(exist_ok=True)
            (tmp / "callback_plugins" / "wbtopo_timer.py").write_text(TIMER_CALLBACK)
            self.ansible_env.update(
                ANSIBLE_CALLBACK_PLUGINS=str(tmp / "callback_plugins"),
                ANSIBLE_CALLBACKS_ENABLED="wbtopo_timer",
                WBTOPO_PROFILE=str(self.profile_file),
            )

    # -- inside the sandbox -------------------------------------------------------------------------------------
    def inside(self, argv: list[str], stdin: str | None = None) -> tuple[float, str]:
        start = time.perf_counter()
        proc = subprocess.run(
            [*self.host.nsenter_argv(), *argv], input=stdin, capture_output=True, text=True, env=self.env, check=False
        )
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[:3]} failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return elapsed, proc.stdout

    def ip_batch(self, lines: list[str]) -> float:
        return self.inside(["ip", "-batch", "-"], stdin="\n".join(lines) + "\n")[0]

    def shell(self, script: str) -> float:
        return self.inside(["/bin/sh", "-e", "-s"], stdin=script)[0]

    def module(self, name: str, args: dict) -> tuple[float, dict]:
        path = self.tmp / "args.json"
        path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        elapsed, out = self.inside([sys.executable, str(MODULES / f"{name}.py"), str(path)])
        result = json.loads(out)
        if result.get("failed"):
            raise RuntimeError(f"{name}: {result.get('msg')}")
        return elapsed, result

    def state(self) -> dict:
        """Kernel objects in the sandbox: per namespace, links (flags, mtu, master, alias, MAC in containers),
        IPv4 addresses and routes. Leaves out what is random (host-side MACs, ifindexes) or automatic (IPv6 LL)."""
        script = (
            'for ns in "" $(ls /run/netns); do n=${ns:+-n $ns}; echo "@$ns"; '
            "ip -j $n link; ip -j $n addr; ip -j $n route; done\n"
            'for f in /proc/sys/net/ipv4/conf/*/forwarding; do read v < "$f"; echo "%$f $v"; done\n'
            'nft list tables | sed "s/^/%/"\n'
        )
        _elapsed, out = self.inside(["/bin/sh", "-c", script])
        lines = out.splitlines()
        result: dict = {"(root) forwarding": sorted(line[1:] for line in lines if line.startswith("%"))}
        out = "\n".join(line for line in lines if not line.startswith("%"))
        chunks = out.split("@")[1:]
        for chunk in chunks:
            ns, _newline, rest = chunk.partition("\n")
            links_json, addrs_json, routes_json = rest.strip().split("\n")
            links = {}
            for link in json.loads(links_json):
                links[link["ifname"]] = {
                    "up": "UP" in link["flags"],
                    "mtu": link["mtu"],
                    "master": link.get("master"),
                    "alias": link.get("ifalias"),
                    "mac": link.get("address") if ns else None,
                }
            for link in json.loads(addrs_json):
                links[link["ifname"]]["inet"] = sorted(
                    f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if a["family"] == "inet"
                )
            routes = sorted(f"{r['dst']} via {r.get('gateway', '-')} dev {r['dev']}" for r in json.loads(routes_json))
            result[ns or "(root)"] = {"links": links, "routes": routes}
        return result

    def is_empty(self) -> bool:
        state = self.state()
        return sorted(state) == ["(root)", "(root) forwarding"] and list(state["(root)"]["links"]) == ["lo"]

    # -- ansible ------------------------------------------------------------------------------------------------
    def playbook(self, playbook: Path, varsfile: Path | None = None) -> tuple[float, dict, dict | None]:
        argv = [str(BIN / "ansible-playbook"), "-i", str(self.inventory), str(playbook)]
        if varsfile is not None:
            argv += ["--skip-tags", "report", "-e", f"@{varsfile}"]
        self.profile_file.unlink(missing_ok=True)
        wall0 = time.time()
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, env=self.ansible_env, cwd=REPO, check=False)
        elapsed = time.perf_counter() - start
        wall1 = time.time()
        if proc.returncode != 0:
            raise RuntimeError(f"{playbook.name} failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
        recap = {m[0]: {"ok": int(m[1]), "changed": int(m[2])} for m in RECAP_RE.findall(proc.stdout)}
        profile = None
        if self.profile_file.exists():
            profile = json.loads(self.profile_file.read_text())
            profile.update(start=wall0, end=wall1)
        return elapsed, recap.get(self.name, {}), profile

    def close(self) -> None:
        _sandbox.destroy(self.name)


def baseline_scripts(items: dict) -> tuple[list[str], str, list[str]]:
    """(root-namespace ip -batch lines, per-namespace shell script, teardown ip -batch lines) for the items."""
    host = [f"netns add {ns['name']}" for ns in items["namespaces"]]
    for br in items["bridges"]:
        mac = f" address {br['mac']}" if br.get("mac") else ""  # the gateway's MAC, set as the module sets it
        host += [
            f"link add {br['name']}{mac} mtu {br['mtu']} type bridge",
            f"link set dev {br['name']} alias {OWNER_MARK} up",
        ]
    # a sysctl is no ip object: written by the shell script below with a builtin (no process), as the module does
    sysctls = "echo 1 > /proc/sys/net/ipv4/ip_forward\n" if items["firewall_networks"] else ""
    sysctls += "".join(
        f"echo {int(br['forwarding'])} > /proc/sys/net/ipv4/conf/{br['name']}/forwarding\n"
        for br in items["bridges"]
        if br.get("forwarding") is not None
    )
    per_ns: dict[str, list[str]] = {ns["name"]: ["link set lo up"] for ns in items["namespaces"]}
    # IPv6 as the item asks (router advertisements refused; off on IPv4-only networks): sysctls again, written
    # inside each container's namespace by the one shell that then runs its ip -batch
    ipv6_ns: dict[str, str] = {ns["name"]: "" for ns in items["namespaces"]}
    for iface in items["interfaces"]:
        if iface.get("ipv6") is not None:
            conf = f"/proc/sys/net/ipv6/conf/{iface['name']}"
            lines = f"echo 0 > {conf}/accept_ra; echo {int(not iface['ipv6'])} > {conf}/disable_ipv6; "
            if iface.get("namespace") is None:
                sysctls += lines.replace("; ", "\n")
            else:
                ipv6_ns[iface["namespace"]] += lines
    for iface in items["interfaces"]:
        if iface.get("namespace") is None:
            host += [f"addr add {a} dev {iface['name']}" for a in iface["addresses"]]
    for v in items["veths"]:
        host += [
            f"link add {v['name']} mtu {v['mtu']} type veth peer name {v['peer']} mtu {v['mtu']}"
            f" address {v['peer_mac']} netns {v['peer_namespace']}",
            f"link set dev {v['name']} master {v['master']} alias {OWNER_MARK} up",
        ]
        if v.get("hairpin"):
            host.append(f"link set dev {v['name']} type bridge_slave hairpin on")
        per_ns[v["peer_namespace"]].append(f"link set dev {v['peer']} alias {OWNER_MARK} up")
    for iface in items["interfaces"]:
        ns = iface.get("namespace")
        if ns is not None:
            per_ns[ns] += [f"addr add {a} dev {iface['name']}" for a in iface["addresses"]]
            per_ns[ns] += [
                f"route add {r['dest']} via {r['gateway']} dev {iface['name']}" for r in iface.get("routes", [])
            ]
    script = sysctls + "".join(
        (f"ip netns exec {ns} sh -c '{ipv6_ns[ns]}exec ip -batch -'" if ipv6_ns[ns] else f"ip -n {ns} -batch -")
        + " <<'EOF'\n"
        + "\n".join(lines)
        + "\nEOF\n"
        for ns, lines in per_ns.items()
    )
    teardown = [f"netns del {ns['name']}" for ns in items["namespaces"]]
    teardown += [f"link del {br['name']}" for br in items["bridges"]]
    return host, script, teardown


def measure(tmp: Path, n: int, opts: argparse.Namespace, profile: bool) -> tuple[dict[str, float], list[str]]:
    bench = Bench(tmp, profile)
    notes: list[str] = []
    try:
        topo = generate(n, opts.networks, opts.prefixlen)
        topo_add = generate(n, opts.networks, opts.prefixlen, extra=1)
        items = wharf_host_items(topo, bench.name)
        files = {}
        for key, doc in (("cold", topo), ("add", topo_add), ("absent", {**topo_add, "state": "absent"})):
            files[key] = tmp / f"topology-{key}.yml"
            files[key].write_text(json.dumps({"wharf_topology": doc}, indent=1))  # JSON is YAML
        out: dict[str, float] = {}

        host, script, teardown = baseline_scripts(items)
        out["ip_host"] = bench.ip_batch(host)
        out["ip_ns"] = bench.shell(script)
        table = transaction(
            render(parse_networks(items["firewall_networks"]), parse_publishes(items["publishes"])),
            user_table="create",
        )
        out["nft"] = bench.inside(["nft", "-f", "-"], stdin=table)[0]
        out["ip_total"] = out["ip_host"] + out["ip_ns"] + out["nft"]
        built = bench.state()
        bench.inside(["nft", "delete table inet wharf; delete table inet wharf-user"])
        out["ip_del"] = bench.ip_batch(teardown)
        assert bench.is_empty(), "ip -batch teardown left objects behind"

        out["cold"], recap, profile = bench.playbook(REPO / "site.yml", files["cold"])
        assert recap.get("changed", 0) > 0, f"cold converge changed nothing: {recap}"
        ours = bench.state()
        if ours != built:
            diff = [ns for ns in sorted(set(ours) | set(built)) if ours.get(ns) != built.get(ns)]
            first = diff[0]
            raise AssertionError(
                f"cold converge and ip -batch built different objects in {len(diff)} namespaces, e.g. {first}:\n"
                f"  ip -batch: {built.get(first)}\n  ansible:  {ours.get(first)}"
            )
        out["noop"], recap, _output = bench.playbook(REPO / "site.yml", files["cold"])
        assert recap.get("changed") == 0, f"no-op converge changed something: {recap}"
        out["add"], recap, _output = bench.playbook(REPO / "site.yml", files["add"])
        assert recap.get("changed", 0) > 0, f"adding a container changed nothing: {recap}"
        out["teardown"], recap, _output = bench.playbook(REPO / "site.yml", files["absent"])
        if not bench.is_empty():
            notes.append(f"N={n}: teardown left objects behind: {bench.state()}")

        noop_play = tmp / "floor-noop.yml"
        noop_play.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.meta: noop\n")
        ping_play = tmp / "floor-ping.yml"
        ping_play.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n")
        out["floor"], _recap, _output = bench.playbook(noop_play)
        out["floor_ping"], _recap, _output = bench.playbook(ping_play)

        if profile:
            notes += profile_report(bench, n, topo, items, profile)
        return out, notes
    finally:
        bench.close()


def profile_report(bench: Bench, n: int, topo: dict, items: dict, profile: dict | None) -> list[str]:
    lines = [f"--- profile N={n} ---"]
    if profile:
        marks = [t for _task, t in profile["tasks"]] + [profile["stats"]]
        lines.append(
            f"cold converge {profile['end'] - profile['start']:.3f} s: process start -> callbacks loaded "
            f"{profile['init'] - profile['start']:.3f}, -> first task {marks[0] - profile['init']:.3f}, "
            f"after last task -> exit {profile['end'] - profile['stats']:.3f}"
        )
        for (name, start), end in zip(profile["tasks"], marks[1:], strict=True):
            lines.append(f"  {end - start:7.3f}  {name}")
    start = time.perf_counter()
    wharf_topology_errors(topo)
    errors_s = time.perf_counter() - start
    start = time.perf_counter()
    wharf_host_items(topo, bench.name)
    items_s = time.perf_counter() - start
    lines.append(f"filters in-process: wharf_topology_errors {errors_s:.3f} s, wharf_host_items {items_s:.3f} s")
    names = [ns["name"] for ns in items["namespaces"]]
    calls = [
        ("netns", {"namespaces": items["namespaces"]}),
        ("bridge", {"bridges": items["bridges"]}),
        ("veth", {"veths": items["veths"], "exclusive": True, "exclusive_namespaces": names}),
        ("ip_addr", {"interfaces": items["interfaces"], "exclusive": True}),
    ]
    timings = []
    for name, args in calls:
        elapsed, _created = bench.module(name, args)
        timings.append(f"{name} {elapsed:.3f}")
    lines.append("modules run directly, cold: " + ", ".join(timings))
    timings = [f"{name} {bench.module(name, args)[0]:.3f}" for name, args in calls]
    lines.append("modules run directly, no-op: " + ", ".join(timings))
    bench.module("netns", {"namespaces": items["namespaces"], "state": "absent"})
    bench.module("bridge", {"bridges": items["bridges"], "state": "absent"})
    if not bench.is_empty():
        lines.append("direct module runs left objects behind")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,50,250")
    parser.add_argument("--networks", type=int, default=5)
    parser.add_argument("--prefixlen", type=int, choices=(16, 20), default=16)
    parser.add_argument("--repeat", type=int, default=1, help="runs per size, each in a fresh sandbox (median)")
    parser.add_argument("--profile", action="store_true", help="per-task times, direct module times, filter times")
    opts = parser.parse_args()
    # SIGTERM/SIGHUP unwind like Ctrl-C, so the finally blocks destroy the sandbox
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    print(f"M={opts.networks} networks (/{opts.prefixlen}), median of {opts.repeat} run(s) in fresh sandboxes, seconds")
    print("ratio = time / ip total (ip -batch in the root namespace + one `ip -n NS -batch` per container + nft -f)")
    groups = [
        ["N"],
        ["ip host", "+per-ns", "+nft", "ip total"],
        ["cold", "ratio"],
        ["no-op", "ratio"],
        ["add-one", "ratio"],
    ]
    groups += [["teardown", "ip del"], ["floor play", "+1 module"]]
    widths = [[max(len(title), 6) for title in group] for group in groups]

    def row(cells: list[list[str]]) -> str:
        return " | ".join(
            " ".join(cell.rjust(w) for cell, w in zip(group, ws, strict=True))
            for group, ws in zip(cells, widths, strict=True)
        )

    header = row(groups)
    print(header)
    print("-" * len(header), flush=True)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="wbtopo-") as tmp:
        for n in (int(s) for s in opts.sizes.split(",")):
            runs = []
            for repeat in range(opts.repeat):
                out, run_notes = measure(Path(tmp), n, opts, opts.profile and repeat == 0)
                runs.append(out)
                notes += run_notes
            m = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            base = m["ip_total"]
            cells = [[str(n)], [f"{m['ip_host']:.3f}", f"{m['ip_ns']:.3f}", f"{m['nft']:.3f}", f"{base:.3f}"]]
            cells += [[f"{m[k]:.2f}", f"{m[k] / base:.2f}"] for k in ("cold", "noop", "add")]
            cells += [[f"{m['teardown']:.2f}", f"{m['ip_del']:.3f}"], [f"{m['floor']:.2f}", f"{m['floor_ping']:.2f}"]]
            print(row(cells), flush=True)
    for line in notes:
        print(line)


if __name__ == "__main__":
    main()
