# This file is private to the wharf.network collection: its API may change at any time.
"""The text of the collection's nftables tables, and the one ``nft -f`` transaction that swaps them in.

Rendered whole from the desired state on every run, never edited rule by rule: the same networks and
publishes give the same text, byte for byte (tests/golden/firewall/ holds it), so the digest of the text
says whether anything changed.

Table layout (``render``), one ``table inet wharf`` (inet: one table for both families; nat in inet
tables works since Linux 5.2):

- set ``bridges``: every wharf bridge; maps ``from-network`` / ``to-network``: bridge → per-network chain.
- maps ``publish-any`` (protocol . port → address . port) and ``publish-addr`` (host address . protocol .
  port → address . port): one element per published port, so a thousand publishes are a thousand map
  elements under four constant rules, not a thousand rules (Docker's per-port rules are linear).
- chain ``guard`` (prerouting, priority raw): packets for 127.0.0.0/8 arriving on a wharf bridge (where
  route_localnet is on) and packets for a loopback publish arriving on any interface but ``lo`` are dropped
  before NAT can make them routable (moby#45610, CVE-2020-8558; Docker 28's raw-table guard); so is a packet
  arriving on a wharf bridge with a source outside that network's subnet (a forged source address: the
  resolver and the firewall decide by source address, whatever rp_filter says).
- chains ``prerouting`` (dstnat) and ``output`` (-100): DNAT through the maps, for local destinations only
  (``fib daddr type local``); prerouting never DNATs 127.0.0.0/8 (only the host's own traffic may use a
  loopback publish), output does, so ``127.0.0.1:PORT`` works from the host.
- chain ``postrouting`` (srcnat): host→container over a loopback publish (source 127.0.0.1 cannot leave
  on a bridge), hairpin (a container reaching a publish of its own network through the host's address:
  without SNAT the reply would skip the host), and egress masquerade of non-internal networks leaving
  through an interface that is not a wharf bridge.
- chain ``forward`` (filter): ``iifname vmap @from-network``, ``oifname vmap @to-network``. ``from-BRIDGE``
  decides everything a network sends: within the network accept (icc false: only published ports),
  published ports of other networks accept, other wharf bridges drop, the outside accept (internal: drop).
  ``to-BRIDGE`` decides what comes in from elsewhere: replies and DNATed (published) connections accept,
  anything else drop: no direct routing to container addresses (moby#48724). Internal networks: drop.

The user hook is a second table, ``inet wharf-user``, with a forward base chain at priority -10 (before
ours). The collection creates it when it is missing and never replaces, flushes or compares it, so user
rules survive every swap of ``inet wharf``. Netfilter semantics: a ``drop`` there is final; an ``accept``
only ends that chain and our table still decides, so a user rule can narrow what wharf allows (who may
reach a published port: match ``ct original proto-dst``) but cannot open isolation by accident. Why not a
chain inside our table jumped to first, as DOCKER-USER is: the table is replaced whole on every change, so
its rules would have to be read back and re-sent each time, and a rule nft cannot re-parse from its own
listing would break our transaction.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from ansible_collections.wharf.network.plugins.module_utils._firewall.model import (
    PROTOCOL_NUMBERS,
    FirewallNetwork,
    Publish,
    network_of,
)
from ansible_collections.wharf.network.plugins.module_utils._firewall.nft import FAMILY, TABLE, USER_TABLE
from ansible_collections.wharf.network.plugins.module_utils._kernel.limits import VXLAN_PORT

USER_HOOK_PRIORITY = -10  # the user table's forward chain runs before ours (priority filter, 0)


def chain_names(network: FirewallNetwork) -> tuple[str, str]:
    return f"from-{network.bridge}", f"to-{network.bridge}"


def _elements(lines: list[str]) -> list[str]:
    if not lines:
        return []
    body = ",\n".join(f"\t\t\t{line}" for line in lines)
    return ["\t\telements = {", body, "\t\t}"]


def _map(name: str, key_type: str, value_type: str | None, elements: list[str]) -> list[str]:
    kind = "map" if value_type else "set"
    type_line = f"\t\ttype {key_type} : {value_type}" if value_type else f"\t\ttype {key_type}"
    return [f"\t{kind} {name} {{", type_line, *_elements(elements), "\t}"]


def _chain(name: str, hook: str | None, rules: list[str]) -> list[str]:
    head = [f"\t\t{hook}"] if hook else []
    return [f"\tchain {name} {{", *head, *(f"\t\t{rule}" for rule in rules), "\t}"]


def _publish_elements(publishes: list[Publish]) -> tuple[list[str], list[str], list[str]]:
    any_rows: list[tuple[int, int, str]] = []
    addr_rows: list[tuple[int, int, int, str]] = []
    loop_rows: list[tuple[int, int, int, str]] = []
    for publish in publishes:
        number = PROTOCOL_NUMBERS[publish.protocol]
        for port, target in publish.ports():
            value = f"{publish.address} . {target}"
            if publish.host_ip is None:
                any_rows.append((number, port, f"{publish.protocol} . {port} : {value}"))
                continue
            key = f"{publish.host_ip} . {publish.protocol} . {port}"
            addr_rows.append((int(publish.host_ip), number, port, f"{key} : {value}"))
            if publish.loopback:
                loop_rows.append((int(publish.host_ip), number, port, key))
    return (
        [row[-1] for row in sorted(any_rows)],
        [row[-1] for row in sorted(addr_rows)],
        [row[-1] for row in sorted(loop_rows)],
    )


def _network_chains(network: FirewallNetwork) -> list[str]:
    source, destination = chain_names(network)
    own = f'oifname "{network.bridge}"'
    # icc false: containers of the network reach each other only through a published port. Bridged traffic
    # reaches this hook only with br_netfilter (bridge-nf-call-iptables), as with Docker.
    within = [f"{own} accept"] if network.icc else [f"{own} ct status dnat accept", f"{own} drop"]
    if network.internal:
        sends = [*within, "drop"]
        receives = ["drop"]
    else:
        sends = [*within, "ct status dnat accept", "oifname @bridges drop", "accept"]
        receives = ["ct state established,related accept", "ct status dnat accept", "drop"]
    return [*_chain(source, None, sends), "", *_chain(destination, None, receives)]


def render(
    networks: list[FirewallNetwork],
    publishes: list[Publish],
    vxlan_peers: list[str] | None = None,
    vxlan_local: str | None = None,
) -> str:
    """The whole ``table inet wharf`` for ``nft -f``. Canonical: the same networks and publishes, in any
    order, give the same text (networks by bridge name, elements sorted), so its digest says whether the
    desired state changed.

    ``vxlan_peers`` with ``vxlan_local`` (a host on an overlay underlay, and its underlay address): set
    ``vxlan-peers`` and chain ``input`` (filter) that drops VXLAN (UDP 4789) addressed to the underlay address
    from any address that is not a peer, so nobody else can inject frames into an overlay network (the device
    itself would decapsulate any packet with a known VNI). Only that address: VXLAN to the host's other
    addresses (devices wharf does not own, bound elsewhere) is not wharf's to filter, and IPv6 is left alone
    (wharf's devices are IPv4 only, they never receive it). None: neither.
    """
    networks = sorted(networks, key=lambda n: n.bridge)
    any_elements, addr_elements, loopback_elements = _publish_elements(publishes)
    bridges = [f'"{n.bridge}"' for n in networks]
    from_elements = [f'"{n.bridge}" : jump {chain_names(n)[0]}' for n in networks]
    to_elements = [f'"{n.bridge}" : jump {chain_names(n)[1]}' for n in networks]

    guard = []
    if networks:
        guard.append("iifname @bridges ip daddr 127.0.0.0/8 drop")
    # a container sends only from its network's subnet: a forged source (a raw socket, IP_TRANSPARENT) could
    # otherwise pose as a container of another network, e.g. to have the resolver forward for an internal one
    guard += [f'iifname "{n.bridge}" ip saddr != {n.subnet} drop' for n in networks]
    guard.append('iifname != "lo" ip daddr . meta l4proto . th dport @loopback-publishes drop')
    lookup_any = "dnat ip to meta l4proto . th dport map @publish-any"
    lookup_addr = "dnat ip to ip daddr . meta l4proto . th dport map @publish-addr"
    resolvers = sorted(f'"{n.bridge}" . {n.gateway}' for n in networks if n.gateway is not None)
    # a container's DNS query to its gateway is the embedded resolver's, even when a container publishes port 53
    # on every address (a DNS server such as pi-hole): no DNAT for it
    prerouting = ["meta l4proto { tcp, udp } th dport 53 iifname . ip daddr @resolvers return"] if resolvers else []
    prerouting += [
        f"fib daddr type local ip daddr != 127.0.0.0/8 {lookup_any}",
        f"fib daddr type local ip daddr != 127.0.0.0/8 {lookup_addr}",
    ]
    output = [f"fib daddr type local {lookup_any}", f"fib daddr type local {lookup_addr}"]
    postrouting = []
    if networks:
        postrouting.append("oifname @bridges ip saddr 127.0.0.0/8 masquerade")
    for network in networks:
        if not network.internal:
            postrouting.append(f'oifname "{network.bridge}" ip saddr {network.subnet} ct status dnat masquerade')
    for network in networks:
        if network.masquerade and not network.internal:
            postrouting.append(f"ip saddr {network.subnet} oifname != @bridges masquerade")
    forward = ["iifname vmap @from-network", "oifname vmap @to-network"] if networks else []
    overlay: list[str] = []
    if vxlan_peers is not None and vxlan_local is not None:
        peers = [str(a) for a in sorted({IPv4Address(p) for p in vxlan_peers})]
        vxlan_input = [f"ip daddr {IPv4Address(vxlan_local)} udp dport {VXLAN_PORT} ip saddr != @vxlan-peers drop"]
        overlay = [
            "",
            *_map("vxlan-peers", "ipv4_addr", None, peers),
            "",
            *_chain("input", "type filter hook input priority filter; policy accept;", vxlan_input),
        ]

    lines = [
        f"table {FAMILY} {TABLE} {{",
        f'\tcomment "wharf.network: replaced whole on every change; put your rules in table {FAMILY} {USER_TABLE}"',
        *_map("bridges", "ifname", None, bridges),
        "",
        *_map("from-network", "ifname", "verdict", from_elements),
        "",
        *_map("to-network", "ifname", "verdict", to_elements),
        "",
        *_map("publish-any", "inet_proto . inet_service", "ipv4_addr . inet_service", any_elements),
        "",
        *_map("publish-addr", "ipv4_addr . inet_proto . inet_service", "ipv4_addr . inet_service", addr_elements),
        "",
        *_map("loopback-publishes", "ipv4_addr . inet_proto . inet_service", None, loopback_elements),
        "",
        *_map("resolvers", "ifname . ipv4_addr", None, resolvers),
        "",
        *_chain("guard", "type filter hook prerouting priority raw; policy accept;", guard),
        "",
        *_chain("prerouting", "type nat hook prerouting priority dstnat; policy accept;", prerouting),
        "",
        *_chain("output", "type nat hook output priority -100; policy accept;", output),
        "",
        *_chain("postrouting", "type nat hook postrouting priority srcnat; policy accept;", postrouting),
        "",
        *_chain("forward", "type filter hook forward priority filter; policy accept;", forward),
        *overlay,
    ]
    for network in networks:
        lines.extend(["", *_network_chains(network)])
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_user_table() -> str:
    """The user hook table, created once when missing and never touched again."""
    return "\n".join(
        [
            f"table {FAMILY} {USER_TABLE} {{",
            '\tcomment "your rules, evaluated before table inet wharf; wharf.network creates this table only"',
            "\tchain forward {",
            f"\t\ttype filter hook forward priority filter {USER_HOOK_PRIORITY}; policy accept;",
            "\t}",
            "}",
            "",
        ]
    )


def transaction(table: str | None, replace: bool = True, user_table: str | None = None) -> str:
    """One ``nft -f`` input, committed by the kernel whole or not at all.

    ``replace``: swap our table for ``table`` (None: remove it). ``table inet wharf`` first makes the
    ``delete`` valid when the table is missing (nft 1.0.6 has no ``destroy``), so a flushed ruleset is
    restored by the same text. ``user_table``: ``create`` the user table, or ``delete`` it.
    """
    parts = []
    if replace:
        parts.extend([f"table {FAMILY} {TABLE}", f"delete table {FAMILY} {TABLE}"])
        if table is not None:
            parts.append(table.rstrip("\n"))
    if user_table == "create":
        parts.append(render_user_table().rstrip("\n"))
    elif user_table == "delete":
        parts.append(f"delete table {FAMILY} {USER_TABLE}")
    return "\n".join(parts) + "\n"


def needs_route_localnet(networks: list[FirewallNetwork], publishes: list[Publish]) -> set[str]:
    """Bridges that carry host→container traffic sourced from 127.0.0.1 (a loopback publish, or a publish
    on every address reached as 127.0.0.1:PORT from the host): the kernel routes a loopback source out of
    a non-loopback interface only with route_localnet on it. Beside the table because the two go together:
    the postrouting rule that masquerades 127.0.0.0/8 onto a bridge works only where this sysctl is on."""
    bridges = set()
    for publish in publishes:
        if publish.host_ip is None or publish.loopback:
            network = network_of(networks, publish.address)
            if network is not None:
                bridges.add(network.bridge)
    return bridges
