"""The firewall's pure parts: input, conflicts, free ports, the rendered table, and no-op/drift decisions
(with a stand-in for the nft program: nothing here talks to the kernel)."""

from __future__ import annotations

import ipaddress
import json

import pytest

from ansible_collections.wharf.network.plugins.module_utils._engine.errors import ValidationError
from ansible_collections.wharf.network.plugins.module_utils._firewall import resource
from ansible_collections.wharf.network.plugins.module_utils._firewall.listeners import (
    Listener,
    parse_proc_net,
    parse_sctp_eps,
)
from ansible_collections.wharf.network.plugins.module_utils._firewall.merge import merge_networks, merge_publishes
from ansible_collections.wharf.network.plugins.module_utils._firewall.model import (
    Publish,
    _simple_port,
    parse_networks,
    parse_publishes,
    target_errors,
)
from ansible_collections.wharf.network.plugins.module_utils._firewall.nft import (
    canonical_listing,
    has_rules,
    listing_tables,
)
from ansible_collections.wharf.network.plugins.module_utils._firewall.ports import (
    PortClaims,
    clash,
    clash_errors,
    free_port,
    listener_errors,
    resolve_publishes,
)
from ansible_collections.wharf.network.plugins.module_utils._firewall.render import (
    needs_route_localnet,
    render,
    transaction,
)
from ansible_collections.wharf.network.plugins.module_utils._model.fields import Fields
from ansible_collections.wharf.network.plugins.module_utils._model.ports import read_port

FRONT = {"bridge": "br-front", "subnet": "172.28.0.0/24"}
BACK = {"bridge": "br-back", "subnet": "172.29.0.0/24", "internal": True}


def publishes(*items: dict) -> list[Publish]:
    return parse_publishes(list(items))


def errors_of(function, *args) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        function(*args)
    return caught.value.errors


# --- input -------------------------------------------------------------------------------------------


def test_publish_forms_mean_the_same():
    short, long_form = publishes(
        {"address": "172.28.0.10", "port": "127.0.0.1:8080:80/udp"},
        {"address": "172.28.0.10", "host_ip": "127.0.0.1", "published": 8080, "target": "80", "protocol": "udp"},
    )
    assert short == long_form
    assert short.describe() == "127.0.0.1:8080/udp -> 172.28.0.10:80"
    assert short.loopback
    ranged, free, every = publishes(
        {"address": "172.28.0.10", "port": "9000-9002:9100-9102"},
        {"address": "172.28.0.10", "target": 80},
        {"address": "172.28.0.10", "port": "[::]:81:80"},
    )
    assert list(ranged.ports()) == [(9000, 9100), (9001, 9101), (9002, 9102)]
    assert free.published is None
    assert every.host_ip is None


def test_publish_input_errors_name_the_item():
    errors = errors_of(
        parse_publishes,
        [
            {"address": "172.28.0.10", "port": "80", "target": 80},
            {"address": "172.28.0.10", "port": "[2001:db8::1]:80:80"},
            {"address": "web", "port": "80"},
            {"address": "172.28.0.10", "port": "8080-8081:80"},
            {"address": "172.28.0.10", "port": "80/icmp"},
        ],
    )
    assert errors[0] == "publishes[0]: give either port or target, not both"
    assert errors[1] == "publishes[1] '[2001:db8::1]:80:80': host address 2001:db8::1 is IPv6; publish on IPv4"
    assert errors[2] == "publishes[2].address 'web' is not an IP address"
    assert "publishes[3]" in errors[3] and "same length" in errors[3]
    assert "publishes[4]" in errors[4] and "protocol" in errors[4]


def test_network_input():
    front, back = parse_networks([FRONT, {**BACK, "masquerade": True}])
    assert front.masquerade and front.icc and not front.internal
    assert back.internal and not back.masquerade, "an internal network never masquerades"
    errors = errors_of(
        parse_networks,
        [FRONT, {"bridge": "br-front", "subnet": "172.28.0.128/25"}, {"bridge": "br-x", "subnet": "10.0.0.1/24"}],
    )
    assert any("networks[2].subnet '10.0.0.1/24' is not a network address" in e for e in errors), errors
    assert "networks[1].bridge br-front is also networks[0]" in errors
    assert any("172.28.0.128/25" in e and "overlaps" in e for e in errors), errors


def test_publish_to_an_internal_network_is_an_error():
    networks = parse_networks([FRONT, BACK])
    errors = target_errors(networks, publishes({"address": "172.29.0.5", "port": "80"}))
    assert errors == [
        "publishes[0] 0.0.0.0:(free port)/tcp -> 172.29.0.5:80: 172.29.0.5 is on internal network br-back "
        "(172.29.0.0/24), which nothing outside it can reach"
    ]


# --- conflicts and free ports ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "clashes"),
    [
        ("8080:80", "8080:81", True),
        ("127.0.0.1:8080:80", "8080:80", True),  # 0.0.0.0 is every address
        ("127.0.0.1:8080:80", "127.0.0.2:8080:80", False),
        ("8080:80/tcp", "8080:80/udp", False),
        ("9000-9005:9000-9005", "9005:80", True),
        ("9000-9005:9000-9005", "9006:80", False),
    ],
)
def test_clash(a, b, clashes):
    first, second = publishes({"address": "172.28.0.10", "port": a}, {"address": "172.28.0.11", "port": b})
    assert clash(first, second) is clashes
    assert bool(clash_errors([first, second])) is clashes


def test_clash_message_names_both():
    both = publishes(
        {"address": "172.28.0.10", "port": "127.0.0.1:8080:80"}, {"address": "172.28.0.11", "port": "8080:80"}
    )
    assert clash_errors(both) == [
        "publishes[1] 0.0.0.0:8080/tcp -> 172.28.0.11:80 clashes with publishes[0] 127.0.0.1:8080/tcp -> "
        "172.28.0.10:80: the same host port and protocol (0.0.0.0 is every address)"
    ]


PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:08AE 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1002 1 0
   2: 0100007F:1F91 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 1003 1 0
"""
ZERO6 = "0" * 32
PROC_NET_TCP6 = f"""\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when
   0: {ZERO6}:0050 {ZERO6}:0000 0A 00000000:00000000 00:00000000 0 0 0 1004 1
   1: 0000000000000000FFFF00000A00A8C0:0051 {ZERO6}:0000 0A 00000000:00000000 00:00000000 0 0 0 1005 1
"""


def test_listeners_from_proc():
    found = parse_proc_net(PROC_NET_TCP, "tcp", 4) + parse_proc_net(PROC_NET_TCP6, "tcp", 6)
    assert [(x.address, x.port, x.inode) for x in found] == [
        (ipaddress.ip_address("0.0.0.0"), 2222, 1001),
        (ipaddress.ip_address("127.0.0.1"), 8080, 1002),
        (ipaddress.ip_address("::"), 80, 1004),
        (ipaddress.ip_address("::ffff:192.168.0.10"), 81, 1005),
    ]
    wildcard, loopback, dual, mapped = found

    def on(port: str) -> Publish:
        return publishes({"address": "172.28.0.10", "port": port})[0]

    assert wildcard.covers(on("10.0.0.1:2222:22"))
    assert loopback.covers(on("8080:80")), "a listener on 127.0.0.1 holds the port for 0.0.0.0 too"
    assert not loopback.covers(on("10.0.0.1:8080:80"))
    assert not loopback.covers(on("8080:80/udp"))
    assert dual.covers(on("10.0.0.1:80:80"))
    assert mapped.covers(on("192.168.0.10:81:80")) and not mapped.covers(on("192.168.0.11:81:80"))
    errors = listener_errors([on("2222:22")], found, {1001: "pid 7 sshd"})
    assert errors == [
        "publishes[0] 0.0.0.0:2222/tcp -> 172.28.0.10:22: a host process already listens on 0.0.0.0:2222/tcp "
        "(pid 7 sshd)"
    ]


def test_sctp_endpoints():
    text = " ENDPT     SOCK   STY SST HBKT LPORT   UID INODE LADDRS\n  0 0 2 10 4  3868 0 5001 10.0.0.1 10.0.0.2\n"
    assert [(str(x.address), x.port) for x in parse_sctp_eps(text)] == [("10.0.0.1", 3868), ("10.0.0.2", 3868)]


def test_free_ports_are_derived_and_stay():
    request = publishes({"address": "172.28.0.10", "target": 80})
    first = resolve_publishes(request, [], [])[0]
    assert first.auto and first.published is not None
    assert 32768 <= first.published[0] <= 60999
    assert resolve_publishes(request, [], [])[0] == first, "the same request, the same port"
    # taken by an explicit publish or a listener: the next free one, deterministically
    explicit = publishes({"address": "172.28.0.11", "port": f"{first.published[0]}:80"})
    moved = resolve_publishes([*explicit, *request], [], [])[1]
    assert moved.published != first.published
    listener = Listener("tcp", ipaddress.ip_address("0.0.0.0"), first.published[0])
    assert resolve_publishes(request, [], [listener])[0].published == moved.published
    # the port it got before is kept while nothing else claims it, even if a listener came later
    assert resolve_publishes(request, [moved], [])[0].published == moved.published
    assert resolve_publishes(request, [first], [listener])[0].published == first.published
    # a range keeps its length
    ranged = resolve_publishes(publishes({"address": "172.28.0.10", "port": "5000-5009/udp"}), [], [])[0]
    assert ranged.published[1] - ranged.published[0] == 9
    none = PortClaims()
    assert free_port(request[0], none, [], (40000, 40000)) == (40000, 40000)
    assert free_port(publishes({"address": "172.28.0.10", "port": "1-2"})[0], none, [], (40000, 40000)) is None


def test_resolve_reports_every_conflict_at_once():
    listener = Listener("tcp", ipaddress.ip_address("0.0.0.0"), 2222)
    requested = publishes(
        {"address": "172.28.0.10", "port": "8080:80"},
        {"address": "172.28.0.11", "port": "8080:80"},
        {"address": "172.28.0.12", "port": "2222:22"},
    )
    errors = errors_of(resolve_publishes, requested, [], [listener])
    assert len(errors) == 2
    assert errors[0].startswith("publishes[1] 0.0.0.0:8080/tcp -> 172.28.0.11:80 clashes with publishes[0]")
    assert errors[1].startswith("publishes[2] 0.0.0.0:2222/tcp -> 172.28.0.12:22: a host process already listens")
    # already applied: the port has been ours since, a later listener does not block a restore
    assert resolve_publishes(requested[2:], requested[2:], [listener]) == requested[2:]


def test_merge_publishes():
    old = publishes({"address": "172.28.0.10", "port": "8080:80"}, {"address": "172.28.0.10", "target": 81})
    old = resolve_publishes(old, [], [])
    moved = publishes({"address": "172.28.0.11", "port": "8080:80"})
    merged = merge_publishes(old, moved, "present", False)
    assert [p.describe() for p in merged] == [old[1].describe(), "0.0.0.0:8080/tcp -> 172.28.0.11:80"]
    assert merged[0].label == "(published earlier)"
    free_again = publishes({"address": "172.28.0.10", "target": 81})
    assert merge_publishes(old, free_again, "absent", False) == [old[0]]
    assert merge_publishes(old, moved, "present", True) == moved
    networks = parse_networks([FRONT, BACK])
    assert merge_networks(networks, parse_networks([BACK]), "absent", False) == networks[:1]


# --- the rendered table ------------------------------------------------------------------------------


def render_items(network_items, publish_items) -> str:
    networks = parse_networks(network_items)
    return render(networks, resolve_publishes(parse_publishes(publish_items), [], []))


def chain(text: str, name: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(f"\tchain {name} {{")
    end = lines.index("\t}", start)
    return [line.strip() for line in lines[start + 1 : end]]


def test_render_is_canonical():
    items = [{"address": "172.28.0.10", "port": "8080:80"}, {"address": "172.28.0.11", "port": "53:53/udp"}]
    assert render_items([FRONT, BACK], items) == render_items([BACK, FRONT], items[::-1])
    assert render_items([FRONT], items) != render_items([FRONT], items[:1])


def test_render_networks():
    quiet = {"bridge": "br-q", "subnet": "10.9.0.0/24", "icc": False, "masquerade": False}
    text = render_items([FRONT, BACK, quiet], [])
    assert chain(text, "forward")[1:] == ["iifname vmap @from-network", "oifname vmap @to-network"]
    assert chain(text, "from-br-front") == [
        'oifname "br-front" accept',
        "ct status dnat accept",
        "oifname @bridges drop",
        "accept",
    ]
    assert chain(text, "to-br-front") == ["ct state established,related accept", "ct status dnat accept", "drop"]
    assert chain(text, "from-br-back") == ['oifname "br-back" accept', "drop"]
    assert chain(text, "to-br-back") == ["drop"]
    assert chain(text, "from-br-q")[:2] == ['oifname "br-q" ct status dnat accept', 'oifname "br-q" drop']
    postrouting = chain(text, "postrouting")
    assert "ip saddr 172.28.0.0/24 oifname != @bridges masquerade" in postrouting
    assert not any("172.29.0.0/24" in rule for rule in postrouting), "internal: no NAT at all"
    assert not any("10.9.0.0/24 oifname" in rule for rule in postrouting), "masquerade false"
    assert 'oifname "br-q" ip saddr 10.9.0.0/24 ct status dnat masquerade' in postrouting, "hairpin stays"
    assert chain(text, "guard")[1:5] == [
        "iifname @bridges ip daddr 127.0.0.0/8 drop",
        'iifname "br-back" ip saddr != 172.29.0.0/24 drop',
        'iifname "br-front" ip saddr != 172.28.0.0/24 drop',
        'iifname "br-q" ip saddr != 10.9.0.0/24 drop',
    ], "a forged source address never enters from a network"


def test_render_publishes():
    text = render_items(
        [FRONT],
        [
            {"address": "172.28.0.10", "port": "8080:80"},
            {"address": "172.28.0.10", "port": "127.0.0.1:5432:5432"},
            {"address": "172.28.0.11", "port": "10.0.0.1:9000-9001:7000-7001/udp"},
            {"address": "172.28.0.12", "port": "3868:3868/sctp"},
        ],
    )
    assert "\t\t\ttcp . 8080 : 172.28.0.10 . 80," in text
    assert "\t\t\tsctp . 3868 : 172.28.0.12 . 3868" in text
    assert "\t\t\t10.0.0.1 . udp . 9001 : 172.28.0.11 . 7001," in text
    assert "\t\t\t127.0.0.1 . tcp . 5432 : 172.28.0.10 . 5432" in text
    loopback = text.split("set loopback-publishes {")[1].split("}")[0]
    assert "127.0.0.1 . tcp . 5432" in loopback and "10.0.0.1" not in loopback
    prerouting = chain(text, "prerouting")
    assert all("fib daddr type local ip daddr != 127.0.0.0/8" in rule for rule in prerouting[1:])
    assert chain(text, "output")[1:] == [
        "fib daddr type local dnat ip to meta l4proto . th dport map @publish-any",
        "fib daddr type local dnat ip to ip daddr . meta l4proto . th dport map @publish-addr",
    ]


def test_render_empty():
    text = render([], [])
    assert "elements" not in text
    assert chain(text, "forward") == ["type filter hook forward priority filter; policy accept;"]
    assert chain(text, "guard")[1:] == ['iifname != "lo" ip daddr . meta l4proto . th dport @loopback-publishes drop']


def test_transaction():
    table = render([], [])
    text = transaction(table, user_table="create")
    assert text.startswith("table inet wharf\ndelete table inet wharf\ntable inet wharf {\n")
    assert "table inet wharf-user {" in text and "priority filter -10" in text
    assert transaction(None) == "table inet wharf\ndelete table inet wharf\n"
    assert transaction(None, replace=False, user_table="delete") == "delete table inet wharf-user\n"
    assert "flush" not in text


def test_needs_route_localnet():
    networks = parse_networks([FRONT, {"bridge": "br-b", "subnet": "172.29.0.0/24"}])
    resolved = parse_publishes(
        [
            {"address": "172.28.0.10", "port": "127.0.0.1:80:80"},
            {"address": "172.29.0.10", "port": "10.0.0.1:80:80"},
            {"address": "192.0.2.1", "port": "81:80"},
        ]
    )
    assert needs_route_localnet(networks, resolved) == {"br-front"}


def test_canonical_listing_ignores_handles_and_element_order():
    def listing(handle: int, elements: list) -> str:
        return json.dumps(
            {
                "nftables": [
                    {"metainfo": {"version": "1.0.6"}},
                    {"table": {"family": "inet", "name": "wharf", "handle": handle}},
                    {"map": {"name": "publish-any", "handle": handle + 1, "elem": elements}},
                    {"rule": {"chain": "forward", "handle": handle + 2, "expr": [{"accept": None}]}},
                    {"rule": {"chain": "forward", "handle": handle + 3, "expr": [{"drop": None}]}},
                ]
            }
        )

    one = canonical_listing(listing(3, [["a", 1], ["b", 2]]))
    assert one == canonical_listing(listing(9, [["b", 2], ["a", 1]]))
    assert one != canonical_listing(listing(3, [["a", 1]]))
    swapped = json.loads(listing(3, [["a", 1], ["b", 2]]))
    swapped["nftables"][3:5] = swapped["nftables"][4:2:-1]
    assert canonical_listing(json.dumps(swapped)) != one, "rule order matters"
    assert has_rules(listing(1, [])) and not has_rules('{"nftables": [{"table": {}}]}')
    assert listing_tables("table inet wharf\ntable ip nat\n") == {("inet", "wharf"), ("ip", "nat")}


# --- no-op and drift, with a stand-in for nft --------------------------------------------------------


class FakeNft:
    """Plays the nft program: keeps the text it was sent and lists a table as a stable JSON."""

    def __init__(self):
        self.tables: dict[str, str] = {}
        self.transactions: list[str] = []
        self.generation = 0

    def __call__(self, argv: list[str], data: str | None) -> tuple[int, str, str]:
        args = argv[1:]
        if args == ["list", "tables"]:
            return 0, "".join(f"table inet {name}\n" for name in self.tables), ""
        if args[:2] == ["-f", "-"]:
            self.transactions.append(data or "")
            self.generation += 1
            if "delete table inet wharf\n" in (data or ""):
                self.tables.pop("wharf", None)
            if "table inet wharf {" in (data or ""):
                self.tables["wharf"] = data.split("table inet wharf {")[1].split("\n}\n")[0]
            if "table inet wharf-user {" in (data or ""):
                self.tables["wharf-user"] = ""
            if "delete table inet wharf-user" in (data or ""):
                self.tables.pop("wharf-user", None)
            return 0, "", ""
        name = args[-1]
        if name not in self.tables:
            return 1, "", "Error: No such file or directory"
        entries = [{"table": {"name": name, "handle": self.generation}}]
        if self.tables[name]:
            entries.append({"rule": {"text": self.tables[name], "handle": self.generation}})
        return 0, json.dumps({"nftables": entries}), ""


def fake_proc_sys(tmp_path, ip_forward="1"):
    """A /proc/sys stand-in: the resource reads and writes sysctls there, never the machine's."""
    root = tmp_path / "proc_sys"
    if not root.exists():
        (root / "net/ipv4").mkdir(parents=True)
        (root / "net/ipv4/ip_forward").write_text(f"{ip_forward}\n")
        (root / "net/ipv4/ip_local_port_range").write_text("32768\t60999\n")
    return str(root)


def run(nft: FakeNft, tmp_path, networks=None, publish_items=None, state="present", exclusive=True, check=False):
    firewall = resource.FirewallResource(
        nft, networks, publish_items, state, exclusive, record_dir=str(tmp_path), proc_sys=fake_proc_sys(tmp_path)
    )
    firewall.check_mode = check
    plan = firewall.plan()
    if not check:
        plan.apply()
    return plan, firewall


# TCP only, on bridges that do not exist: applying these plans touches no conntrack table and no sysctl
NETS = [{"bridge": "wtu-front", "subnet": "172.28.0.0/24"}]
PUBS = [{"address": "172.28.0.10", "port": "18080:80"}]


def test_unchanged_state_sends_nothing(tmp_path):
    nft = FakeNft()
    plan, firewall = run(nft, tmp_path, NETS, PUBS, check=True)
    tables = [line for line in plan.summary() if "nftables" in line]
    assert tables == ["create nftables table 'inet wharf-user'", "create nftables table 'inet wharf'"]
    assert nft.transactions == []
    plan, firewall = run(nft, tmp_path, NETS, PUBS)
    assert len(nft.transactions) == 1, "the user table and ours in one transaction"
    assert firewall.drift is None
    assert (tmp_path / "firewall.nft").read_text() == firewall.rendered
    plan, firewall = run(nft, tmp_path, NETS, PUBS)
    assert not plan.changed and len(nft.transactions) == 1
    plan, firewall = run(nft, tmp_path, None, None)
    assert not plan.changed, "lists not given: the recorded ones stay"
    assert [p.describe() for p in firewall.publishes] == ["0.0.0.0:18080/tcp -> 172.28.0.10:80"]


def test_drift_is_detected(tmp_path):
    nft = FakeNft()
    run(nft, tmp_path, NETS, PUBS)
    nft.tables["wharf"] += "\n\t\tiifname eth9 accept"
    plan, firewall = run(nft, tmp_path, NETS, PUBS)
    assert firewall.drift == "changed outside wharf.network"
    assert "restore nftables table 'inet wharf': changed outside wharf.network" in plan.summary()
    assert not run(nft, tmp_path, NETS, PUBS)[0].changed
    del nft.tables["wharf"]
    assert run(nft, tmp_path, NETS, PUBS)[1].drift.startswith("missing")
    nft.tables.clear()
    plan, firewall = run(nft, tmp_path, NETS, PUBS)
    assert "create nftables table 'inet wharf-user'" in plan.summary()
    (tmp_path / "firewall.json").unlink()
    with pytest.raises(Exception, match="networks it governs are unknown"):
        run(nft, tmp_path, None, PUBS)
    assert run(nft, tmp_path, NETS, PUBS)[1].drift.startswith("no record")


def test_diff_shows_the_rules(tmp_path):
    nft = FakeNft()
    run(nft, tmp_path, NETS, PUBS)
    plan = run(nft, tmp_path, NETS, [{"address": "172.28.0.11", "port": "18080:80"}], check=True)[0]
    diff = plan.diff()
    assert "target: 172.28.0.10:80" in diff["before"] and "target: 172.28.0.11:80" in diff["after"]
    assert "tcp . 18080 : 172.28.0.10 . 80" in diff["before"]
    assert "tcp . 18080 : 172.28.0.11 . 80" in diff["after"]


def test_removal(tmp_path):
    nft = FakeNft()
    run(nft, tmp_path, NETS, PUBS)
    plan = run(nft, tmp_path, state="absent")[0]
    assert plan.summary()[-2:] == ["delete nftables table 'inet wharf'", "delete nftables table 'inet wharf-user'"]
    assert nft.tables == {} and not (tmp_path / "firewall.json").exists()
    assert not run(nft, tmp_path, state="absent")[0].changed


def test_ip_forward_switched_on_with_networks(tmp_path):
    proc_sys = fake_proc_sys(tmp_path, ip_forward="0")
    nft = FakeNft()
    firewall = resource.FirewallResource(nft, NETS, PUBS, record_dir=str(tmp_path), proc_sys=proc_sys)
    firewall.check_mode = True
    plan = firewall.plan()
    assert "update sysctl 'net.ipv4.ip_forward': value '0' -> '1'" in plan.summary()
    assert (tmp_path / "proc_sys/net/ipv4/ip_forward").read_text().strip() == "0", "check mode writes nothing"
    firewall.check_mode = False
    firewall.plan().apply()
    assert (tmp_path / "proc_sys/net/ipv4/ip_forward").read_text().strip() == "1"
    plan, firewall = run(nft, tmp_path, NETS, PUBS)
    assert not plan.changed


def test_check_mode_predicts_route_localnet_of_a_bridge_made_earlier_in_the_run(tmp_path):
    proc_sys = fake_proc_sys(tmp_path)
    loopback = [{"address": "172.28.0.10", "port": "127.0.0.1:18080:80"}]
    firewall = resource.FirewallResource(FakeNft(), NETS, loopback, record_dir=str(tmp_path), proc_sys=proc_sys)
    firewall.check_mode = True
    assert "update sysctl 'net.ipv4.conf.wtu-front.route_localnet': value '0' -> '1'" in firewall.plan().summary()
    firewall.check_mode = False  # a real run: the bridge step before would have made it; here it is missing
    assert not any("route_localnet" in line for line in firewall.plan().summary())


@pytest.mark.parametrize(
    "spec",
    ["8080:80", "53:53/udp", "1:65535/sctp", {"published": 8443, "target": "443"}, {"published": "9", "target": 9}],
)
def test_fast_port_parse_agrees_with_the_general_parser(spec):
    fast = _simple_port(spec)
    fields = Fields()
    general = read_port(fields, "p", spec)
    assert fast is not None and not fields.errors
    assert (fast.host_ip, fast.published, fast.target, fast.protocol) == (
        general.host_ip, general.published, general.target, general.protocol,
    )  # fmt: skip


@pytest.mark.parametrize(
    "spec", ["0:80", "70000:80", "8080:80/UDP", "127.0.0.1:80:80", "80", "8080-8081:80-81", {"target": 80}]
)
def test_other_port_shapes_go_to_the_general_parser(spec):
    assert _simple_port(spec) is None


def test_dns_to_the_gateway_is_never_taken_by_a_publish():
    networks = [{**FRONT, "gateway": "172.28.0.1"}, BACK]
    text = render_items(networks, [{"address": "172.28.0.10", "port": "53:53/udp"}])
    assert chain(text, "prerouting")[1] == "meta l4proto { tcp, udp } th dport 53 iifname . ip daddr @resolvers return"
    assert '"br-front" . 172.28.0.1' in text
    assert "@resolvers" not in render_items([FRONT], []), "no gateway given: no exception"


def test_gateway_must_be_in_the_subnet():
    with pytest.raises(ValidationError) as caught:
        parse_networks([{**FRONT, "gateway": "10.0.0.1"}, {**BACK, "gateway": "nope"}])
    assert caught.value.errors == [
        "networks[0].gateway 10.0.0.1 is not in networks[0].subnet 172.28.0.0/24",
        "networks[1].gateway 'nope' is not an IPv4 address",
    ]
