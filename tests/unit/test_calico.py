"""Calico-style routing, planned without root: the calico section and its refusals, the
cali veths and routes Calico's CNI plugin and Felix make, each node's BIRD config (checked by
BIRD itself with `bird -p`), and the predicted path: no bridge, no tunnel, and a blackhole
for an address of the block that no pod holds."""

from __future__ import annotations

import shutil
import subprocess
from ipaddress import IPv4Network

import pytest

from labnet import model, plan
from labnet.errors import TopologyError
from labnet.plan import bird, path
from tests.conftest import ROOT

MESH = ROOT / "topologies" / "calico-bgp.yaml"
RR = ROOT / "topologies" / "calico-bgp-rr.yaml"


def write(tmp_path, text: str):
    p = tmp_path / "lab.yaml"
    p.write_text(text)
    return p


BASE = """name: c
calico: {CALICO}
nodes:
  - {name: n1, subnet: 192.168.1.0/26}
  - {name: n2, subnet: 192.168.2.0/26}
pods:
  - {name: p1, node: n1}
"""


def test_the_calico_section_replaces_flannel():
    topo = model.load(MESH)
    assert topo.flannel is None
    assert topo.calico == model.Calico(IPv4Network("192.168.0.0/16"), 26, 64512, ())
    assert topo.etcd.api == "v3"  # Calico's etcd datastore
    assert topo.pod_network == IPv4Network("192.168.0.0/16")
    assert "BIRD 2" in topo.releases and "node-to-node mesh" in topo.network_summary
    assert model.load(RR).calico.route_reflectors == ("node1",)


@pytest.mark.parametrize(
    ("calico", "extra", "message"),
    [
        ("{}", "flannel: {}\n", "flannel or Calico, not both"),
        ("{pool: 192.168.1.0/24, block_size: 22}", "", "does not fit in the pool"),
        ("{route_reflectors: [n9]}", "", "no node named 'n9'"),
        ("{pool: 10.0.0.0/16}", "", "outside the Calico pool"),
    ],
)
def test_a_wrong_calico_section_is_refused(tmp_path, calico, extra, message):
    with pytest.raises(TopologyError, match=message):
        model.load(write(tmp_path, BASE.replace("{CALICO}", calico) + extra))


def test_each_node_needs_its_block(tmp_path):
    text = BASE.replace("{CALICO}", "{}").replace(
        "{name: n2, subnet: 192.168.2.0/26}", "{name: n2}"
    )
    with pytest.raises(TopologyError, match="has no block"):
        model.load(write(tmp_path, text))
    wrong = BASE.replace("{CALICO}", "{}").replace("192.168.2.0/26", "192.168.2.0/24")
    with pytest.raises(TopologyError, match="is not a /26"):
        model.load(write(tmp_path, wrong))


def test_a_pod_takes_the_blocks_addresses_from_the_first():
    topo = model.load(MESH)
    node1 = topo.node("node1")
    assert plan.plan(topo).nodes["node1"].pods == {"pod1": "192.168.1.0", "pod2": "192.168.1.1"}
    assert node1.subnet == IPv4Network("192.168.1.0/26")


def test_cali_names_hash_the_pods_namespace_and_name():
    # libcalico-go VethNameForWorkload: "cali" + hex(sha1("<namespace>.<pod>"))[:11]
    import hashlib

    want = "cali" + hashlib.sha1(b"default.pod1").hexdigest()[:11]
    assert plan.cali_name("default", "pod1") == want == "calice0906292e2"
    assert len(plan.cali_name("kube-system", "a-very-long-pod-name-0")) == 15  # IFNAMSIZ


def test_the_pods_veths_routes_and_sysctls_are_calicos():
    topo = model.load(MESH)
    steps = plan.plan(topo).nodes["node1"].steps
    assert steps.bridges == []
    cali = plan.cali_name("default", "pod1")
    veth = next(v for v in steps.veths if v.peer_netns == "calico-bgp-pod1")
    assert (veth.netns, veth.ifname, veth.master, veth.mac) == (
        "calico-bgp-node1", cali, None, "ee:ee:ee:ee:ee:ee"
    )  # fmt: skip
    assert plan.Address("calico-bgp-pod1", "eth0", "192.168.1.0/32") in steps.addresses
    routes = [r for r in steps.routes if r.netns in ("calico-bgp-pod1", "calico-bgp-node1")]
    assert routes[:3] == [
        plan.Route("calico-bgp-pod1", "169.254.1.1/32", "", "eth0"),
        plan.Route("calico-bgp-pod1", "default", "169.254.1.1", "eth0"),
        plan.Route("calico-bgp-node1", "192.168.1.0/32", "", cali),
    ]
    keys = {s.key: s.value for s in steps.link_sysctls if cali in s.key}
    assert keys == {
        f"net/ipv4/conf/{cali}/proxy_arp": "1",
        f"net/ipv4/neigh/{cali}/proxy_delay": "0",
        f"net/ipv4/conf/{cali}/forwarding": "1",
    }


def test_a_node_runs_bird_not_flannel():
    daemons = plan.plan(model.load(MESH)).daemons
    kinds = sorted({d.kind for d in daemons})
    assert kinds == ["bird", "container", "etcd"]
    assert [d.name for d in daemons if d.kind == "bird"] == [
        "bird-node1",
        "bird-node2",
        "bird-node3",
    ]


def _config(topology, node: str) -> str:
    topo = model.load(topology)
    return bird.config(topo, topo.node(node))


def test_the_mesh_config_peers_every_other_node_and_exports_the_block():
    text = _config(MESH, "node1")
    assert "router id 10.46.181.145;" in text
    assert "route 192.168.1.0/26 blackhole;" in text
    assert "if ( net = 192.168.1.0/26 ) then { accept; }" in text  # the block
    assert "if ( net ~ 192.168.1.0/26 ) then { reject; }" in text  # not the pods' /32s
    assert "protocol bgp Mesh_10_46_181_146 from bgp_template {" in text
    assert "protocol bgp Mesh_10_46_181_147 from bgp_template {" in text
    assert "neighbor 10.46.181.146 as 64512;" in text
    assert "rr client" not in text


def test_with_a_reflector_clients_peer_only_with_it():
    reflector, client = _config(RR, "node1"), _config(RR, "node2")
    assert reflector.count("rr client;") == 2
    assert "protocol bgp Node_10_46_181_146" in reflector
    assert "protocol bgp Node_10_46_181_145" in client
    assert "Node_10_46_181_147" not in client  # no session between two clients
    assert "rr client" not in client


@pytest.mark.skipif(shutil.which("bird") is None, reason="bird2 is installed by bootstrap")
@pytest.mark.parametrize(("topology", "node"), [(MESH, "node1"), (RR, "node1"), (RR, "node3")])
def test_bird_accepts_each_config(tmp_path, topology, node):
    conf = tmp_path / "bird.conf"
    conf.write_text(_config(topology, node))
    proc = subprocess.run(["bird", "-p", "-c", str(conf)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _model() -> path.NetModel:
    topo = model.load(MESH)
    p = plan.plan(topo)
    subnets = {n.name: str(n.subnet) for n in topo.nodes}
    pod_ips = {pod: ip for node in p.nodes.values() for pod, ip in node.pods.items()}
    return path.build(topo, subnets, pod_ips)


def test_the_path_goes_through_the_cali_veths_and_eth0_without_a_tunnel():
    m = _model()
    forward, back = path.predict(m, "calico-bgp-pod1", "192.168.1.0", "192.168.2.0", "icmp", None)
    cali1, cali3 = plan.cali_name("default", "pod1"), plan.cali_name("default", "pod3")
    assert [h.place for h in forward.hops] == [
        "calico-bgp-pod1/eth0",
        f"calico-bgp-node1/{cali1}",
        "calico-bgp-node1/eth0",
        "calico-bgp-underlay/ul-node2",
        "calico-bgp-node2/eth0",
        f"calico-bgp-node2/{cali3}",
        "calico-bgp-pod3/eth0",
    ]
    assert all(h.outer is None for h in forward.hops) and not forward.nat
    assert back.delivered_to == "calico-bgp-pod1"


def test_an_address_of_the_block_that_no_pod_holds_stops_at_the_blackhole():
    forward, back = path.predict(
        _model(), "calico-bgp-pod1", "192.168.1.0", "192.168.2.9", "icmp", None
    )
    assert forward.delivered_to is None and back is None
    assert forward.problem == "blackhole route to 192.168.2.9 in calico-bgp-node2"
