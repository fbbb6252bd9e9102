"""kube-proxy's nftables mode as labnet renders it, against the text derived from
kubernetes' own code and tests (tests/goldens/kube-proxy/v1.37-nftables.nft, which names
its sources), compared as chains, sets and maps rather than byte for byte."""

from __future__ import annotations

from dataclasses import replace

import pytest

from labnet import model
from labnet.errors import TopologyError
from labnet.model import versions
from labnet.plan import kube_proxy_rules, kubeproxy_nft
from labnet.plan.build import pod_addresses
from tests.conftest import ROOT
from tests.iptables_text import golden
from tests.nft_text import parse_commands

REFERENCE = ROOT / "topologies" / "flannel-vxlan.yaml"
SHIPPED = ROOT / "topologies" / "kube-proxy-nftables.yaml"
GOLDEN = "kube-proxy/v1.37-nftables.nft"


def nft_reference() -> model.Topology:
    """The reference lab's services with today's kube-proxy in nftables mode."""
    topo = model.load(REFERENCE)
    today = versions.Versions.of({**versions.ARTICLE, "kube-proxy": "1.37"})
    return replace(topo, versions=today, kube_proxy_mode="nftables")


def pod_ips(topo: model.Topology) -> dict[str, str]:
    ips = {}
    for n in topo.nodes:
        ips.update(pod_addresses(topo, n, n.subnet))
    return ips


def test_the_rendering_is_the_golden():
    topo = nft_reference()
    rules = kube_proxy_rules(topo, pod_ips(topo))
    assert [(r.netns, r.owner, r.loader) for r in rules] == [
        ("flannel-vxlan-master", "kube-proxy", "nft"),
        ("flannel-vxlan-minion", "kube-proxy", "nft"),
    ]
    ours, theirs = parse_commands(rules[0].text), parse_commands(golden(GOLDEN))
    for kind in ("table", "set", "map", "chain"):
        assert ours[kind] == theirs[kind], kind


def test_each_node_accepts_nodeports_on_its_own_address():
    """--nodeport-addresses primary: only the nodeport-ips set differs between the nodes."""
    topo = nft_reference()
    master, minion = (parse_commands(r.text) for r in kube_proxy_rules(topo, pod_ips(topo)))
    assert master["set"]["nodeport-ips"][1] == {"10.46.181.145"}
    assert minion["set"]["nodeport-ips"][1] == {"10.46.181.146"}
    minion["set"]["nodeport-ips"] = master["set"]["nodeport-ips"]
    assert master == minion


def test_chain_names_hash_as_the_nftables_proxier_does():
    """hashAndTruncate, checked on upstream's own test names (ns1/svc1 p80, 10.180.0.1:80)."""
    assert kubeproxy_nft.hash_and_truncate("ns1/svc1/tcp/p80") == "ULMVA6XW-ns1/svc1/tcp/p80"
    endpoint = kubeproxy_nft.hash_and_truncate("ns1/svc1/tcp/p80__10.180.0.1/80")
    assert endpoint == "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
    svc = nft_reference().services[0]
    assert (
        kubeproxy_nft.svc_chain(svc, svc.ports[0]) == "service-F2TJOLVC-default/rbd-rest-api/tcp/"
    )


def test_iptables_mode_stays_the_default(tmp_path):
    topo = model.load(REFERENCE)
    assert topo.kube_proxy_mode == "iptables"
    assert {r.loader for r in kube_proxy_rules(topo, pod_ips(topo))} == {"iptables-restore"}


def test_kube_proxy_1_5_has_no_nftables_mode(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text(
        'name: old\nversions: {kube-proxy: "1.5"}\nkube_proxy: {mode: nftables}\n'
        "nodes: [{name: a}]\n"
    )
    with pytest.raises(TopologyError) as err:
        model.load(path)
    message = str(err.value)
    assert "kube_proxy.mode" in message and "kube-proxy 1.5 has no nftables mode" in message
    assert "v1.29" in message and "v1.31" in message and "v1.33" in message


def test_an_unknown_mode_is_refused(tmp_path):
    path = tmp_path / "ipvs.yaml"
    path.write_text("name: ipvs\nkube_proxy: {mode: ipvs}\nnodes: [{name: a}]\n")
    with pytest.raises(TopologyError, match="kube_proxy.mode"):
        model.load(path)


def test_the_shipped_lab_runs_todays_releases_in_nftables_mode():
    topo = model.load(SHIPPED)
    assert topo.kube_proxy_mode == "nftables"
    assert topo.versions.as_dict() == versions.TODAY
    assert topo.description
    rules = kube_proxy_rules(topo, pod_ips(topo))
    assert rules and all(r.loader == "nft" for r in rules)


def test_the_comparison_sees_a_changed_rule_or_element():
    theirs = golden(GOLDEN)
    base = parse_commands(theirs)
    rule = parse_commands(theirs.replace("numgen random mod 2", "numgen random mod 3"))
    element = parse_commands(theirs.replace("192.168.3.22 . tcp . 8080", "192.168.3.22 . tcp . 80"))
    assert rule["chain"] != base["chain"] and element["map"] != base["map"]


def test_diagnosis_leaves_a_service_flow_to_nft():
    """The iptables walks of the diagnosis would find no KUBE-SERVICES DNAT in an nft lab."""
    from types import SimpleNamespace

    from labnet.plan.path import NatEvent
    from labnet.probe import filters

    dnat = NatEvent("nft-a-master", "dnat", ("192.168.3.22", 8080), ("172.16.99.6", 8080))
    site = SimpleNamespace(m=SimpleNamespace(topo=nft_reference()), nat=[dnat], hop=None, prev=None)
    assert filters.nat_check(site) is None


def test_the_bad_corpus_entry_names_its_line_and_field():
    with pytest.raises(TopologyError) as err:
        model.load(ROOT / "tests" / "bad" / "kube-proxy-nftables-on-1.5.yaml")
    assert (err.value.line, err.value.field) == (4, "kube_proxy.mode")
