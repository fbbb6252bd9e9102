"""Path prediction is pure: hops from the topology and the lab's recorded subnets."""

from __future__ import annotations

from labnet import model
from labnet.plan import path
from tests.conftest import REFERENCE

SUBNETS = {"master": "172.16.99.0/24", "minion": "172.16.57.0/24"}


def reference() -> path.NetModel:
    topo = model.load(REFERENCE)
    pods = {p.name: str(p.address) for p in topo.pods}
    return path.build(topo, SUBNETS, pods)


def places(p: path.Path) -> list[str]:
    return [f"{h.netns.removeprefix('flannel-vxlan-')}/{h.ifname}/{h.direction}" for h in p.hops]


def test_pod_to_pod_across_the_tunnel_and_back():
    fwd, back = path.predict(
        reference(), "flannel-vxlan-pod1", "172.16.99.8", "172.16.57.15", "icmp", None
    )
    assert places(fwd) == [
        "pod1/eth0/out",
        "master/docker0/in",
        "master/flannel.1/out",
        "master/eth0/out",
        "underlay/ul-minion/out",
        "minion/eth0/in",
        "minion/flannel.1/in",
        "minion/docker0/out",
        "pod3/eth0/in",
    ]
    enc = fwd.hops[3]
    assert enc.outer == path.Outer("10.46.181.145", "10.46.181.146", 8472, 1)
    # docker's MASQUERADE matches traffic leaving through flannel.1: the gotcha
    assert (enc.src, enc.dst) == ("172.16.99.0", "172.16.57.15")
    assert places(back)[-1] == "pod1/eth0/in"
    assert (back.hops[-1].src, back.hops[-1].dst) == ("172.16.57.15", "172.16.99.8")


def test_service_dnat_to_the_chosen_endpoint():
    fwd, back = path.predict(
        reference(),
        "flannel-vxlan-pod1",
        "172.16.99.8",
        "192.168.3.22",
        "http",
        8080,
        endpoint="rbd-2",
    )
    assert fwd.hops[-1].netns == "flannel-vxlan-rbd-2"
    assert (fwd.hops[-1].dst, fwd.hops[-1].port) == ("172.16.99.7", 8080)
    assert [e.kind for e in fwd.nat] == ["dnat"]
    assert back.hops[-1].src == "192.168.3.22"  # conntrack undoes the DNAT on the way back


def test_internet_is_masqueraded_to_the_node():
    fwd, back = path.predict(
        reference(), "flannel-vxlan-pod1", "172.16.99.8", "203.0.113.10", "http", 80
    )
    out = next(h for h in fwd.hops if h.netns.endswith("master") and h.ifname == "eth0")
    assert out.src == "10.46.181.145" and out.note == "after MASQUERADE"
    assert fwd.delivered_to == "flannel-vxlan-internet"
    assert back.hops[-1].dst == "172.16.99.8"


def test_ipmasq_keeps_the_pod_address():
    topo = model.load(REFERENCE)
    topo = model.Topology(
        **{**topo.__dict__, "flannel": model.Flannel(**{**topo.flannel.__dict__, "ipmasq": True})}
    )
    m = path.build(topo, SUBNETS, {p.name: str(p.address) for p in topo.pods})
    fwd, _ = path.predict(m, "flannel-vxlan-pod1", "172.16.99.8", "172.16.57.15", "icmp", None)
    assert fwd.hops[-1].src == "172.16.99.8"


def test_host_gw_routes_pod_traffic_through_eth0_unencapsulated(tmp_path):
    """host-gw: no flannel.1; the node routes the other node's subnet via its address."""
    from labnet.model import generate
    from tests.unit.test_generate import write

    topo = model.load(write(tmp_path, generate.topology(2, 4, backend="host-gw", name="hgw")))
    subnets = {n.name: str(n.subnet) for n in topo.nodes}
    net = path.build(topo, subnets, {p.name: str(p.address) for p in topo.pods})
    assert ("hgw-node1", "flannel.1") not in net.ifaces
    fwd, back = path.predict(net, "hgw-pod1", "172.16.1.2", "172.16.2.2", "icmp", None)
    assert [f"{h.netns.removeprefix('hgw-')}/{h.ifname}/{h.direction}" for h in fwd.hops] == [
        "pod1/eth0/out",
        "node1/cni0/in",
        "node1/eth0/out",
        "underlay/ul-node2/out",
        "node2/eth0/in",
        "node2/cni0/out",
        "pod2/eth0/in",
    ]
    assert all(h.outer is None for h in fwd.hops)
    assert back.hops[-1].netns == "hgw-pod1"
