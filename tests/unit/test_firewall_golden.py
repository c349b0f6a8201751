"""The firewall's visible output, byte for byte: the table text, the ``nft -f`` transactions and the record
kept on disk, for a few rich inputs, compared with files recorded under tests/golden/firewall/.

A change to any of them is a change users see (the diff of every run, the rules in the kernel, the record
an upgrade reads back), so it has to be deliberate: ``WHARF_GOLDEN_UPDATE=1 pytest tests/unit`` rewrites
the files, and the diff of the files is then part of the review.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from ansible_collections.wharf.network.plugins.module_utils._firewall.listeners import Listener
from ansible_collections.wharf.network.plugins.module_utils._firewall.model import (
    FirewallNetwork,
    Publish,
    parse_networks,
    parse_publishes,
)
from ansible_collections.wharf.network.plugins.module_utils._firewall.nft import digest
from ansible_collections.wharf.network.plugins.module_utils._firewall.ports import resolve_publishes
from ansible_collections.wharf.network.plugins.module_utils._firewall.record import RECORD_NAME, Record, read_record
from ansible_collections.wharf.network.plugins.module_utils._firewall.render import (
    render,
    render_user_table,
    transaction,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "firewall"
UPDATE = os.environ.get("WHARF_GOLDEN_UPDATE") == "1"

NETWORKS = [
    # listed out of order on purpose: the table is canonical (networks by bridge name)
    {"bridge": "br-shop", "subnet": "172.28.0.0/24", "gateway": "172.28.0.1"},
    {"bridge": "br-ledger", "subnet": "172.29.0.0/24", "internal": True, "gateway": "172.29.0.1"},
    {"bridge": "br-quiet", "subnet": "172.30.0.0/24", "icc": False},
    {"bridge": "br-lan", "subnet": "10.91.0.0/25", "masquerade": False},
]
PUBLISHES = [
    {"address": "172.28.0.10", "port": "8080:80"},
    {"address": "172.28.0.10", "port": "127.0.0.1:8081:80"},
    {"address": "172.28.0.11", "port": "127.0.0.2:5432:5432"},
    {"address": "172.28.0.11", "port": "192.0.2.10:443:8443"},
    {"address": "172.30.0.5", "port": "9000-9002:9100-9102"},
    {"address": "172.30.0.5", "port": "127.0.0.1:7000-7001:7000-7001/udp"},
    {"address": "172.28.0.12", "port": "5353:53/udp"},
    {"address": "172.28.0.12", "port": "53:53/udp"},
    {"address": "10.91.0.7", "port": "3868:3868/sctp"},
    {"address": "10.91.0.7", "host_ip": "192.0.2.10", "published": "2905", "target": 2905, "protocol": "sctp"},
    # free ports: derived from a hash of the request, so the same on every run
    {"address": "172.28.0.10", "target": 80},
    {"address": "172.28.0.10", "host_ip": "127.0.0.1", "target": "6000-6002", "protocol": "udp"},
    {"address": "10.91.0.8", "port": "8443"},
]
VXLAN_PEERS = ["198.51.100.3", "198.51.100.2", "198.51.100.20"]
VXLAN_LOCAL = "198.51.100.1"


def rich() -> tuple[list[FirewallNetwork], list[Publish]]:
    networks = parse_networks(NETWORKS)
    listeners = [Listener("tcp", ipaddress.IPv4Address("0.0.0.0"), 22)]
    publishes = resolve_publishes(parse_publishes(PUBLISHES), [], listeners, (32768, 60999))
    return networks, publishes


def record_text(networks: list[FirewallNetwork], publishes: list[Publish], table: str, peers, local) -> str:
    listing_digest = "0" * 64  # what the kernel listed: not ours to render, a fixed stand-in
    record = Record(networks, publishes, digest(table), listing_digest, peers, local)
    return record.as_json() + "\n"


def cases() -> dict[str, str]:
    networks, publishes = rich()
    overlay = render(networks, publishes, VXLAN_PEERS, VXLAN_LOCAL)
    plain = render(list(reversed(networks)), list(reversed(publishes)))
    networks_only = render(networks[:2], [])
    empty = render([], [])
    return {
        "rich-overlay.nft": overlay,
        "rich.nft": plain,
        "networks-only.nft": networks_only,
        "empty.nft": empty,
        "peers-without-networks.nft": render([], [], ["198.51.100.9"], VXLAN_LOCAL),
        "user-table.nft": render_user_table(),
        "transaction-replace.nft": transaction(overlay),
        "transaction-replace-create-user.nft": transaction(plain, user_table="create"),
        "transaction-create-user-only.nft": transaction(None, replace=False, user_table="create"),
        "transaction-remove.nft": transaction(None),
        "transaction-remove-with-user.nft": transaction(None, user_table="delete"),
        "record-overlay.json": record_text(networks, publishes, overlay, VXLAN_PEERS, VXLAN_LOCAL),
        "record-empty.json": record_text([], [], empty, None, None),
    }


@pytest.mark.parametrize("name", sorted(cases()))
def test_output_is_unchanged(name: str) -> None:
    text = cases()[name]
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} is missing: record it with WHARF_GOLDEN_UPDATE=1"
    assert text == path.read_text(), f"{name} differs from {path}"


def test_record_reads_back_as_written(tmp_path: Path) -> None:
    """The recorded networks and publishes are what the next run starts from: reading the golden record
    gives the same state, so the record written by this version stays readable by the next."""
    networks, publishes = rich()
    (tmp_path / RECORD_NAME).write_text((GOLDEN / "record-overlay.json").read_text())
    record = read_record(str(tmp_path))
    assert record is not None
    assert record.networks == networks
    assert record.publishes == publishes
    assert record.vxlan_peers == VXLAN_PEERS and record.vxlan_local == VXLAN_LOCAL
    assert (
        render(record.networks, record.publishes, record.vxlan_peers, record.vxlan_local)
        == (GOLDEN / "rich-overlay.nft").read_text()
    )
