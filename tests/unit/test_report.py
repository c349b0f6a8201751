"""The report and the expected reachability matrix: pure functions of the container summaries."""

from __future__ import annotations

from ansible_collections.wharf.network.plugins.module_utils._lab.report import expected_probes, render


def endpoint(network, address, interface="eth0"):
    return {"network": network, "address": address, "prefixlen": 24, "interface": interface}


CONTAINERS = [
    {"name": "api", "namespace": "api", "network_mode": "bridge",
     "endpoints": [endpoint("front", "192.0.2.2"), endpoint("back", "198.51.100.2", "eth1")]},
    {"name": "db", "namespace": "db", "network_mode": "bridge", "endpoints": [endpoint("back", "198.51.100.3")]},
    {"name": "web", "namespace": "web", "network_mode": "bridge", "endpoints": [endpoint("front", "192.0.2.4")]},
    {"name": "off", "namespace": "off", "network_mode": "none", "endpoints": []},
    {"name": "side", "namespace": "api", "network_mode": "container:api", "endpoints": []},
]  # fmt: skip


def test_expected_probes_follow_shared_networks():
    probes = {(p["source"], p["destination"]): p["expected"] for p in expected_probes(CONTAINERS)}
    assert probes[("web", "192.0.2.2")] is True  # web and api share front
    assert probes[("web", "198.51.100.2")] is False  # api's back address is not on a network web is on
    assert probes[("db", "198.51.100.2")] is True
    assert probes[("db", "192.0.2.4")] is False
    assert probes[("off", "192.0.2.4")] is False
    assert not [p for p in probes if p[0] == "api" and p[1].startswith("192.0.2.2")]  # never itself
    # a container sharing another's namespace does not probe twice
    assert len(expected_probes(CONTAINERS)) == 3 * 4 + 4 - 3 - 1


def test_no_inter_container_traffic_is_expected_blocked():
    quiet = [
        {"name": name, "namespace": name, "network_mode": "bridge", "endpoints": [{**endpoint("q", ip), "icc": False}]}
        for name, ip in (("a", "192.0.2.2"), ("b", "192.0.2.3"))
    ]
    assert [p["expected"] for p in expected_probes(quiet)] == [False, False]


def test_render_marks_mismatches():
    results = [
        {**p, "reachable": p["expected"], "ok": True} for p in expected_probes(CONTAINERS) if p["source"] != "off"
    ]
    results.append({"source": "off", "destination": "192.0.2.4", "expected": False, "reachable": True,
                    "ok": False, "label": "off -> web.front"})  # fmt: skip
    lines = render(CONTAINERS, results)
    assert lines[0] == "containers:"
    assert any("api" in line and "eth1 198.51.100.2/24 (back)" in line for line in lines)
    assert any("off" in line and "loopback only" in line for line in lines)
    assert any("side" in line and "container:api" in line for line in lines)
    matrix = lines[lines.index(next(line for line in lines if line.startswith("reachability"))) :]
    row = next(line for line in matrix if line.strip().startswith("off"))
    assert "✗/✓!" in row
    assert lines[-1] == f"{len(results)} probes, 1 NOT as expected (marked !)"


def test_render_all_good():
    results = [{**p, "reachable": p["expected"], "ok": True} for p in expected_probes(CONTAINERS)]
    assert render(CONTAINERS, results)[-1].endswith("all as expected")


def test_render_lists_published_ports_with_their_container():
    publishes = [
        {"host_ip": None, "published": "8080", "address": "192.0.2.4", "target": "80", "protocol": "tcp"},
        {"host_ip": "127.0.0.1", "published": "40213", "address": "192.0.2.4", "target": "53", "protocol": "udp",
         "auto": True},
    ]  # fmt: skip
    lines = render(CONTAINERS, [], publishes)
    assert lines[-3:] == [
        "published ports:",
        "  0.0.0.0:8080/tcp     -> web 192.0.2.4:80",
        "  127.0.0.1:40213/udp  -> web 192.0.2.4:53  (free port, stable)",
    ]
