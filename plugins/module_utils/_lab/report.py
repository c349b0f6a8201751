# This file is private to the wharf.network collection: its API may change at any time.
"""What a person reads after a converge: each container, its addresses, and who reaches whom.

Pure: it takes the container summaries of `wharf_host_items` (and measured probes) and returns
lines of text, so it is unit-tested without a kernel.
"""

from __future__ import annotations

from typing import Any

REACHABLE = "✓"
BLOCKED = "✗"


def expected_probes(
    containers: list[dict[str, Any]], remote_containers: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Every container with a namespace probes every other container's addresses.

    Expected reachable exactly when the two share the network of that address (Docker's rule:
    containers on one network reach each other; different networks are isolated) and that network
    lets its containers talk (``icc``). A container sharing another's namespace (container:OTHER) and
    host-mode containers do not probe.
    `remote_containers` are containers of other hosts (their overlay endpoints): targets only, probed
    over the overlay from this host's containers.
    """
    probes = []
    sources = [c for c in containers if c.get("network_mode") in ("bridge", "none") and c.get("namespace")]
    for source in sources:
        source_networks = {e["network"] for e in source.get("endpoints", [])}
        for target in [*containers, *(remote_containers or [])]:
            if target["name"] == source["name"]:
                continue
            for endpoint in target.get("endpoints", []):
                probes.append(
                    {
                        "source": source["namespace"],
                        "destination": endpoint["address"],
                        "expected": endpoint["network"] in source_networks and endpoint.get("icc", True),
                        "label": f"{source['name']} -> {target['name']}.{endpoint['network']}",
                    }
                )
    return probes


def render(
    containers: list[dict[str, Any]], results: list[dict[str, Any]], publishes: list[dict[str, Any]] | None = None
) -> list[str]:
    """The report: a container table, the published ports, then a matrix of expected/measured per source and
    destination."""
    lines = ["containers:"]
    width = max((len(c["name"]) for c in containers), default=4)
    for container in containers:
        endpoints = container.get("endpoints", [])
        if endpoints:
            where = "  ".join(f"{e['interface']} {e['address']}/{e['prefixlen']} ({e['network']})" for e in endpoints)
        elif container.get("network_mode") == "none":
            where = "loopback only (network_mode: none)"
        else:
            where = f"network_mode: {container.get('network_mode')}"
        lines.append(f"  {container['name']:<{width}}  {where}")
    lines += _published(containers, publishes or [])
    if not results:
        return lines
    columns: list[str] = []
    for result in results:
        column = result["label"].split(" -> ", 1)[1]
        if column not in columns:
            columns.append(column)
    columns.sort()
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for result in results:
        source, column = result["label"].split(" -> ", 1)
        rows.setdefault(source, {})[column] = result
    cell = max(len(c) for c in columns)
    lines.append("")
    lines.append(f"reachability by ping, expected/measured ({REACHABLE} reaches, {BLOCKED} blocked):")
    header = " " * (width + 4) + "  ".join(f"{c:^{cell}}" for c in columns)
    lines.append(header)
    mismatches = 0
    for source, by_column in sorted(rows.items()):
        cells = []
        for column in columns:
            result = by_column.get(column)
            if result is None:
                cells.append(f"{'-':^{cell}}")
                continue
            expected = REACHABLE if result["expected"] else BLOCKED
            measured = REACHABLE if result["reachable"] else BLOCKED
            mark = "" if result["ok"] else "!"
            mismatches += 0 if result["ok"] else 1
            cells.append(f"{expected + '/' + measured + mark:^{cell}}")
        lines.append(f"  {source:<{width}}  " + "  ".join(cells))
    verdict = "all as expected" if mismatches == 0 else f"{mismatches} NOT as expected (marked !)"
    lines.append(f"{len(results)} probes, {verdict}")
    return lines


def _published(containers: list[dict[str, Any]], publishes: list[dict[str, Any]]) -> list[str]:
    """'  0.0.0.0:8080/tcp -> web1 172.28.0.10:80' per publish (as the converge returns them), free ports marked."""
    if not publishes:
        return []
    owner = {e["address"]: c["name"] for c in containers for e in c.get("endpoints", [])}
    rows = []
    for p in publishes:
        host = f"{p.get('host_ip') or '0.0.0.0'}:{p['published']}/{p['protocol']}"
        target = f"{owner.get(p['address'], '?')} {p['address']}:{p['target']}"
        rows.append((host, target + ("  (free port, stable)" if p.get("auto") else "")))
    width = max(len(host) for host, _target in rows)
    return ["", "published ports:"] + [f"  {host:<{width}}  -> {target}" for host, target in rows]
