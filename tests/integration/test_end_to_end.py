"""Two containers on a bridge, built only by the modules, exchange real packets."""

from __future__ import annotations

import sys

import pytest

pytestmark = pytest.mark.integration

LISTENER = (
    "import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
    "s.bind(('0.0.0.0', 5080)); s.listen(1); c, a = s.accept(); c.sendall(('hello ' + a[0]).encode()); c.close()"
)
CLIENT = "import socket; c = socket.create_connection(('{ip}', 5080), timeout=5); print(c.recv(100).decode())"


def test_two_containers_on_a_bridge_talk(sandbox):
    assert not sandbox.module("netns", {"namespaces": [{"name": "web1"}, {"name": "web2"}, {"name": "other"}]}).failed
    assert not sandbox.module("bridge", {"bridges": [{"name": "br-demo"}]}).failed
    veths = [
        {"name": "ve-web1", "peer": "eth0", "peer_namespace": "web1", "master": "br-demo"},
        {"name": "ve-web2", "peer": "eth0", "peer_namespace": "web2", "master": "br-demo"},
    ]
    assert not sandbox.module("veth", {"veths": veths}).failed
    interfaces = [
        {"name": "br-demo", "addresses": ["192.0.2.1/24"]},
        {"name": "eth0", "namespace": "web1", "addresses": ["192.0.2.10/24"], "routes": [{"gateway": "192.0.2.1"}]},
        {"name": "eth0", "namespace": "web2", "addresses": ["192.0.2.11/24"], "routes": [{"gateway": "192.0.2.1"}]},
    ]
    assert not sandbox.module("ip_addr", {"interfaces": interfaces}).failed

    ping = sandbox.sh("ip netns exec web1 ping -c2 -W2 192.0.2.11", check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert " 0% packet loss" in ping.stdout

    sandbox.sh(f'ip netns exec web2 {sys.executable} -c "{LISTENER}" >/dev/null 2>&1 &')
    reply = ""
    for _attempt in range(50):
        proc = sandbox.sh(f'ip netns exec web1 {sys.executable} -c "{CLIENT.format(ip="192.0.2.11")}"', check=False)
        if proc.returncode == 0:
            reply = proc.stdout.strip()
            break
        sandbox.sh("sleep 0.1")
    assert reply == "hello 192.0.2.10"  # the server saw the client's real address

    # a namespace that is not on the bridge cannot reach them: blocked where it must be
    unreachable = sandbox.sh("ip netns exec other ping -c1 -W1 192.0.2.11", check=False)
    assert unreachable.returncode != 0
