"""Calico-style routing with BGP as a lab: each pod a /32 behind a cali veth, 169.254.1.1
answered by proxy ARP, a real BIRD 2 per node announcing its block (node-to-node mesh, and
the route-reflector variant), routes written `proto bird`, the node's own block a blackhole.
A node's BIRD stopped: its block is withdrawn from the others and pings fail; started again
(`inv restart`), the route and the pings come back.

Built from topologies/calico-bgp.yaml and calico-bgp-rr.yaml under other names.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labnet.daemons import bird, state
from labnet.kernel import netns
from labnet.lab import lookup, start
from labnet.probe import verify
from tests.lab.conftest import fresh_lab, sh, stop_agent, until

pytestmark = pytest.mark.lab
TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
LAB, RR_LAB = "bgp-lab", "bgp-rr-lab"
NODE1, NODE2, NODE3 = "10.46.181.145", "10.46.181.146", "10.46.181.147"
POD1, POD2, POD3 = "192.168.1.0", "192.168.1.1", "192.168.2.0"
# libcalico-go's VethNameForWorkload: "cali" + sha1("<namespace>.<pod>")[:11]
CALI_POD1 = "calice0906292e2"


def _renamed(tmp_path_factory, source: str, name: str) -> Path:
    text = (TOPOLOGIES / f"{source}.yaml").read_text()
    assert f"name: {source}\n" in text
    path = tmp_path_factory.mktemp(name) / f"{name}.yaml"
    path.write_text(text.replace(f"name: {source}\n", f"name: {name}\n"))
    return path


@pytest.fixture(scope="module")
def bgp_lab(root_required, tmp_path_factory):
    had_run_bird = os.path.isdir(bird.RUN_BIRD)
    with fresh_lab(_renamed(tmp_path_factory, "calico-bgp", LAB)) as result:
        yield result
    # the lab made /run/bird for birdc's bind mount: gone with it
    assert os.path.isdir(bird.RUN_BIRD) == had_run_bird


@pytest.fixture(scope="module")
def rr_lab(root_required, tmp_path_factory):
    with fresh_lab(_renamed(tmp_path_factory, "calico-bgp-rr", RR_LAB)) as result:
        yield result


def _ping(lab: str, src: str, dst: str, count: int = 3) -> str:
    return sh(lab, src, "ping", "-c", str(count), "-i", "0.2", "-W", "1", dst, check=False)


def test_a_pod_has_a_32_and_reaches_169_254_1_1_by_proxy_arp(bgp_lab):
    assert f"inet {POD1}/32 scope global eth0" in sh(LAB, "pod1", "ip", "-4", "addr", "show")
    routes = sh(LAB, "pod1", "ip", "route").splitlines()
    assert [r.strip() for r in routes] == [
        "default via 169.254.1.1 dev eth0",
        "169.254.1.1 dev eth0 scope link",
    ]
    assert "0% packet loss" in _ping(LAB, "pod1", POD2, 1)  # even its own node: routed
    neigh = sh(LAB, "pod1", "ip", "neigh", "show", "169.254.1.1")
    assert "lladdr ee:ee:ee:ee:ee:ee" in neigh, neigh
    link = sh(LAB, "node1", "ip", "link", "show", CALI_POD1)
    assert "link/ether ee:ee:ee:ee:ee:ee" in link, link
    path = f"/proc/sys/net/ipv4/conf/{CALI_POD1}/proxy_arp"
    assert sh(LAB, "node1", "cat", path).strip() == "1"
    assert "bridge" not in sh(LAB, "node1", "ip", "-d", "link", "show")  # no bridge at all


def test_the_node_routes_its_pods_by_32_and_the_other_blocks_by_bgp(bgp_lab):
    routes = [r.strip() for r in sh(LAB, "node1", "ip", "route").splitlines()]
    assert f"{POD1} dev {CALI_POD1} scope link" in routes
    assert "blackhole 192.168.1.0/26 proto bird" in routes
    assert f"192.168.2.0/26 via {NODE2} dev eth0 proto bird" in routes
    assert f"192.168.3.0/26 via {NODE3} dev eth0 proto bird" in routes
    # an address of the block that no pod holds stops at the blackhole, not at the gateway
    got = sh(LAB, "node1", "ip", "route", "get", "192.168.1.50", check=False)
    assert "blackhole" in got or "Invalid argument" in got, got


def test_bird_runs_the_mesh_and_announces_blocks_not_pods(bgp_lab):
    protocols = sh(LAB, "node1", "birdc", "show", "protocols")
    for peer in (NODE2, NODE3):
        line = next(
            ln for ln in protocols.splitlines() if ln.startswith(f"Mesh_{peer.replace('.', '_')}")
        )
        assert "BGP" in line and "Established" in line, protocols
    learned = sh(
        LAB, "node2", "birdc", "show", "route", "protocol", f"Mesh_{NODE1.replace('.', '_')}"
    )
    assert "192.168.1.0/26" in learned, learned
    assert "/32" not in learned  # the pods' routes stay on their node
    assert "BIRD 2." in sh(LAB, "node1", "birdc", "show", "status")


def test_verify_follows_each_hop_without_a_tunnel(bgp_lab):
    report = verify.run(LAB)
    assert report.passed, [r.problems for r in report.results if not r.passed]
    hops = {
        v.hop.place
        for r in report.results
        for a in r.attempts
        for v in a.hops
        if v.verdict == "seen"
    }
    assert f"{LAB}-node1/{CALI_POD1}" in hops and f"{LAB}-node2/eth0" in hops


def test_a_stopped_bird_withdraws_its_block_and_a_restart_brings_it_back(bgp_lab):
    has_route = lambda: "192.168.2.0/26" in sh(LAB, "node1", "ip", "route")  # noqa: E731
    assert has_route()
    stop_agent(LAB, "bird-node2")  # by its recorded PID: BIRD closes its sessions (Cease)
    assert until(lambda: not has_route(), 10), sh(LAB, "node1", "ip", "route")
    assert "Administrative shutdown" in sh(LAB, "node1", "birdc", "show", "protocols")
    assert "100% packet loss" in _ping(LAB, "pod1", POD3, 2)
    report = verify.run(LAB, [verify.adhoc_check("pod1", "pod3", "icmp", None, None)])
    why = report.results[0].explanation
    assert "bird-node2" in why and "is not running" in why, why
    # node2 keeps what its BIRD wrote (`persist`), the others no longer route to it
    assert "blackhole 192.168.2.0/26 proto bird" in sh(LAB, "node2", "ip", "route")
    rec = start.restart(LAB, "bird-node2")
    assert rec.pid in [p.pid for p in lookup.load_state(LAB).processes]
    assert until(has_route, 20), sh(LAB, "node1", "birdc", "show", "protocols")
    assert " 0% packet loss" in _ping(LAB, "pod1", POD3)


def test_the_reflector_peers_with_every_node_and_clients_only_with_it(rr_lab):
    protocols = sh(RR_LAB, "node2", "birdc", "show", "protocols")
    sessions = [ln.split()[0] for ln in protocols.splitlines() if " BGP " in ln]
    assert sessions == ["Node_10_46_181_145"], protocols
    config = (bird.directory(RR_LAB, "node1") / "bird.cfg").read_text()
    assert config.count("rr client;") == 2
    learned = sh(RR_LAB, "node2", "birdc", "show", "route", "all", "192.168.3.0/26")
    assert f"via {NODE3} on eth0" in learned, learned  # the next hop passes on unchanged
    assert f"BGP.originator_id: {NODE3}" in learned and "BGP.cluster_list:" in learned
    assert f"192.168.3.0/26 via {NODE3} dev eth0 proto bird" in sh(RR_LAB, "node2", "ip", "route")
    assert " 0% packet loss" in _ping(RR_LAB, "pod2", "192.168.3.0")


def test_the_lab_keeps_bird_in_the_nodes(bgp_lab):
    """Every BIRD runs inside its node, under the lab's mark, with its own socket."""
    st = lookup.load_state(LAB)
    birds = [p for p in st.processes if p.kind == "bird"]
    assert sorted(p.netns for p in birds) == [f"{LAB}-node{i}" for i in (1, 2, 3)]
    for p in birds:
        env = Path(f"/proc/{p.pid}/environ").read_bytes().split(b"\0")
        assert f"{state.LAB_MARK}={LAB}".encode() in env
        assert p.pid in netns.pids_inside(p.netns)
        assert (bird.directory(LAB, p.netns.removeprefix(f"{LAB}-")) / "bird.ctl").exists()
