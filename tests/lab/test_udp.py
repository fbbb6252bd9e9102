"""flannel's udp backend as a lab: flannel0 is a TUN device, the leases are flannel's, a ping
crosses the nodes as UDP 8285 around the bare ICMP packet, verify judges every hop, and the
agent is the data path: killed, the nodes no longer reach each other's pods until it is
started again.

Built from topologies/flannel-udp.yaml under another name (udp-lab).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from labnet.daemons import processes, state
from labnet.lab import lookup, start
from labnet.probe import capture, verify
from tests.lab.conftest import etcd, fresh_lab, sh

pytestmark = pytest.mark.lab
LAB = "udp-lab"
TOPOLOGY = Path(__file__).resolve().parents[2] / "topologies" / "flannel-udp.yaml"
MASTER, MINION = "10.46.181.145", "10.46.181.146"
POD1, POD3 = "172.16.99.8", "172.16.57.15"


@pytest.fixture(scope="module")
def udp_lab(root_required, tmp_path_factory):
    text = TOPOLOGY.read_text()
    assert "name: flannel-udp\n" in text
    path = tmp_path_factory.mktemp(LAB) / f"{LAB}.yaml"
    path.write_text(text.replace("name: flannel-udp\n", f"name: {LAB}\n"))
    with fresh_lab(path) as result:
        yield result


def _ping(src: str, dst: str, count: int = 3) -> str:
    return sh(LAB, src, "ping", "-c", str(count), "-i", "0.2", "-W", "1", dst, check=False)


def test_flannel0_is_a_tun_device_with_the_route_of_the_network(udp_lab):
    for node, subnet in (("master", "172.16.99"), ("minion", "172.16.57")):
        link = sh(LAB, node, "ip", "-d", "link", "show", "flannel0")
        assert "tun type tun pi off" in link and "mtu 1472" in link, link
        assert "POINTOPOINT" in link and "link/none" in link
        addr = sh(LAB, node, "ip", "-4", "addr", "show", "dev", "flannel0")
        assert f"inet {subnet}.0/16 scope global flannel0" in addr, addr
        routes = sh(LAB, node, "ip", "route")
        want = f"172.16.0.0/16 dev flannel0 proto kernel scope link src {subnet}.0"
        assert want in routes, routes
        # the kernel learns nothing of the other node: no neighbour, no FDB, no route to it
        assert sh(LAB, node, "ip", "neigh", "show", "dev", "flannel0").strip() == ""
        env = (state.node_dir(LAB, node) / "subnet.env").read_text()
        assert env == (
            "FLANNEL_NETWORK=172.16.0.0/16\n"
            f"FLANNEL_SUBNET={subnet}.1/24\n"
            "FLANNEL_MTU=1472\n"
            "FLANNEL_IPMASQ=false\n"
        )
        far = POD3 if node == "master" else POD1
        assert "dev flannel0" in sh(LAB, node, "ip", "route", "get", far)


def test_the_config_and_leases_are_flannels(udp_lab):
    with etcd(LAB) as store:
        leases = store.leases_v2("/coreos.com/network/subnets/")
        config = store.leases_v2("/coreos.com/network/")["/coreos.com/network/config"]["value"]
    # flannel's udp backend writes LeaseAttrs{PublicIP} alone: no BackendType, no BackendData
    assert {k.rsplit("/", 1)[1]: v["value"] for k, v in leases.items()} == {
        "172.16.99.0-24": f'{{"PublicIP":"{MASTER}"}}',
        "172.16.57.0-24": f'{{"PublicIP":"{MINION}"}}',
    }
    assert '"Backend":{"Type":"udp","Port":8285}' in config


def test_a_ping_crosses_as_udp_8285_around_the_inner_icmp(udp_lab, tmp_path):
    caps = capture.start([(f"{LAB}-master", "eth0"), (f"{LAB}-master", "flannel0")], tmp_path)
    try:
        out = _ping("pod1", POD3)
    finally:
        capture.stop(caps)
    assert " 0% packet loss" in out, out
    # each agent decrements the TTL like a router: 64 - 2 forwards - 2 agents
    assert "ttl=60" in out, out
    on_eth0 = capture.read(caps[0].pcap)
    sent = [s for s in on_eth0 if s.outer == (MASTER, MINION, 8285, None)]
    back = [s for s in on_eth0 if s.outer == (MINION, MASTER, 8285, None)]
    assert sent and back, [s.describe() for s in on_eth0]
    assert (sent[0].proto, sent[0].icmp_type, sent[0].dst) == ("icmp", 8, POD3)
    assert (back[0].proto, back[0].icmp_type) == ("icmp", 0)
    # on flannel0 the same packets are bare IP: the kernel hands them to the agent there
    on_tun = capture.read(caps[1].pcap)
    assert any(s.outer is None and s.dst == POD3 and s.icmp_type == 8 for s in on_tun)


def test_verify_judges_every_hop(udp_lab):
    report = verify.run(LAB)
    for r in report.results:
        assert r.passed, (r.check.name, r.problems, r.explanation)
        hops = [v for a in r.attempts for v in a.hops]
        assert hops and all(v.verdict == "seen" for v in hops), [
            (v.hop.place, v.verdict, v.seen) for v in hops
        ]
    across = report.results[0].attempts[0].hops
    assert [v.hop.place for v in across if v.hop.ifname == "flannel0"] == [
        f"{LAB}-master/flannel0",
        f"{LAB}-minion/flannel0",
        f"{LAB}-minion/flannel0",
        f"{LAB}-master/flannel0",
    ]


def test_the_agent_is_the_data_path(udp_lab):
    """Killed, flannel0 goes with it (a TUN device lives while its descriptor is open) and
    pod1 no longer reaches pod3; started again, the tunnel is back."""
    rec = next(p for p in lookup.load_state(LAB).processes if p.name == "flanneld-master")
    assert processes.alive(rec)
    os.kill(rec.pid, signal.SIGKILL)
    # the device goes when the last of the agent's threads has closed the descriptor: the
    # main thread may be a zombie a moment before, or still exiting a moment after
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (
        processes.alive(rec) or "flannel0" in sh(LAB, "master", "ip", "link")
    ):
        time.sleep(0.02)
    assert not processes.alive(rec)
    assert "flannel0" not in sh(LAB, "master", "ip", "link")
    lost = _ping("pod1", POD3, 2)
    assert "100% packet loss" in lost, lost
    assert "172.16.99.0" not in sh(LAB, "master", "ip", "route", "get", POD3, check=False)

    start.restart(LAB, "flanneld-master")
    deadline = time.monotonic() + 10
    out = ""
    while time.monotonic() < deadline:
        out = _ping("pod1", POD3, 1)
        if " 0% packet loss" in out:
            break
        time.sleep(0.1)
    assert " 0% packet loss" in out, out
    assert "tun type tun" in sh(LAB, "master", "ip", "-d", "link", "show", "flannel0")
    log = (state.node_dir(LAB, "master") / "flanneld.log").read_text()
    assert log.count("proxy-running") == 2 and "udp-route-added" in log
