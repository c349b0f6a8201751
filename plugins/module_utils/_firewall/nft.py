# This file is private to the wharf.network collection: its API may change at any time.
"""The ``nft`` program and what it prints: the tables wharf owns, listing them, sending one transaction.

Only our two tables are ever read in full or sent, whole (``nft -f -``): never rule by rule, never
``flush ruleset``, never another table, so a host's own rules and other tools' tables stay as they are. nft
normalises rules when it lists them, so the text we render never equals its listing; a listing made
canonical (``canonical_listing``) does equal a later listing of the same table, and that is how a run
sees a table edited outside the collection.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from ansible_collections.wharf.network.plugins.module_utils._engine.errors import WharfError

FAMILY = "inet"
TABLE = "wharf"
USER_TABLE = "wharf-user"
TABLE_LABEL = f"{FAMILY} {TABLE}"
USER_TABLE_LABEL = f"{FAMILY} {USER_TABLE}"

# run(argv, data) -> (rc, stdout, stderr): AnsibleModule.run_command, or a stand-in in tests
Runner = Callable[..., tuple]


class Nft:
    """The `nft` program, used only to list our tables and to send one whole transaction."""

    def __init__(self, run: Runner, binary: str = "nft"):
        self.run = run
        self.binary = binary

    def _call(self, args: list[str], data: str | None = None) -> tuple[int, str, str]:
        try:
            return self.run([self.binary, *args], data)
        except OSError as exc:  # no such program, or not executable
            words = exc.strerror or str(exc)
            raise WharfError(
                f"the nft program ({self.binary}) cannot be run: {words} (Debian: apt install nftables)"
            ) from exc

    def tables(self) -> set[tuple[str, str]]:
        rc, out, err = self._call(["list", "tables"])
        if rc != 0:
            raise WharfError(f"nftables: list tables failed: {err.strip() or out.strip()}")
        return listing_tables(out)

    def listing(self, family: str, name: str, as_json: bool = True) -> str | None:
        rc, out, err = self._call(["-j", "list", "table", family, name] if as_json else ["list", "table", family, name])
        if rc != 0:
            if "No such file or directory" in err:
                return None
            raise WharfError(f"nftables table '{family} {name}': list failed: {err.strip()}")
        return out

    def apply(self, text: str) -> None:
        rc, out, err = self._call(["-f", "-"], text)
        if rc != 0:
            detail = err.strip() or out.strip()
            raise WharfError(f"nftables table '{TABLE_LABEL}': transaction refused, nothing changed: {detail}")


def digest(text: str) -> str:
    """sha256 of ``text``, in hex: the record keeps digests of the rendered text and of the canonical
    listing, which is all a run needs to compare."""
    return hashlib.sha256(text.encode()).hexdigest()


def canonical_listing(listing_json: str) -> str:
    """``nft -j list table`` output made comparable across listings of one table: handles and the
    version banner dropped, set and map elements sorted (the kernel dumps hash sets in bucket order,
    which a resize may change); rule order, which matters, is kept."""
    document = json.loads(listing_json)
    objects = []
    for entry in document.get("nftables", []):
        if "metainfo" in entry:
            continue
        objects.append(_strip(entry))
    return json.dumps(objects, sort_keys=True, separators=(",", ":"))


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        cleaned = {k: _strip(v) for k, v in value.items() if k != "handle"}
        if isinstance(cleaned.get("elem"), list):
            cleaned["elem"] = sorted(cleaned["elem"], key=lambda e: json.dumps(e, sort_keys=True))
        return cleaned
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def listing_tables(text: str) -> set[tuple[str, str]]:
    """(family, name) of every table in ``nft list tables`` output."""
    tables = set()
    for line in text.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "table":
            tables.add((words[1], words[2]))
    return tables


def has_rules(listing_json: str) -> bool:
    """Whether a ``nft -j list table`` listing holds any rule (the user table is removed only when empty)."""
    return any("rule" in entry for entry in json.loads(listing_json).get("nftables", []))
