"""Cluster DNS in the reference lab: kubelet's resolv.conf, the services' names, the
article's `ping -c 3 baidu.com`, and the query's DNAT hop by hop."""

from __future__ import annotations

import os

import pytest

from labnet.probe import verify
from tests.conftest import run_inv
from tests.lab.conftest import fresh_lab, sh, variant

pytestmark = pytest.mark.lab
LAB = "flannel-vxlan"


def test_ping_baidu_com_as_the_article_does(reference_lab):
    ping = run_inv("exec", "pod1", "--lab", LAB, "--", "ping", "-c", "3", "baidu.com")
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert "PING baidu.com (203.0.113.10)" in ping.stdout
    assert "3 packets transmitted, 3 received" in ping.stdout


def test_services_resolve_by_full_and_short_name(reference_lab):
    full = sh(LAB, "pod1", "getent", "hosts", "rbd-rest-api.default.svc.cluster.local")
    assert full.split() == ["192.168.3.22", "rbd-rest-api.default.svc.cluster.local"]
    short = sh(LAB, "pod1", "getent", "hosts", "rbd-rest-api")  # through the search list
    assert short.split()[0] == "192.168.3.22"
    missing = sh(LAB, "pod1", "getent", "hosts", "nope.default.svc.cluster.local", check=False)
    assert missing == ""


def test_kubelets_resolv_conf_in_the_pod_and_its_containers(reference_lab):
    """dnsPolicy ClusterFirst: the cluster DNS, the pod namespace's search list, ndots:5."""
    want = (
        "search default.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 192.168.3.10\n"
        "options ndots:5\n"
    )
    assert sh(LAB, "pod1", "cat", "/etc/resolv.conf") == want
    assert run_inv("exec", "pod3/app", "--lab", LAB, "--", "cat", "/etc/resolv.conf").stdout == want
    # the DNS pod itself and the nodes ask the outside DNS (dnsPolicy Default)
    assert sh(LAB, "master", "cat", "/etc/resolv.conf") == "nameserver 203.0.113.10\n"


def test_the_dns_query_and_its_dnat_hop_by_hop(reference_lab):
    check = verify.adhoc_check("pod1", "kube-system/kube-dns", "udp", 53)
    report = verify.run(LAB, [check])
    result = report.results[0]
    assert result.passed, result.problems
    answer = result.attempts[0].answer
    assert "rcode=0 kube-dns.kube-system.svc.cluster.local 192.168.3.10" in answer
    hops = [
        (v.hop.netns.removeprefix(f"{LAB}-"), v.hop.ifname, v.hop.dst)
        for v in result.attempts[0].hops
    ]
    assert ("pod1", "eth0", "192.168.3.10") in hops
    assert ("kube-dns", "eth0", "172.16.99.2") in hops  # DNATed to the dnsmasq pod


def test_down_removes_the_resolv_confs(root_required, tmp_path_factory):
    path = variant(tmp_path_factory, "dns-clean", {})
    with fresh_lab(path):
        assert os.path.isfile("/etc/netns/dns-clean-pod1/resolv.conf")
    assert not os.path.exists("/etc/netns/dns-clean-pod1")
    assert not os.path.exists("/etc/netns/dns-clean-master")
