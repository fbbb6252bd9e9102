"""The MTU lab's pieces, without a lab: an underlay whose links carry less than the nodes
think, and checks and traces that send a packet of a given size."""

from __future__ import annotations

import pytest

from labnet import model, plan
from labnet.errors import InputError, TopologyError
from labnet.probe import verify
from tests.conftest import ROOT

BLACKHOLE = ROOT / "topologies" / "mtu-blackhole.yaml"


def test_the_underlay_links_carry_the_path_mtu_and_the_nodes_believe_theirs():
    topo = model.load(BLACKHOLE)
    assert (topo.underlay.mtu, topo.underlay.path_mtu, topo.flannel_mtu) == (1500, 1450, 1450)
    base = plan.plan(topo).base
    assert [b.mtu for b in base.bridges if b.ifname == "br0"][0] == 1450
    ports = [v for v in base.veths if v.netns == "mtu-blackhole-underlay"]
    assert ports and all((v.mtu, v.peer_mtu) == (1450, 1500) for v in ports)


def test_without_link_mtu_both_ends_are_the_same():
    topo = model.load(ROOT / "topologies" / "mtu-fixed.yaml")
    assert all(v.peer_mtu is None for v in plan.plan(topo).base.veths)


def test_a_sized_check_is_icmp_only(tmp_path):
    sized = model.load(BLACKHOLE).checks[2]
    assert (sized.size, sized.reachable) == (1450, False)
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\nnodes: [{name: a, subnet: 172.16.1.0/24}]\n"
        "pods: [{name: p, node: a}]\n"
        "checks: [{name: x, from: p, to: a, proto: tcp, port: 80, size: 1400}]\n"
    )
    with pytest.raises(TopologyError, match="size is for icmp checks"):
        model.load(path)


def test_trace_takes_a_size():
    check = verify.adhoc_check("pod1", "pod3", "icmp", None, 1450)
    assert check.size == 1450 and "1450 bytes" in check.name
    with pytest.raises(InputError, match="--size"):
        verify.adhoc_check("pod1", "pod3", "tcp", 80, 1450)
