"""Each supported set of releases on real namespaces: the live tables equal what those
releases write (tests/goldens, derived from their code at their tags), and what the
article shows reads the same in the reference lab."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT
from tests.iptables_text import comparable, golden, parse
from tests.lab.conftest import fresh_lab, sh, variant

pytestmark = pytest.mark.lab

ARTICLE_BLOCK = 'versions:                # the article\'s: flannel v0.6.2 (etcd v2), docker 1.12, kube-proxy 1.5\n  flannel: "0.6"\n  docker: "1.12"\n  kube-proxy: "1.5"'  # noqa: E501


def versions_block(flannel: str, docker: str, kube_proxy: str) -> dict[str, str]:
    return {
        ARTICLE_BLOCK: f'versions:\n  flannel: "{flannel}"\n  docker: "{docker}"\n'
        f'  kube-proxy: "{kube_proxy}"'
    }


@pytest.fixture(scope="module")
def today_lab(root_required, tmp_path_factory) -> Iterator[str]:
    today = versions_block("0.28", "none", "1.37")
    today["ipmasq: false"] = "ipmasq: true "  # kube-flannel runs flanneld --ip-masq
    path = variant(tmp_path_factory, "ver-today", today)
    with fresh_lab(path):
        yield "ver-today"


def saved(netns: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", netns, "iptables-save"], capture_output=True, text=True, check=True
    ).stdout


def expected(scratch: str, *goldens: str) -> str:
    """The goldens loaded in order (flanneld, then docker, then kube-proxy, as a node
    starts them) into an empty namespace, as iptables-save prints them there."""
    for text in goldens:
        subprocess.run(
            ["ip", "netns", "exec", scratch, "iptables-restore", "--noflush"],
            input=text,
            text=True,
            check=True,
        )
    return saved(scratch)


def without_nfacct(text: str) -> str:
    lines = [line for line in text.splitlines() if "localhost_nps_accepted_pkts" not in line]
    return "\n".join(lines).replace(" -m nfacct --nfacct-name ct_state_invalid_dropped_pkts", "")


def assert_same_tables(live: str, want: str) -> None:
    (live_t, live_p), (want_t, want_p) = parse(live), parse(want)
    for table in ("nat", "filter"):
        assert comparable(live_t).get(table, {}) == comparable(want_t).get(table, {}), table
    assert live_p == want_p


def test_the_article_set_writes_what_its_releases_write(reference_lab, scratch):
    """flannel v0.6.2 without --ip-masq writes nothing; docker v1.12.6, kube-proxy v1.5.8."""
    want = expected(scratch, golden("docker/v1.12.6.rules"), golden("kube-proxy/v1.5.8.rules"))
    assert_same_tables(saved("flannel-vxlan-master"), want)


def test_todays_set_writes_what_its_releases_write(today_lab, scratch):
    """flannel v0.28.9 with kube-flannel's --ip-masq, no docker, kube-proxy v1.37 on a node
    whose kernel has no nfacct."""
    want = expected(
        scratch,
        golden("flannel/v0.28.9.rules"),
        without_nfacct(golden("kube-proxy/v1.37.rules")),
    )
    assert_same_tables(saved("ver-today-master"), want)


# the article's listing (section 「"不真实"的Service网络」 and 「Pod内到外部网络」), line by line
ARTICLE = {
    "KUBE-SVC-AU252PRZZQGOERSG": [
        "KUBE-SEP-I6L4LR53UYF7FORX  all  --  0.0.0.0/0            0.0.0.0/0            "
        "/* default/rbd-rest-api: */ statistic mode random probability 0.50000000000",
        "KUBE-SEP-LBWOKUH4CUTN7XKH  all  --  0.0.0.0/0            0.0.0.0/0            "
        "/* default/rbd-rest-api: */",
    ],
    "KUBE-SEP-I6L4LR53UYF7FORX": [
        "KUBE-MARK-MASQ  all  --  172.16.99.6          0.0.0.0/0            "
        "/* default/rbd-rest-api: */",
        "DNAT       tcp  --  0.0.0.0/0            0.0.0.0/0            "
        "/* default/rbd-rest-api: */ tcp to:172.16.99.6:8080",
    ],
    "KUBE-SEP-LBWOKUH4CUTN7XKH": [
        "KUBE-MARK-MASQ  all  --  172.16.99.7          0.0.0.0/0            "
        "/* default/rbd-rest-api: */",
        "DNAT       tcp  --  0.0.0.0/0            0.0.0.0/0            "
        "/* default/rbd-rest-api: */ tcp to:172.16.99.7:8080",
    ],
    "KUBE-MARK-MASQ": [
        "MARK       all  --  0.0.0.0/0            0.0.0.0/0            MARK or 0x4000"
    ],
}
PROTOCOL_NUMBERS = {"0": "all", "6": "tcp", "17": "udp"}  # iptables 1.8.9 prints numbers


def listing(chain: str) -> list[list[str]]:
    out = sh("flannel-vxlan", "master", "iptables", "-t", "nat", "-nL", chain)
    rows = [line.split() for line in out.splitlines()[2:] if line.strip()]
    return [[r[0], PROTOCOL_NUMBERS.get(r[1], r[1]), *r[2:]] for r in rows]


@pytest.mark.parametrize("chain", list(ARTICLE))
def test_iptables_nL_reads_as_in_the_article(reference_lab, chain):
    assert listing(chain) == [line.split() for line in ARTICLE[chain]]


def test_dockers_masquerade_reads_as_in_the_article(reference_lab):
    article = "MASQUERADE  all  --  172.16.99.0/24       0.0.0.0/0".split()
    assert article in listing("POSTROUTING")


def test_the_articles_etcd_commands_work_as_typed(reference_lab):
    """`inv exec etcd` gives etcdctl the lab's API (v2, as flannel v0.6 spoke it)."""
    inv = [str(ROOT / "scripts" / "inv")]
    ls = subprocess.run(
        [*inv, "exec", "etcd", "--lab", "flannel-vxlan", "--",
         "etcdctl", "--endpoints", "http://127.0.0.1:2379", "ls", "/coreos.com/network/subnets"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert sorted(ls.split()) == [
        "/coreos.com/network/subnets/172.16.57.0-24",
        "/coreos.com/network/subnets/172.16.99.0-24",
    ]
    got = subprocess.run(
        [*inv, "exec", "etcd", "--lab", "flannel-vxlan", "--", "curl", "-L",
         "http://127.0.0.1:2379/v2/keys/coreos.com/network/subnets/172.16.57.0-24"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    node = json.loads(got)["node"]
    assert node["key"] == "/coreos.com/network/subnets/172.16.57.0-24"
    assert node["value"].startswith('{"PublicIP":"10.46.181.146","BackendType":"vxlan",')
    assert 0 < node["ttl"] <= 86400


def test_flannel_1_per_release(reference_lab, today_lab, tmp_path_factory):
    """v0.6: the /16 address makes the kernel's route (the article's line); v0.7: /32 and
    flannel's own network route; today: /32 and an onlink route per lease."""
    assert "172.16.0.0/16 dev flannel.1 proto kernel scope link src 172.16.99.0" in sh(
        "flannel-vxlan", "master", "ip", "route"
    )
    today = sh("ver-today", "master", "ip", "route")
    assert "172.16.57.0/24 via 172.16.57.0 dev flannel.1 onlink" in today
    assert "172.16.0.0/16" not in today
    assert "inet 172.16.99.0/32" in sh("ver-today", "master", "ip", "addr", "show", "flannel.1")
    path = variant(tmp_path_factory, "ver-07", versions_block("0.7", "1.12", "1.5"))
    with fresh_lab(path):
        routes = sh("ver-07", "master", "ip", "route")
        assert "172.16.0.0/16 dev flannel.1 scope link" in routes
        assert "inet 172.16.99.0/32" in sh("ver-07", "master", "ip", "addr", "show", "flannel.1")
        assert "3 received" in sh("ver-07", "pod1", "ping", "-c", "3", "-i", "0.2", "172.16.57.15")


def test_todays_lease_and_subnet_env(today_lab):
    from labnet.daemons import state
    from tests.lab.conftest import etcd

    with etcd("ver-today") as client:
        value = client.get("/coreos.com/network/subnets/172.16.57.0-24")
    assert value.startswith(
        '{"PublicIP":"10.46.181.146","PublicIPv6":null,"BackendType":"vxlan",'
        '"BackendData":{"VNI":1,"VtepMAC":"'
    )
    env = (state.node_dir("ver-today", "master") / "subnet.env").read_text()
    assert env == (
        "FLANNEL_NETWORK=172.16.0.0/16\nFLANNEL_SUBNET=172.16.99.1/24\n"
        "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
    )
    assert "cni0" in sh("ver-today", "master", "ip", "-br", "link")


def test_docker_1_13_drops_what_flannel_0_9_accepts(root_required, tmp_path_factory):
    """docker 1.13's FORWARD DROP stops a new connection arriving on flannel.1 for a pod;
    flannel v0.9.1's FORWARD rules let it through."""
    broken = variant(tmp_path_factory, "ver-drop", versions_block("0.8", "1.13", "1.5"))
    with fresh_lab(broken):
        assert ":FORWARD DROP" in saved("ver-drop-minion")
        out = sh("ver-drop", "pod1", "ping", "-c", "2", "-W", "1", "172.16.57.15", check=False)
        assert " 0 received" in out
    fixed = variant(tmp_path_factory, "ver-fwd", versions_block("0.9", "1.13", "1.5"))
    with fresh_lab(fixed):
        assert "-A FORWARD -d 172.16.0.0/16 -j ACCEPT" in saved("ver-fwd-minion")
        assert "3 received" in sh("ver-fwd", "pod1", "ping", "-c", "3", "-i", "0.2", "172.16.57.15")
