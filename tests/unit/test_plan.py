"""The plan is pure data: names, addresses and routes per namespace, computed without root."""

from __future__ import annotations

from ipaddress import IPv4Network

from labnet import model, plan
from tests.conftest import REFERENCE


def test_reference_plan_namespaces_are_prefixed_by_the_lab():
    p = plan.plan(model.load(REFERENCE))
    names = [ns.name for ns in p.namespaces]
    assert names[:4] == [
        "flannel-vxlan-underlay",
        "flannel-vxlan-etcd",
        "flannel-vxlan-master",
        "flannel-vxlan-minion",
    ]
    assert {
        "flannel-vxlan-pod1",
        "flannel-vxlan-pod3",
        "flannel-vxlan-gateway",
        "flannel-vxlan-internet",
    } <= set(names)
    assert len(names) == len(set(names)) == 15


def test_every_object_lives_in_a_lab_namespace():
    p = plan.plan(model.load(REFERENCE))
    lab_ns = {ns.name for ns in p.namespaces}
    assert all(s.netns == ns.name for ns in p.namespaces for s in ns.sysctls)
    steps = [p.base] + [n.steps for n in p.nodes.values() if n]
    for s in steps:
        for obj in [*s.bridges, *s.addresses, *s.routes, *s.sysctls]:
            assert obj.netns in lab_ns
        for v in s.veths:
            assert {v.netns, v.peer_netns} <= lab_ns
            assert len(v.ifname) <= 15 and len(v.peer_ifname) <= 15


def test_docker_bip_and_pod_routes_as_in_the_article():
    p = plan.plan(model.load(REFERENCE))
    master = p.nodes["master"]
    assert master.subnet == "172.16.99.0/24"
    addrs = {(a.netns, a.ifname): a.cidr for a in master.steps.addresses}
    assert addrs[("flannel-vxlan-master", "docker0")] == "172.16.99.1/24"
    assert addrs[("flannel-vxlan-pod1", "eth0")] == "172.16.99.8/24"
    routes = {r.netns: (r.dst, r.gateway, r.ifname) for r in master.steps.routes}
    assert routes["flannel-vxlan-pod1"] == ("default", "172.16.99.1", "eth0")
    assert len(routes) == 6  # every pod of master
    assert [b.mtu for b in master.steps.bridges] == [1450]
    assert all(v.mtu == 1450 and v.master == "docker0" for v in master.steps.veths)


def test_nodes_forward_and_etcd_sits_on_the_underlay():
    p = plan.plan(model.load(REFERENCE))
    forwarding = {
        s.netns for ns in p.namespaces for s in ns.sysctls if s.key == "net/ipv4/ip_forward"
    }
    assert forwarding == {"flannel-vxlan-master", "flannel-vxlan-minion", "flannel-vxlan-gateway"}
    # the gateway is the nodes' default route and has none itself: nothing leaves the lab
    defaults = {r.netns: r.gateway for r in p.base.routes if r.dst == "default"}
    assert defaults == {
        "flannel-vxlan-master": "10.46.181.1",
        "flannel-vxlan-minion": "10.46.181.1",
        "flannel-vxlan-internet": "203.0.113.1",
    }
    ul = {(a.netns, a.cidr) for a in p.base.addresses}
    assert ("flannel-vxlan-etcd", "10.46.181.10/24") in ul
    assert ("flannel-vxlan-minion", "10.46.181.146/24") in ul
    etcd = next(d for d in p.daemons if d.kind == "etcd")
    assert etcd.setting("listen") == "http://10.46.181.10:2379"


def test_unpinned_nodes_are_planned_from_the_lease(tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text(
        "name: free\nnodes: [{name: a}]\npods: [{name: p1, node: a}, {name: p2, node: a}]\n"
    )
    topo = model.load(path)
    p = plan.plan(topo)
    assert p.nodes == {"a": None}
    leased = plan.plan_node_pods(topo, topo.node("a"), IPv4Network("172.16.42.0/24"), 1450)
    assert leased.pods == {"p1": "172.16.42.2", "p2": "172.16.42.3"}  # docker's IPAM order


def test_long_names_give_short_interface_names(tmp_path):
    path = tmp_path / "lab.yaml"
    long = "a-node-with-a-very-long-name-01"
    path.write_text(f"name: lng\nnodes: [{{name: {long}}}]\n")
    p = plan.plan(model.load(path))
    assert all(len(v.ifname) <= 15 for v in p.base.veths)
    assert len({v.ifname for v in p.base.veths}) == len(p.base.veths)


def test_split_puts_etcd_first_and_loses_nothing():
    p = plan.plan(model.load(REFERENCE))
    first, rest = p.base.split({"flannel-vxlan-underlay", "flannel-vxlan-etcd"})
    assert [b.ifname for b in first.bridges] == ["br0"]
    assert [v.peer_netns for v in first.veths] == ["flannel-vxlan-etcd"]
    assert {a.netns for a in first.addresses} == {"flannel-vxlan-etcd"}
    assert {v.peer_netns for v in rest.veths} == {
        "flannel-vxlan-master",
        "flannel-vxlan-minion",
        "flannel-vxlan-gateway",
        "flannel-vxlan-internet",
    }
    for name in ("bridges", "veths", "addresses", "routes", "sysctls", "rules"):
        assert sorted(map(repr, getattr(first, name) + getattr(rest, name))) == sorted(
            map(repr, getattr(p.base, name))
        )


def test_node_pods_come_in_parts_with_the_bridge_first(tmp_path):
    from labnet.model import generate
    from tests.unit.test_generate import write

    topo = model.load(write(tmp_path, generate.topology(1, 40, name="chunks")))
    node_pods = plan.plan(topo).nodes["node1"]
    parts = node_pods.chunks("chunks", 16)
    assert [len(p.veths) for p in parts] == [16, 16, 8]
    assert [b.ifname for b in parts[0].bridges] == ["cni0"] and not parts[1].bridges
    for name in ("bridges", "veths", "addresses", "routes", "sysctls", "rules"):
        joined = [x for p in parts for x in getattr(p, name)]
        assert sorted(map(repr, joined)) == sorted(map(repr, getattr(node_pods.steps, name)))
