#!/usr/bin/env python3
"""Is this checkout slower than an older revision? `bench_topology.py` of both, interleaved, in one run.

A refactor must not cost the user time, and a comparison is only fair when both sides run on the same machine under
the same load: so the older revision is checked out into a throwaway git worktree (sharing this checkout's venv),
and the two `bench_topology.py` runs alternate (base, head, base, head...) for `--rounds` rounds. Each run builds
its own fresh sandbox hosts, as bench_topology does. The table gives, per size and column, the median seconds of
each side and head/base (below 1.00: head is faster).

Usage: sudo .venv/bin/python benchmarks/bench_revisions.py BASE_REV [--sizes 250] [--rounds 3]
Not a test: numbers vary by machine.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ("ip total", "cold", "no-op", "add-one", "teardown")
ROW = re.compile(
    r"^\s*(?P<n>\d+) \|\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+(?P<ip>[\d.]+) \|\s+(?P<cold>[\d.]+)\s+[\d.]+ \|"
    r"\s+(?P<noop>[\d.]+)\s+[\d.]+ \|\s+(?P<add>[\d.]+)\s+[\d.]+ \|\s+(?P<down>[\d.]+)\s"
)


def run_bench(checkout: Path, sizes: str) -> dict[int, tuple[float, ...]]:
    """One bench_topology run of `checkout`: its table rows, by N."""
    out = subprocess.run(
        [sys.executable, str(checkout / "benchmarks" / "bench_topology.py"), "--sizes", sizes],
        cwd=checkout,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = {}
    for line in out.splitlines():
        match = ROW.match(line)
        if match:
            rows[int(match["n"])] = tuple(float(match[key]) for key in ("ip", "cold", "noop", "add", "down"))
    if not rows:
        raise SystemExit(f"no result rows in the output of {checkout}:\n{out}")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the older revision (commit, tag or branch)")
    parser.add_argument("--sizes", default="250")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    base_rev = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", args.base], check=True, capture_output=True, text=True
    ).stdout.strip()
    head_rev = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="wharf-bench-base.") as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(base), base_rev], check=True)
        try:
            (base / ".venv").symlink_to(REPO / ".venv")
            (base / ".collections" / "ansible_collections" / "wharf").mkdir(parents=True)
            (base / ".collections" / "ansible_collections" / "wharf" / "network").symlink_to(base)
            results: dict[str, list[dict[int, tuple[float, ...]]]] = {"base": [], "head": []}
            for round_number in range(1, args.rounds + 1):
                for side, checkout in (("base", base), ("head", REPO)):
                    print(f"round {round_number}/{args.rounds}: {side}", file=sys.stderr, flush=True)
                    rows = run_bench(checkout, args.sizes)
                    results[side].append(rows)
                    for n, values in sorted(rows.items()):
                        shown = "  ".join(f"{c} {v:.2f}" for c, v in zip(COLUMNS, values, strict=True))
                        print(f"  N={n}: {shown}", file=sys.stderr, flush=True)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)], check=False)
    print(f"bench_topology.py, base {base_rev} vs head {head_rev}, median of {args.rounds} interleaved rounds, seconds")
    print(f"{'N':>5} | " + " | ".join(f"{c:>8} base  head  ratio" for c in COLUMNS))
    for n in sorted(results["head"][0]):
        cells = []
        for index in range(len(COLUMNS)):
            old = statistics.median(r[n][index] for r in results["base"])
            new = statistics.median(r[n][index] for r in results["head"])
            cells.append(f"{'':>8} {old:5.2f} {new:5.2f} {new / old:6.2f}")
        print(f"{n:>5} | " + " | ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
