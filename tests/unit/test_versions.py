"""Each release's rules and lease value, as labnet renders them, against the texts derived
from that release's own code (tests/goldens: kube-proxy's proxier.go and proxier_test.go,
flannel's network/ipmasq.go and iptables code, libnetwork's bridge driver, at their tags;
each golden names its sources)."""

from __future__ import annotations

import pytest

from labnet import model
from labnet.daemons.flannel.lease import Lease
from labnet.errors import TopologyError
from labnet.model import generate, versions
from labnet.plan import docker_rules, flannel_rules, kube_proxy_rules
from labnet.plan.build import pod_addresses
from tests.conftest import ROOT
from tests.iptables_text import comparable, golden, parse

REFERENCE = ROOT / "topologies" / "flannel-vxlan.yaml"
NETWORK, SUBNET = "172.16.0.0/16", "172.16.99.0/24"


def reference(**versions_: str) -> model.Topology:
    topo = model.load(REFERENCE)
    if versions_:
        from dataclasses import replace

        topo = replace(topo, versions=versions.Versions.of({**versions.ARTICLE, **versions_}))
    return topo


def kube_proxy_text(topo: model.Topology) -> str:
    ips = {}
    for n in topo.nodes:
        ips.update(pod_addresses(topo, n, n.subnet))
    return kube_proxy_rules(topo, ips)[0].text


def same(ours: str, theirs: str) -> None:
    assert comparable(parse(ours)[0]) == comparable(parse(theirs)[0])
    assert parse(ours)[1] == parse(theirs)[1]


def without_nfacct(text: str) -> str:
    """v1.37.rules on a kernel without nfacct (its header): the INVALID rule loses its
    nfacct match and the localhost NodePort rules (which need the counter) go."""
    lines = [line for line in text.splitlines() if "localhost_nps_accepted_pkts" not in line]
    return "\n".join(lines).replace(" -m nfacct --nfacct-name ct_state_invalid_dropped_pkts", "")


def test_kube_proxy_1_5_writes_the_article_era_tables():
    same(kube_proxy_text(reference()), golden("kube-proxy/v1.5.8.rules"))


def test_kube_proxy_today_writes_its_tables():
    topo = reference(**{"kube-proxy": "1.37"})
    same(kube_proxy_text(topo), without_nfacct(golden("kube-proxy/v1.37.rules")))


def test_the_article_chain_names_come_out_of_kube_proxy_1_5():
    text = kube_proxy_text(reference())
    for chain in (
        "KUBE-SVC-AU252PRZZQGOERSG",
        "KUBE-SEP-I6L4LR53UYF7FORX",
        "KUBE-SEP-LBWOKUH4CUTN7XKH",
        "KUBE-SVC-TCOU7JCQXEZGVUNU",
        "KUBE-SVC-ERIFXISQEP7F7OF4",
        "KUBE-SVC-BEPXDJBUHFCSYIC3",
    ):
        assert f":{chain} " in text


@pytest.mark.parametrize("version,tag", [("1.12", "v1.12.6"), ("1.13", "v1.13.1")])
@pytest.mark.parametrize("flannel_masq", [False, True])
def test_docker_rules(version, tag, flannel_masq):
    """With FLANNEL_IPMASQ=true, mk-docker-opts.sh gives docker --ip-masq=false."""
    ours = docker_rules(versions.DOCKER[version], SUBNET, "docker0", flannel_masq)
    same(ours, golden(f"docker/{tag}{'-no-ip-masq' if flannel_masq else ''}.rules"))


def test_no_docker_writes_no_rules():
    assert docker_rules(versions.DOCKER["none"], SUBNET, "cni0", True) == ""


@pytest.mark.parametrize("release", list(versions.FLANNEL.values()), ids=lambda r: r.tag)
def test_flannel_ip_masq_and_forward_rules(release):
    same(flannel_rules(release, NETWORK, SUBNET, True), golden(f"flannel/{release.tag}.rules"))


def test_flannel_without_ip_masq_writes_only_forward_rules():
    assert flannel_rules(versions.FLANNEL["0.6"], NETWORK, SUBNET, False) == ""
    assert "POSTROUTING" not in flannel_rules(versions.FLANNEL["0.9"], NETWORK, SUBNET, False)
    assert "FORWARD" in flannel_rules(versions.FLANNEL["0.9"], NETWORK, SUBNET, False)


def test_lease_values_per_release():
    """tests/goldens/flannel/NOTES.md (b): LeaseAttrs as json.Marshal writes it."""
    mac = "d6:51:2e:80:5c:69"
    old = Lease(None, "10.46.181.145", mac, form=versions.FLANNEL["0.6"].lease_form)
    new = Lease(None, "10.46.181.145", mac, form=versions.FLANNEL["0.28"].lease_form)
    assert old.to_json() == (
        '{"PublicIP":"10.46.181.145","BackendType":"vxlan","BackendData":{"VtepMAC":"' + mac + '"}}'
    )
    assert new.to_json() == (
        '{"PublicIP":"10.46.181.145","PublicIPv6":null,"BackendType":"vxlan",'
        '"BackendData":{"VNI":1,"VtepMAC":"' + mac + '"}}'
    )


def test_the_reference_lab_pins_the_article_set_and_new_topologies_get_today(tmp_path):
    topo = model.load(REFERENCE)
    assert topo.versions.as_dict() == versions.ARTICLE
    assert (topo.etcd.api, topo.flannel.mode, topo.nodes[0].bridge) == ("v2", "miss", "docker0")
    path = tmp_path / "new.yaml"
    path.write_text("name: new\nnodes: [{name: a}, {name: b}]\n")
    new = model.load(path)
    assert new.versions.as_dict() == versions.TODAY
    assert (new.etcd.api, new.flannel.mode, new.nodes[0].bridge) == ("v3", "static", "cni0")
    assert new.flannel.ipmasq  # without docker, flannel masquerades (kube-flannel's default)
    assert generate.topology(2, 4)["versions"] == versions.TODAY


def test_an_unknown_version_is_refused_with_the_known_ones(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text('name: old\nversions: {flannel: "0.5"}\nnodes: [{name: a}]\n')
    with pytest.raises(TopologyError) as err:
        model.load(path)
    message = str(err.value)
    assert "versions.flannel" in message and "'0.5'" in message
    assert all(f"'{v}'" in message for v in versions.FLANNEL)


def test_a_mode_that_contradicts_the_release_is_refused(tmp_path):
    path = tmp_path / "mixed.yaml"
    path.write_text(
        'name: mixed\nversions: {flannel: "0.6"}\n'
        "flannel: {backend: {mode: static}}\nnodes: [{name: a}]\n"
    )
    with pytest.raises(TopologyError, match="flannel 0.6 runs vxlan in miss mode"):
        model.load(path)


def test_the_schema_lists_exactly_the_known_releases():
    schema = model.schema.schema()["properties"]["versions"]["properties"]
    for component, known in versions.KNOWN.items():
        assert schema[component]["enum"] == list(known)
        assert schema[component]["default"] == versions.TODAY[component]
