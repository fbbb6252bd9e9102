"""Pods reach the outside world and services: MASQUERADE, kube-proxy's ClusterIP and NodePort,
session affinity, multi-container pods. Every check reads what the servers themselves report."""

from __future__ import annotations

import math
import re
from collections import Counter

import pytest

from labnet.daemons.workload import request
from labnet.lab import lookup
from tests.conftest import run_inv
from tests.lab.conftest import sh

pytestmark = pytest.mark.lab
LAB = "flannel-vxlan"
MASTER_IP, MINION_IP = "10.46.181.145", "10.46.181.146"


def ns(name: str) -> str:
    return lookup.find(name, LAB).netns


def who(reply: str) -> tuple[str, str]:
    """'<pod> <client ip>:<port>' -> (pod, client ip)."""
    name, client = reply.split()
    return name, client.rsplit(":", 1)[0]


def ask(src: str, proto: str, ip: str, port: int, n: int) -> list[tuple[str, str]]:
    return [who(request(ns(src), proto, ip, port)) for _ in range(n)]


def test_article_chains_in_iptables_listing(reference_lab):
    proc = run_inv("exec", "master", "--", "iptables", "-t", "nat", "-nL")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for chain in (
        "KUBE-SVC-AU252PRZZQGOERSG",
        "KUBE-SEP-I6L4LR53UYF7FORX",
        "KUBE-SEP-LBWOKUH4CUTN7XKH",
    ):
        assert f"Chain {chain} " in out
    assert "statistic mode random probability 0.50000000000" in out
    assert "MARK or 0x4000" in out
    assert re.search(r"KUBE-SERVICES .*/\* kubernetes service portals \*/", out)
    assert re.search(r"MASQUERADE +0 +-- +172\.16\.99\.0/24 +0\.0\.0\.0/0", out)  # docker's rule


def test_rbd_rest_api_splits_between_both_endpoints(reference_lab):
    replies = ask("pod1", "http", "192.168.3.22", 8080, 300)
    counts = Counter(name for name, _ in replies)
    assert set(counts) == {"rbd-1", "rbd-2"}
    assert all(120 <= c <= 180 for c in counts.values()), counts  # binomial(300, .5), ~3.5 sigma
    assert {client for _, client in replies} == {"172.16.99.8"}  # same node: no SNAT
    track = sh(LAB, "master", "conntrack", "-L", "-d", "192.168.3.22")
    assert re.search(r"dst=192\.168\.3\.22 sport=\d+ dport=8080 src=172\.16\.99\.[67] ", track), (
        track
    )


def test_three_endpoints_split_evenly_and_cross_the_tunnel(reference_lab):
    replies = ask("pod1", "http", "192.168.3.30", 80, 300)
    counts = Counter(name for name, _ in replies)
    assert set(counts) == {"web-1", "web-2", "web-3"}
    chi2 = sum((c - 100) ** 2 / 100 for c in counts.values())
    assert math.exp(-chi2 / 2) > 0.001, counts  # chi-square, 2 degrees of freedom
    # web-2 and web-3 live on minion: their requests left master through flannel.1, where
    # docker's MASQUERADE gave them flannel.1's address
    clients = {name: {c for n, c in replies if n == name} for name in counts}
    assert clients["web-2"] == clients["web-3"] == {"172.16.99.0"}
    assert clients["web-1"] == {"172.16.99.8"}
    neigh = sh(LAB, "master", "ip", "neigh", "show", "dev", "flannel.1")
    assert "172.16.57.16" in neigh and "172.16.57.17" in neigh  # resolved by the agent


def test_udp_service_and_udp_server(reference_lab):
    name, _ = who(request(ns("pod1"), "udp", "192.168.3.30", 53))
    assert name in {"web-1", "web-2", "web-3"}
    assert who(request(ns("pod1"), "udp", "172.16.57.15", 5353)) == ("pod3", "172.16.99.0")


def test_pod_to_internet_is_masqueraded_to_the_node(reference_lab):
    assert who(request(ns("pod1"), "http", "203.0.113.10", 80)) == ("internet", MASTER_IP)
    assert who(request(ns("pod3"), "udp", "203.0.113.10", 5353)) == ("internet", MINION_IP)
    proc = run_inv("curl", "pod1", "http://203.0.113.10/")
    assert proc.returncode == 0 and proc.stdout.startswith(f"internet {MASTER_IP}:")
    out = sh(LAB, "master", "iptables", "-t", "nat", "-nL", "POSTROUTING")
    assert re.search(r"MASQUERADE +0 +-- +172\.16\.99\.0/24 +0\.0\.0\.0/0", out)


def test_docker_masquerade_gotcha(reference_lab):
    """With docker's rule alone, pod3 sees flannel.1's address instead of pod1's."""
    assert who(request(ns("pod1"), "http", "172.16.57.15", 8080)) == ("pod3", "172.16.99.0")


def test_client_ip_affinity_keeps_one_endpoint(reference_lab):
    replies = ask("pod1", "http", "192.168.3.31", 80, 50)
    assert len({name for name, _ in replies}) == 1, Counter(replies)
    others = ask("pod3", "http", "192.168.3.31", 80, 20)
    assert len({name for name, _ in others}) == 1


def test_nodeport_answers_the_internet_through_each_node(reference_lab):
    for node_ip in (MASTER_IP, MINION_IP):
        names = set()
        for _ in range(30):
            name, client = who(request(ns("internet"), "http", node_ip, 30080))
            names.add(name)
            # KUBE-EXT marked it, KUBE-POSTROUTING masqueraded it to the node's own address
            assert client in {"172.16.99.1", "172.16.99.0", "172.16.57.1", "172.16.57.0"}
        assert names <= {"web-1", "web-2", "web-3"} and len(names) >= 2


def test_a_pod_reaches_itself_through_its_service(reference_lab):
    """hairpin on docker0's port and KUBE-MARK-MASQ for traffic from the endpoint itself."""
    names = Counter(who(request(ns("rbd-1"), "http", "192.168.3.22", 8080))[0] for _ in range(30))
    assert names["rbd-1"] > 0 and names["rbd-2"] > 0
    links = sh(LAB, "master", "bridge", "-d", "link", "show")
    assert links.count("hairpin on") == 6  # every pod port on master's docker0
    assert sh(LAB, "master", "cat", "/proc/sys/net/bridge/bridge-nf-call-iptables").strip() == "1"


def test_two_containers_share_the_network_not_the_processes(reference_lab):
    proc = run_inv("exec", "pod2/b", "--", "curl", "-s", "http://localhost:8080/")
    assert proc.returncode == 0, proc.stderr
    assert who(proc.stdout.strip()) == ("pod2", "127.0.0.1")
    ps_a = run_inv("exec", "pod2/a", "--", "ps", "-e", "-o", "pid=,comm=").stdout.split("\n")
    ps_b = run_inv("exec", "pod2/b", "--", "ps", "-e", "-o", "pid=,comm=").stdout.split("\n")
    comms_a = {line.split()[1] for line in ps_a if line.strip()}
    comms_b = {line.split()[1] for line in ps_b if line.strip()}
    assert comms_a == {"labnet-serve", "ps"}
    assert comms_b == {"sleep", "ps"}
    assert ps_b[0].split() == ["1", "sleep"]  # PID 1 of its own PID namespace
    hostname = run_inv("exec", "pod2/b", "--", "hostname")
    assert hostname.stdout.strip() == "pod2"


def test_rules_task_shows_the_tree_and_the_listing(reference_lab):
    proc = run_inv(
        "rules", "master", env={"COLUMNS": "200", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "tcp 192.168.3.22:8080 -> KUBE-SVC-AU252PRZZQGOERSG" in out
    assert "DNAT to 172.16.99.6:8080" in out
    assert "Chain KUBE-SVC-AU252PRZZQGOERSG" in out
    ping = run_inv("ping", "pod1", "pod3")
    assert ping.returncode == 0 and " 0% packet loss" in ping.stdout
