"""Golden outputs: what the collection makes of three rich topologies, recorded through public interfaces only.

Why: the engine (plugins/module_utils) is about to be reorganised, and nothing a user can see may change. So
these tests drive only what a user drives (the `converge` module through the `wharf.network.sandbox`
connection, into sandbox hosts) and read only what a user can read (the module's results, the kernel's
objects, the nftables tables, the files under /run/wharf and /etc/netns), and compare all of it with files
under tests/golden/ recorded from the code before the move. Nothing here imports the engine.

For each topology (the demo inventory's, the fleet inventory's on three hosts over an underlay, and a
generated one of 250 containers), on sandbox hosts that start empty:
  converge.json  the converge result in check mode with diff, then what the real run reports differently
                 (nothing but the resolver's pid, today), then what a second run reports differently (it
                 changes nothing); the check must leave the host exactly as it was
  nft.json       `nft list tables` and the listing of each table, as the kernel holds them
  files.json     every file and directory under /run/wharf, /etc/netns and /run/netns (path -> content)
  kernel.json    per namespace (the host's and each container's): links, addresses, routes, permanent
                 neighbours (and for the fleet the bridge FDB); the containers' hostnames; the processes
  teardown.json  the result of `state: absent`, and what it leaves behind compared with the empty host

    WHARF_GOLDEN_UPDATE=1 pytest tests/integration/test_golden.py    re-records the files
    pytest tests/integration/test_golden.py                          compares, and fails with a diff per file

What is masked, and why (everything else is recorded as it is):
- the resolver's pids (module result, resolver.pid, resolver.log, status.json) and status.json's `time`, and
  the reload duration in resolver.log: they differ on every run;
- the namespace inode numbers in /run/wharf/owned/netns/*: the kernel's, new on every creation (recorded as
  `<netns N>`, numbered in path order, so a namespace shared by two containers still shows as one);
- in the host's namespace the MACs of host-side veths, of VXLAN devices and of bridges without a VXLAN
  port (the kernel picks them at random on each creation, and a bridge then takes its lowest port's),
  plus the IPv6 link-local addresses and the FDB entries derived from them. Container MACs (02:42 + the
  IPv4 address, or the topology's own) and overlay gateway MACs are derived, and recorded;
- fields that are indices, counters, timers or sized by the machine (ifindex, link_netnsid, *_timer,
  bridge and port ids, queue counts, GSO/TSO limits), and address lifetimes;
- neighbours the kernel learned from traffic, multicast FDB entries (the kernel's, for IPv6 groups) and
  learned FDB entries: which packets flowed by the time of the probe is not the collection's doing;
- the order the kernel lists things in: links, addresses, routes and the elements of nftables sets and
  maps are sorted (hash sets are listed in bucket order, which changes from one table to the next).
The containers' upstream DNS comes from a fixed resolv.conf (the machine's own differs between machines).
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, ModuleResult, Sandbox, module_on

pytestmark = pytest.mark.integration

GOLDEN = REPO / "tests" / "golden"
UPDATE = os.environ.get("WHARF_GOLDEN_UPDATE") == "1"
PROBE = Path(__file__).resolve().parent / "goldenprobe.py"
RESOLVER_SOURCE = REPO / "plugins" / "module_utils" / "_dns" / "server"
RESOLV_CONF = "nameserver 192.0.2.53\nsearch example.test\n"
RANDOM = "<random>"
RESULT_FIELDS = ("changed", "changes", "steps", "diff", "containers", "remote_containers", "publishes", "dns")
SETTLE_SECONDS = 10.0
DIFF_LINES = 60  # of each file's diff in a failure message


def inventory_topology(name: str) -> dict[str, Any]:
    with open(REPO / "inventories" / name / "group_vars" / "all" / "topology.yml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)["wharf_topology"]


def generated_topology(count: int = 250) -> dict[str, Any]:
    """A deterministic topology of `count` containers: five networks (one with a pool and a smaller MTU, one
    internal, one without icc, one with its own bridge name, gateway and no masquerade), containers on one or
    two of them, fixed addresses, aliases, 18 publishes (fixed, ranges, free ports, long form, loopback),
    hostnames, extra hosts and DNS options, a fixed MAC, an interface name, no network, a shared namespace."""
    networks = {
        "edge": {"subnet": "10.90.0.0/24"},
        "app": {"subnet": "10.90.1.0/24", "ip_range": "10.90.1.128/25", "mtu": 1400},
        "data": {"subnet": "10.90.2.0/24", "internal": True},
        "jobs": {"subnet": "10.90.3.0/24", "icc": False},
        "ops": {"subnet": "10.90.4.0/24", "gateway": "10.90.4.254", "bridge_name": "br-g-ops", "masquerade": False},
    }
    names = list(networks)
    containers: dict[str, Any] = {}
    publishes = 0
    for index in range(count - 2):
        primary = names[index % 5]
        attach: dict[str, dict[str, Any]] = {primary: {}}
        if index % 3 == 0:
            attach[names[(index + 2) % 5]] = {}
        if index % 10 == 0:
            attach[primary]["ipv4_address"] = f"10.90.{index % 5}.{100 + index // 10}"
        if index % 7 == 0:
            attach[primary]["aliases"] = [f"svc{index % 4}"]
        if index == 11:
            attach[primary]["mac_address"] = "02:aa:00:00:00:0b"
        if index == 17:
            attach[primary]["interface_name"] = "uplink0"
        spec: dict[str, Any] = {"networks": attach}
        if index % 11 == 1 and primary != "data":
            spec["ports"] = [
                [f"{18000 + publishes}:80"],
                [f"{19000 + 10 * publishes}-{19002 + 10 * publishes}:9000-9002/udp"],
                ["8080"],  # a free port, derived from what it publishes
                [{"host_ip": "0.0.0.0", "published": 20000 + publishes, "target": 443, "protocol": "tcp"}],
                [f"127.0.0.1:{21000 + publishes}:5432/tcp"],
            ][publishes % 5]
            publishes += 1
        if index % 25 == 3:
            spec["hostname"] = f"c{index:03d}.golden"
        if index % 40 == 5:
            spec.update(extra_hosts=["myapp.local:192.0.2.100"], dns_search=["corp.example"], dns_options=["ndots:2"])
        containers[f"c{index:03d}"] = spec
    containers[f"c{count - 2:03d}"] = {"network_mode": "none"}
    containers[f"c{count - 1:03d}"] = {"network_mode": "container:c000"}
    return {"networks": networks, "containers": containers}


# --- the module's results ----------------------------------------------------------------------------------


def result_view(result: ModuleResult) -> dict[str, Any]:
    """The documented return values, the resolver's pid masked and the diff split into lines."""
    view = {key: copy.deepcopy(result.result[key]) for key in RESULT_FIELDS if key in result.result}
    if isinstance(view.get("dns", {}).get("pid"), int):
        view["dns"]["pid"] = "<pid>"
    if "diff" in view:
        view["diff"] = {side: text.split("\n") for side, text in view["diff"].items()}
    return view


def delta(base: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """The fields of `other` that differ from `base` (`<absent>` for one it lacks)."""
    return {
        key: other.get(key, "<absent>") for key in sorted(set(base) | set(other)) if base.get(key) != other.get(key)
    }


# --- what the host holds -----------------------------------------------------------------------------------


def probe(host: Sandbox, fdb: bool) -> dict[str, Any]:
    out = host.sh(f"{sys.executable} {PROBE}{' --fdb' if fdb else ''}", timeout=120).stdout
    return json.loads(out)


def unsettled(raw: dict[str, Any]) -> list[str]:
    """What the kernel is still finishing after a run (link states follow carrier changes through linkwatch, up
    to a second later; IPv6 duplicate address detection takes a second): a snapshot waits for it."""
    busy = []
    for namespace, objects in raw["namespaces"].items():
        for link in objects["link"]:
            flags, where = link.get("flags", []), f"{namespace or '(host)'}/{link['ifname']}"
            if "LOWER_UP" in flags and link.get("operstate") not in ("UP", "UNKNOWN"):
                busy.append(f"{where} is {link.get('operstate')}")
            port = link.get("linkinfo", {}).get("info_slave_data", {})
            if "LOWER_UP" in flags and port.get("state", "forwarding") != "forwarding":
                busy.append(f"{where} port is {port['state']}")
        for link in objects["addr"]:
            busy.extend(f"{link['ifname']} {a['local']} tentative" for a in link["addr_info"] if a.get("tentative"))
    return busy


def settled_probe(host: Sandbox, fdb: bool) -> dict[str, Any]:
    deadline = time.monotonic() + SETTLE_SECONDS
    raw = probe(host, fdb)
    while unsettled(raw) and time.monotonic() < deadline:
        time.sleep(0.3)
        raw = probe(host, fdb)
    return raw  # still unsettled after the deadline: the comparison shows what


def render(fields: dict[str, Any]) -> str:
    """`key=value` pairs, sorted: one line per kernel object keeps the golden files small and their diffs
    naming the object."""
    parts = []
    for key in sorted(fields):
        value = fields[key]
        if value is None or value == [] or value == {}:
            continue
        if isinstance(value, dict):
            text = f"({render(value)})"
        elif isinstance(value, list):
            text = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        parts.append(f"{key}={text}")
    return " ".join(parts)


# bridge port flags and state: everything else in a port's data is an id or a timer
PORT_FIELDS = (
    "state", "priority", "cost", "hairpin", "guard", "root_block", "fastleave", "learning", "flood", "proxy_arp",
    "proxy_arp_wifi", "multicast_router", "mcast_flood", "bcast_flood", "mcast_to_unicast", "neigh_suppress",
    "vlan_tunnel", "isolated", "locked", "group_fwd_mask",
)  # fmt: skip
KIND_DATA_DROPPED = {
    "bridge_id",
    "root_id",
    "root_port",
    "root_path_cost",
    "topology_change",
    "topology_change_detected",
}


def link_line(link: dict[str, Any], masked: bool) -> str:
    info = link.get("linkinfo", {})
    data = {
        k: v for k, v in info.get("info_data", {}).items() if k not in KIND_DATA_DROPPED and not k.endswith("_timer")
    }
    port = {k: v for k, v in info.get("info_slave_data", {}).items() if k in PORT_FIELDS}
    fields = {
        "mtu": link.get("mtu"),
        "flags": link.get("flags"),
        "state": link.get("operstate"),
        "mac": RANDOM if masked else link.get("address"),
        "master": link.get("master"),
        "alias": link.get("ifalias"),
        "data": data,
        "port": port,
    }
    return f"{info.get('info_kind', link.get('link_type'))} {render(fields)}"


def namespace_view(objects: dict[str, Any], random_links: set[str], random_macs: set[str]) -> dict[str, Any]:
    links = {link["ifname"]: link_line(link, link["ifname"] in random_links) for link in objects["link"]}
    addresses = []
    for link in objects["addr"]:
        for address in link["addr_info"]:
            local = address["local"]
            if link["ifname"] in random_links and address["family"] == "inet6" and address.get("scope") == "link":
                local = RANDOM  # EUI-64 of the random MAC the link was created with
            extra = {
                k: v
                for k, v in address.items()
                if k not in ("family", "local", "prefixlen", "label", "tentative") and not k.endswith("_life_time")
            }
            if address.get("label", link["ifname"]) != link["ifname"]:
                extra["label"] = address["label"]
            line = f"{link['ifname']} {address['family']} {local}/{address['prefixlen']} {render(extra)}"
            addresses.append(line.rstrip())
    routes = [f"{r['dst']} {render({k: v for k, v in r.items() if k != 'dst'})}" for r in objects["route"]]
    neighbours = [
        f"{n['dst']} {render({k: v for k, v in n.items() if k != 'dst'})}"
        for n in objects["neigh"]
        if "PERMANENT" in n.get("state", [])
    ]
    view = {"links": links, "addresses": sorted(addresses), "routes": sorted(routes), "neighbours": sorted(neighbours)}
    if "fdb" in objects:
        fdb = []
        for entry in objects["fdb"]:
            if int(entry["mac"].split(":")[0], 16) & 1 or entry.get("state") not in ("permanent", "static"):
                continue
            mac = RANDOM if entry["mac"] in random_macs else entry["mac"]
            fdb.append(f"{mac} {render({k: v for k, v in entry.items() if k != 'mac'})}")
        view["fdb"] = sorted(fdb)
    return view


def kernel_view(raw: dict[str, Any]) -> dict[str, Any]:
    host = raw["namespaces"][""]["link"]

    def kind(link: dict[str, Any]) -> str | None:
        return link.get("linkinfo", {}).get("info_kind")

    overlay_bridges = {link.get("master") for link in host if kind(link) == "vxlan"}
    random_links = {
        link["ifname"]
        for link in host
        if kind(link) in ("veth", "vxlan") or (kind(link) == "bridge" and link["ifname"] not in overlay_bridges)
    }
    random_macs = {link["address"] for link in host if link["ifname"] in random_links}
    namespaces = {
        name or "(host)": namespace_view(objects, random_links if name == "" else set(), random_macs)
        for name, objects in raw["namespaces"].items()
    }
    processes = [line.replace(sys.executable, "<python>") for line in raw["processes"]]
    return {"netns": raw["netns"], "hostnames": raw["hostnames"], "namespaces": namespaces, "processes": processes}


def sorted_elements(listing: str) -> list[str]:
    """An nft listing with the elements of each set and map sorted, one per line."""
    text, rest = "", listing
    while (start := rest.find("elements = {")) != -1:
        end = rest.index("}", start)
        head = rest[:start]
        indent = head[head.rfind("\n") + 1 :]
        elements = sorted(e.strip() for e in rest[start + len("elements = {") : end].split(",") if e.strip())
        text += head + "elements = {\n" + "".join(f"{indent}\t{element},\n" for element in elements) + indent + "}"
        rest = rest[end + 1 :]
    return (text + rest).split("\n")


def nft_view(raw: dict[str, Any]) -> dict[str, Any]:
    return {name: None if text is None else sorted_elements(text) for name, text in raw["nft"].items()}


def files_view(raw: dict[str, Any]) -> dict[str, Any]:
    inodes: dict[str, str] = {}
    view: dict[str, Any] = {}
    for path, entry in sorted(raw["files"].items()):
        entry = dict(entry)
        content = entry.pop("content", None)
        source = RESOLVER_SOURCE / path.removeprefix("/run/wharf/dns/server/")
        if content is not None and path.startswith("/run/wharf/dns/server/"):
            # the resolver's package, copied verbatim from the collection: which file, not a second copy (a change
            # of the resolver's source is not a change of what the collection writes)
            same = source.is_file() and source.read_text() == content
            entry["copy_of"] = str(source.relative_to(REPO)) if same else hashlib.sha256(content.encode()).hexdigest()
        elif content is not None and path == "/run/wharf/dns/server.py":
            # the resolver's entry point: its digest, not a second copy
            entry["sha256"] = hashlib.sha256(content.encode()).hexdigest()
        elif content is not None:
            if path.startswith("/run/wharf/owned/netns/"):
                first, newline, after = content.partition("\n")
                if first.isdigit():
                    content = inodes.setdefault(first, f"<netns {len(inodes) + 1}>") + newline + after
            elif path == "/run/wharf/dns/resolver.pid":
                content = re.sub(r"^\d+", "<pid>", content)
            elif path == "/run/wharf/dns/resolver.log":
                content = re.sub(r"\[\d+\]", "[<pid>]", content)
                content = re.sub(r" in \d+ ms", " in <ms> ms", content)
            elif path == "/run/wharf/dns/status.json":
                content = re.sub(r'"pid": \d+', '"pid": "<pid>"', content)
                content = re.sub(r'"time": [0-9.e+-]+', '"time": "<time>"', content)
            entry["content"] = content.split("\n")
        view[path] = entry
    return view


def host_view(raw: dict[str, Any]) -> dict[str, Any]:
    """Everything the host holds, masked: what an empty host is compared by."""
    return {
        "kernel": kernel_view(raw),
        "nft": nft_view(raw),
        "files": files_view(raw),
        "sysctls": raw["sysctls"],
    }


def differences(before: Any, after: Any, path: str = "") -> dict[str, Any]:
    """Dotted paths to the parts that differ, with both sides (lists and strings compared whole)."""
    if isinstance(before, dict) and isinstance(after, dict):
        found: dict[str, Any] = {}
        for key in sorted(set(before) | set(after)):
            found.update(differences(before.get(key), after.get(key), f"{path}.{key}" if path else key))
        return found
    return {} if before == after else {path: {"before": before, "after": after}}


# --- golden files ------------------------------------------------------------------------------------------


def dump(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def check_golden(directory: str, artifacts: dict[str, Any]) -> list[str]:
    """Compare each artifact with tests/golden/DIRECTORY/NAME.json (or rewrite it with WHARF_GOLDEN_UPDATE=1);
    a readable report per file that differs."""
    problems = []
    for name, value in artifacts.items():
        path = GOLDEN / directory / f"{name}.json"
        actual = dump(value)
        if UPDATE:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(actual, encoding="utf-8")
            continue
        relative = path.relative_to(REPO)
        if not path.exists():
            problems.append(f"{relative} is missing: record it with WHARF_GOLDEN_UPDATE=1")
            continue
        expected = path.read_text(encoding="utf-8")
        if expected == actual:
            continue
        where = list(differences(json.loads(expected), value))
        diff = list(
            difflib.unified_diff(
                expected.splitlines(), actual.splitlines(), str(relative), "this run", n=2, lineterm=""
            )
        )
        shown = "\n".join(diff[:DIFF_LINES]) + (
            f"\n... ({len(diff) - DIFF_LINES} more lines)" if len(diff) > DIFF_LINES else ""
        )
        paths = ", ".join(where[:8]) + (f" and {len(where) - 8} more" if len(where) > 8 else "")
        problems.append(f"{relative} differs at {paths}:\n{shown}")
    return problems


def converge_all(hosts: dict[str, Sandbox], args: dict[str, Any], check: bool, diff: bool) -> dict[str, ModuleResult]:
    results = module_on(hosts, "converge", args, check=check, diff=diff, timeout=300)
    for alias, result in results.items():
        assert not result.failed and result.result, f"{alias}: {result.result.get('msg')}\n{result.output[-3000:]}"
    return results


def record(
    hosts: dict[str, Sandbox], topology: dict[str, Any], tmp_path: Path, peers: dict[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Converge `hosts` (inventory name -> sandbox host) from empty and back; each host's artifacts."""
    fdb = peers is not None
    resolv_conf = tmp_path / "resolv.conf"
    resolv_conf.write_text(RESOLV_CONF)
    args: dict[str, Any] = {
        "topology": topology,
        "host": "{{ inventory_hostname }}",
        "dns": True,
        "resolv_conf": str(resolv_conf),
    }
    if peers is not None:
        args["peers"] = peers
    empty = {alias: host_view(probe(host, fdb)) for alias, host in hosts.items()}

    checked = converge_all(hosts, args, check=True, diff=True)
    for alias, host in hosts.items():
        assert host_view(probe(host, fdb)) == empty[alias], f"{alias}: check mode changed the host"
    applied = converge_all(hosts, args, check=False, diff=True)
    again = converge_all(hosts, args, check=False, diff=True)
    for alias in hosts:
        assert applied[alias].changed and not again[alias].changed, (alias, again[alias].result.get("changes"))
        assert again[alias].result["dns"]["pid"] == applied[alias].result["dns"]["pid"], "the resolver restarted"
    held = {alias: settled_probe(host, fdb) for alias, host in hosts.items()}
    removed = converge_all(hosts, {**args, "topology": {**topology, "state": "absent"}}, check=False, diff=False)

    artifacts = {}
    for alias, host in hosts.items():
        left = differences(empty[alias], host_view(probe(host, fdb)))
        assert set(left) <= {"sysctls.net.ipv4.ip_forward"}, f"{alias}: teardown left {json.dumps(left, indent=1)}"
        plan, real, second = (result_view(r[alias]) for r in (checked, applied, again))
        artifacts[alias] = {
            "converge": {
                "check": plan,
                "real (what differs from check)": delta(plan, real),
                "second run (what differs from the real run)": delta(real, second),
            },
            "nft": nft_view(held[alias]),
            "files": files_view(held[alias]),
            "kernel": kernel_view(held[alias]),
            "teardown": {"result": result_view(removed[alias]), "left behind": left},
        }
    return artifacts


def test_golden_demo(sandbox: Sandbox, tmp_path: Path) -> None:
    artifacts = record({"wharf-demo": sandbox}, inventory_topology("demo"), tmp_path)
    problems = check_golden("demo", artifacts["wharf-demo"])
    assert not problems, "\n\n".join(problems)


def test_golden_fleet(fleet: Any, tmp_path: Path) -> None:
    hosts = {f"node{index}": fleet.add(index) for index in (1, 2, 3)}
    peers = {alias: fleet.underlay(index) for index, alias in enumerate(hosts, start=1)}
    artifacts = record(hosts, inventory_topology("fleet"), tmp_path, peers)
    problems = [p for alias in hosts for p in check_golden(f"fleet/{alias}", artifacts[alias])]
    assert not problems, "\n\n".join(problems)


def test_golden_generated_250(sandbox: Sandbox, tmp_path: Path) -> None:
    topology = generated_topology()
    problems = check_golden("generated-250", {"topology": topology})  # the input, so a generator change shows
    artifacts = record({"wharf-250": sandbox}, topology, tmp_path)
    problems += check_golden("generated-250", artifacts["wharf-250"])
    assert not problems, "\n\n".join(problems)
