"""kube-proxy's nftables mode on real namespaces (topologies/kube-proxy-nftables.yaml under a
lab name of this test's own): each node's live `ip kube-proxy` table equals what kube-proxy
v1.37 writes (tests/goldens/kube-proxy/v1.37-nftables.nft, loaded into an empty namespace
and listed there, so nft's printing is the same on both sides), `inv verify` passes every
check, kube-proxy leaves no iptables rule, and ClientIP affinity keeps a client on one
endpoint."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from labnet.lab import lookup
from labnet.probe import verify
from tests.conftest import ROOT, run_inv
from tests.iptables_text import golden
from tests.lab.conftest import fresh_lab, sh
from tests.nft_text import parse_listing

pytestmark = pytest.mark.lab

LAB = "nft-kube-proxy"
TOPOLOGY = ROOT / "topologies" / "kube-proxy-nftables.yaml"
GOLDEN = "kube-proxy/v1.37-nftables.nft"
NODE_IPS = {"master": "10.46.181.145", "minion": "10.46.181.146"}


@pytest.fixture(scope="module")
def nft_lab(root_required, tmp_path_factory) -> Iterator[str]:
    """The shipped topology and its walkthrough, the lab renamed to nft-kube-proxy."""
    text = TOPOLOGY.read_text().replace("name: kube-proxy-nftables", f"name: {LAB}")
    assert f"name: {LAB}" in text
    where = tmp_path_factory.mktemp(LAB)
    path = where / f"{LAB}.yaml"
    path.write_text(text)
    shutil.copy(TOPOLOGY.with_name("kube-proxy-nftables.walk.yaml"), where / f"{LAB}.walk.yaml")
    with fresh_lab(path):
        yield str(path)


def listed(netns: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", netns, "nft", "list", "table", "ip", "kube-proxy"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def expected(scratch: str, node_ip: str) -> str:
    """The golden (master's) with the node's own address in nodeport-ips, loaded with
    `nft -f` into an empty namespace and listed there."""
    text = golden(GOLDEN).replace("nodeport-ips { 10.46.181.145 }", f"nodeport-ips {{ {node_ip} }}")
    subprocess.run(
        ["ip", "netns", "exec", scratch, "nft", "-f", "-"], input=text, text=True, check=True
    )
    return listed(scratch)


@pytest.mark.parametrize("node", ["master", "minion"])
def test_each_node_holds_the_table_kube_proxy_writes(nft_lab, scratch, node):
    live, want = (
        parse_listing(listed(f"{LAB}-{node}")),
        parse_listing(expected(scratch, NODE_IPS[node])),
    )
    assert live["chain"] and live["map"]["service-ips"][1]
    for kind in ("table", "set", "map", "chain"):
        assert live[kind] == want[kind], kind


def test_kube_proxy_writes_no_iptables_rule(nft_lab):
    for node in NODE_IPS:
        for table in ("nat", "filter"):
            saved = sh(LAB, node, "iptables-save", "-t", table)
            assert "KUBE-" not in saved, (node, table, saved)
        assert "FLANNEL-POSTRTG" in sh(LAB, node, "iptables-save", "-t", "nat")  # flannel's


def test_verify_passes_every_check(nft_lab):
    report = verify.run(LAB)
    assert report.passed, [(r.check.name, r.problems, r.explanation) for r in report.results]
    assert len(report.results) == 9  # services, NodePorts, affinity, DNS, and pod to pod


def _who(pod: str, url: str) -> str:
    return sh(LAB, pod, "curl", "-s", "--max-time", "2", url).split()[0]


def test_client_ip_affinity_keeps_one_endpoint(nft_lab):
    """The first request picks an endpoint at random (numgen); its chain adds the client to
    the endpoint's affinity set, and every later request goes back to it."""
    first = Counter(_who("pod1", "http://192.168.3.31/") for _ in range(20))
    assert len(first) == 1, first
    again = Counter(_who("pod3", "http://192.168.3.31/") for _ in range(20))
    assert len(again) == 1, again
    sets = sh(LAB, "master", "nft", "list", "sets", "table", "ip", "kube-proxy")
    assert "172.16.99.8" in sets  # pod1, in one affinity set of master's table


def test_no_endpoints_is_rejected(nft_lab):
    """reject-chain answers at once (curl's exit 7), where a drop would time out (exit 28)."""
    argv = ["curl", "-sS", "--max-time", "2", "http://192.168.3.179/"]
    place = lookup.find("pod1", LAB)
    started = time.monotonic()
    proc = subprocess.run(lookup.exec_argv(place, argv), capture_output=True, text=True)
    assert proc.returncode == 7 and time.monotonic() - started < 1.5, proc.stderr


def test_rules_shows_the_nft_table(nft_lab):
    proc = run_inv("rules", "master", "--lab", LAB)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "nft list table ip kube-proxy" in proc.stdout
    assert "service-F2TJOLVC-default/rbd-rest-api/tcp/" in proc.stdout


def test_the_walkthrough_runs_through(nft_lab):
    for lang in ("en", "zh"):
        proc = run_inv(
            "walk", nft_lab, "--no-pause", "--lang", lang, env={**os.environ, "COLUMNS": "250"}
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
        assert "every expected line was seen" in proc.stdout


def test_rule_load_runs_each_loader_and_names_a_refusal(root_required, scratch):
    """One iptables-restore and one nft per namespace; a refused nft text names its owner."""
    from labnet.errors import LabFailure
    from labnet.kernel.realize import RuleLoad
    from labnet.plan import Rules

    nat = "*nat\n:LABNET-TEST - [0:0]\n-A LABNET-TEST -j RETURN\nCOMMIT\n"
    RuleLoad(
        [Rules(scratch, "docker", nat), Rules(scratch, "kube-proxy", golden(GOLDEN), "nft")]
    ).wait()
    assert "-A LABNET-TEST -j RETURN" in subprocess.run(
        ["ip", "netns", "exec", scratch, "iptables-save", "-t", "nat"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "chain services {" in listed(scratch)
    with pytest.raises(LabFailure, match=f"kube-proxy rules in {scratch} were refused"):
        RuleLoad([Rules(scratch, "kube-proxy", "add rule ip nowhere x accept\n", "nft")]).wait()
