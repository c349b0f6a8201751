# This file is private to the wharf.network collection: its API may change at any time.
"""The record of what the last transaction applied, kept in ``firewall.json`` of the state directory
(``/run/wharf``, see ``_kernel.files``).

It holds the desired networks and publishes (with the free ports they got, so a free port stays the same
on the next run), the digest of the rendered text, and the digest of the table as the kernel listed it
right after that transaction; beside it, ``firewall.nft`` keeps the rendered text, for the diff of the next
change. How a run uses them to tell a no-op from drift is in ``resource.py``.

Why a file and not a table comment: a comment cannot hold the digest of a listing that includes it, and
nft 1.0.6 does not show table comments in JSON. /run is a tmpfs, so a reboot loses the record and the
table together and the next run creates both. A record this version cannot read (missing, damaged, or of
another ``RECORD_VERSION``) reads as no record, and ``resource.py`` says what a run does then.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass

from ansible_collections.wharf.network.plugins.module_utils._firewall.model import FirewallNetwork, Publish
from ansible_collections.wharf.network.plugins.module_utils._kernel.files import STATE_DIR, write_atomically

RECORD_DIR = STATE_DIR
RECORD_NAME = "firewall.json"
RENDER_NAME = "firewall.nft"
RECORD_VERSION = 1


@dataclass
class Record:
    """What the last transaction applied (see the module docstring)."""

    networks: list[FirewallNetwork]
    publishes: list[Publish]
    render_digest: str
    listing_digest: str
    vxlan_peers: list[str] | None = None
    vxlan_local: str | None = None

    def as_json(self) -> str:
        return json.dumps(
            {
                "version": RECORD_VERSION,
                "networks": [n.record() for n in self.networks],
                "publishes": [p.record() for p in self.publishes],
                "render_digest": self.render_digest,
                "listing_digest": self.listing_digest,
                "vxlan_peers": self.vxlan_peers,
                "vxlan_local": self.vxlan_local,
            },
            indent=1,
            sort_keys=True,
        )


def read_record(directory: str) -> Record | None:
    try:
        with open(os.path.join(directory, RECORD_NAME)) as handle:
            data = json.load(handle)
        if data.get("version") != RECORD_VERSION:
            return None
        return Record(
            networks=[FirewallNetwork.from_record(row) for row in data["networks"]],
            publishes=[Publish.from_record(row) for row in data["publishes"]],
            render_digest=data["render_digest"],
            listing_digest=data["listing_digest"],
            vxlan_peers=data.get("vxlan_peers"),
            vxlan_local=data.get("vxlan_local"),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_rendered(directory: str) -> str | None:
    """The table text the recorded transaction sent (None: none kept)."""
    try:
        with open(os.path.join(directory, RENDER_NAME)) as handle:
            return handle.read()
    except OSError:
        return None


def write_record(directory: str, record: Record, rendered: str) -> None:
    """Keep ``record`` and the text it was rendered as; each file is replaced whole (a crash leaves the old
    one or the new one, never half of one)."""
    os.makedirs(directory, mode=0o755, exist_ok=True)
    write_atomically(os.path.join(directory, RENDER_NAME), rendered)
    write_atomically(os.path.join(directory, RECORD_NAME), record.as_json())


def forget_record(directory: str) -> None:
    """Remove the record and the rendered text; what is already gone is fine."""
    for name in (RECORD_NAME, RENDER_NAME):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(directory, name))
