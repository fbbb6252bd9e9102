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
    # libcalico-go conversion_test.go (v3.31.7): "namespace"/"podname" -> eni82111e10a96
    assert plan.cali_name("namespace", "podname") == "cali82111e10a96"
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
        f"net/ipv4/conf/{cali}/route_localnet": "1",
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


def _files(topology, node: str) -> dict[str, str]:
    topo = model.load(topology)
    return bird.files(topo, topo.node(node))


def test_the_mesh_config_peers_every_other_node_and_exports_the_block():
    files = _files(MESH, "node1")
    cfg, aggr = files["bird.cfg"], files["bird_aggr.cfg"]
    assert "router id 10.46.181.145;" in cfg
    assert "route 192.168.1.0/26 blackhole;" in aggr
    assert "if ( net = 192.168.1.0/26 ) then { accept; }" in aggr  # the block
    assert "if ( net ~ 192.168.1.0/26 ) then { reject; }" in aggr  # not the pods' /32s
    assert "protocol bgp Mesh_10_46_181_146 from bgp_template {" in cfg
    assert "neighbor 10.46.181.147 as 64512;" in cfg
    # one direction a pair: node1's address is the smaller, so node1 listens to both
    assert cfg.count("passive on; # Mesh is unidirectional") == 2
    assert _files(MESH, "node3")["bird.cfg"].count("passive on;") == 0
    assert "rr client" not in cfg


def test_with_a_reflector_clients_peer_only_with_it():
    reflector, client = _files(RR, "node1")["bird.cfg"], _files(RR, "node2")["bird.cfg"]
    assert reflector.count("rr client;") == 2
    assert "protocol bgp Node_10_46_181_146" in reflector
    assert "protocol bgp Node_10_46_181_145" in client
    assert "Node_10_46_181_147" not in client  # no session between two clients
    assert "rr client" not in client and "Mesh_" not in client


@pytest.mark.skipif(shutil.which("bird") is None, reason="bird2 is installed by bootstrap")
@pytest.mark.parametrize(("topology", "node"), [(MESH, "node1"), (RR, "node1"), (RR, "node3")])
def test_bird_accepts_each_config(tmp_path, topology, node):
    for name, text in _files(topology, node).items():
        (tmp_path / name).write_text(text)
    cfg = tmp_path / "bird.cfg"
    proc = subprocess.run(["bird", "-p", "-c", str(cfg)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# ---- against confd's own rendering (tests/goldens/calico/v3.31.7: confd's compiled_templates
# fixtures at projectcalico/calico v3.31.7, for node kube-master 10.192.0.2)

GOLDENS = ROOT / "tests" / "goldens" / "calico" / "v3.31.7"
# fixture lines labnet writes otherwise in BIRD 2 (labnet.plan.bird's docstring says why)
TRANSLATED = {
    "import all;",  # kernel and mesh: inside ipv4 { }
    "export filter calico_kernel_programming; # Default is export none",
    "gateway recursive; # This should be the default, but just in case.",
    "add paths on;",
    'krt_tunnel = "";',  # calico-bird's own attribute
}


def _lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def _fixture_topology(tmp_path, reflectors: str = "") -> model.Topology:
    """The fixture's cluster: kube-master 10.192.0.2 and two nodes, AS 64512."""
    text = f"""name: fx
underlay: {{subnet: 10.192.0.0/16}}
etcd: {{address: 10.192.0.10}}
calico: {{pool: 192.168.0.0/16, as: 64512{reflectors}}}
nodes:
  - {{name: kube-master, address: 10.192.0.2, subnet: 192.168.221.64/26}}
  - {{name: kube-node-1, address: 10.192.0.3, subnet: 192.168.1.0/26}}
  - {{name: kube-node-2, address: 10.192.0.4, subnet: 192.168.2.0/26}}
"""
    return model.load(write(tmp_path, text))


def test_the_mesh_is_confds_rendering_in_bird_2(tmp_path):
    topo = _fixture_topology(tmp_path)
    ours = bird.files(topo, topo.node("kube-master"))
    for name in ("bird.cfg", "bird_ipam.cfg"):
        theirs = (GOLDENS / "mesh-ipip-off" / name).read_text()
        missing = [
            ln for ln in _lines(theirs) if ln not in TRANSLATED and ln not in _lines(ours[name])
        ]
        assert missing == [], (name, missing)
    # bird_aggr.cfg: the fixture's node has several blocks; its confirmed one is ours
    aggr = _lines((GOLDENS / "mesh-ipip-off" / "bird_aggr.cfg").read_text())
    block = [ln for ln in aggr if "/" not in ln or "192.168.221.64/26" in ln]
    assert [ln for ln in block if ln not in _lines(ours["bird_aggr.cfg"])] == []


def _protocol(text: str, name: str) -> list[str]:
    lines = _lines(text)
    start = lines.index(f"protocol bgp {name} from bgp_template {{")
    return lines[start : lines.index("}", start) + 1]


def _unchanneled(lines: list[str]) -> list[str]:
    """A session of ours without the `ipv4 {` channel around its filters (BIRD 2)."""
    opened = lines.index("ipv4 {")
    closed = lines.index("};", lines.index("};  # Only want to export routes for workloads."))
    return lines[:opened] + lines[opened + 1 : closed] + lines[closed + 1 :]


def test_reflector_and_client_sessions_are_confds(tmp_path):
    topo = _fixture_topology(tmp_path, ", route_reflectors: [kube-master]")
    ours = bird.bird_cfg(topo, topo.node("kube-master"), cluster_id="10.0.0.1")
    theirs = (GOLDENS / "route-reflector" / "bird.cfg").read_text().replace("as 64532", "as 64512")
    for peer in ("Node_10_192_0_3", "Node_10_192_0_4"):
        assert _unchanneled(_protocol(ours, peer)) == _protocol(theirs, peer)
    client_topo = _fixture_topology(tmp_path, ", route_reflectors: [kube-node-2]")
    client = bird.bird_cfg(client_topo, client_topo.node("kube-master"))
    theirs = (
        (GOLDENS / "route-reflector-client" / "bird.cfg")
        .read_text()
        .replace("as 64532", "as 64512")
    )
    mine = _unchanneled(_protocol(client, "Node_10_192_0_4"))
    assert mine == _protocol(theirs, "Node_10_192_0_4")


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


def test_plan_and_graph_show_bird_and_the_cali_veths():
    from labnet.render import report, terminal

    topo = model.load(MESH)
    with terminal.console.capture() as shown:
        terminal.console.print(terminal.plan_tree(topo, plan.plan(topo)))
    text = shown.get()
    assert "process bird-node1: BGP sessions Mesh_10_46_181_146, Mesh_10_46_181_147" in text
    assert "route 192.168.1.0/32 scope link dev calice0906292e2" in text
    _, svg = report.graph(str(MESH), "pod1:pod3")  # from the topology alone: blocks are pinned
    assert "BIRD AS 64512: 192.168.1.0/26 (blackhole)" in svg
    assert "eth0 192.168.2.0" in svg and "flannel" not in svg
