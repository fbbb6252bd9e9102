"""The iptables walk of a diagnosis: which rule decides a predicted packet, and the causes
it gives (a DROP policy, a DROP or REJECT rule, a missing DNAT or MASQUERADE)."""

from __future__ import annotations

from labnet.probe import filters
from labnet.probe.filters import Packet

# docker 1.13's filter table on minion, as iptables-save prints it
DOCKER_113 = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION - [0:0]
-A FORWARD -j DOCKER-ISOLATION
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A DOCKER-ISOLATION -j RETURN
COMMIT
"""

NAT = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SEP-A - [0:0]
:KUBE-SEP-B - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-X - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A POSTROUTING -s 172.16.99.0/24 ! -o docker0 -j MASQUERADE
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-NODEPORTS -p tcp -m comment --comment "default/web:http" -m tcp --dport 30080 -j KUBE-MARK-MASQ
-A KUBE-NODEPORTS -p tcp -m comment --comment "default/web:http" -m tcp --dport 30080 -j KUBE-SVC-X
-A KUBE-POSTROUTING -m comment --comment "masquerade" -m mark --mark 0x4000/0x4000 -j MASQUERADE
-A KUBE-SEP-A -s 172.16.99.6/32 -j KUBE-MARK-MASQ
-A KUBE-SEP-A -p tcp -m tcp -j DNAT --to-destination 172.16.99.6:8080
-A KUBE-SEP-B -s 172.16.99.7/32 -j KUBE-MARK-MASQ
-A KUBE-SEP-B -p tcp -m tcp -j DNAT --to-destination 172.16.99.7:8080
-A KUBE-SERVICES -d 192.168.3.22/32 -p tcp -m comment --comment "default/rbd" -m tcp --dport 8080 -j KUBE-SVC-X
-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-SVC-X -m statistic --mode random --probability 0.50000 -j KUBE-SEP-A
-A KUBE-SVC-X -j KUBE-SEP-B
COMMIT
"""  # noqa: E501


def tunnel(**kw) -> Packet:
    """pod1 -> pod3 on minion: in from flannel.1, out to docker0."""
    fields = dict(in_if="flannel.1", out_if="docker0", state="NEW") | kw
    return Packet("172.16.99.0", "172.16.57.15", "icmp", **fields)


def test_a_drop_policy_no_rule_accepts_is_named():
    why = filters.filter_cause("minion", DOCKER_113, "FORWARD", tunnel())
    assert why == (
        "the FORWARD policy in minion is DROP and no rule accepts icmp 172.16.99.0 -> "
        "172.16.57.15 from flannel.1 to docker0"
    )


def test_a_rule_that_accepts_the_flow_clears_the_policy():
    assert filters.filter_cause("minion", DOCKER_113, "FORWARD", tunnel(state="ESTABLISHED")) == ""
    out = tunnel(in_if="docker0", out_if="flannel.1")  # `-i docker0 ! -o docker0`
    assert filters.filter_cause("minion", DOCKER_113, "FORWARD", out) == ""
    flannel = DOCKER_113.replace("COMMIT", "-A FORWARD -s 172.16.0.0/16 -j ACCEPT\nCOMMIT")
    assert filters.filter_cause("minion", flannel, "FORWARD", tunnel()) == ""


def test_a_drop_rule_in_a_jumped_to_chain_is_named():
    text = DOCKER_113.replace(":FORWARD DROP", ":FORWARD ACCEPT").replace(
        "-A DOCKER-ISOLATION -j RETURN", "-A DOCKER -d 172.16.57.15/32 -p icmp -j DROP"
    )
    hit = filters.decide(text, "FORWARD", tunnel())
    assert (
        hit[0]
        == hit[1]
        == filters.Hit("DOCKER", "DROP", ("-d", "172.16.57.15/32", "-p", "icmp", "-j", "DROP"))
    )
    assert filters.filter_cause("minion", text, "FORWARD", tunnel()).endswith(
        "filter `-A DOCKER -d 172.16.57.15/32 -p icmp -j DROP`"
    )


def test_a_drop_behind_an_undecidable_match_is_not_claimed():
    text = "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -m statistic --probability 0.5 -j DROP\n"
    assert [h.target for h in filters.decide(text, "FORWARD", tunnel())] == ["ACCEPT", "DROP"]
    assert filters.filter_cause("minion", text, "FORWARD", tunnel()) == ""


def test_negation_wildcards_and_ports():
    rule = ["!", "-i", "docker+", "-p", "tcp", "-m", "multiport", "--dports", "80,8000:9000"]
    web = Packet("1.1.1.1", "2.2.2.2", "tcp", dport=8080, in_if="eth0")
    assert filters.matches(web, rule) is True
    assert filters.matches(Packet("1.1.1.1", "2.2.2.2", "tcp", dport=22), rule) is False
    assert (
        filters.matches(Packet("1.1.1.1", "2.2.2.2", "tcp", dport=80, in_if="docker0"), rule)
        is False
    )
    assert filters.matches(Packet("1.1.1.1", "2.2.2.2", "tcp"), rule) is None  # port unknown


def test_kube_services_emptied_is_a_missing_dnat():
    svc = Packet("172.16.99.8", "192.168.3.22", "tcp", dport=8080, in_if="docker0")
    assert filters.dnat_cause("master", NAT, "PREROUTING", svc) == ""
    emptied = "\n".join(
        line for line in NAT.splitlines() if not line.startswith("-A KUBE-SERVICES")
    )
    assert filters.dnat_cause("master", emptied, "PREROUTING", svc) == (
        "no rule in master's KUBE-SERVICES matches tcp 192.168.3.22:8080: nothing rewrites the "
        "destination to an endpoint (no DNAT; are kube-proxy's rules gone?)"
    )
    unhooked = NAT.replace(
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\n', ""
    )
    assert filters.dnat_cause("master", unhooked, "PREROUTING", svc).startswith(
        "master's nat PREROUTING does not lead tcp 172.16.99.8 -> 192.168.3.22:8080"
    )


def test_masquerade_by_docker_rule_or_by_kube_proxy_mark():
    out = Packet("172.16.99.8", "203.0.113.10", "tcp", dport=80, in_if="docker0", out_if="eth0")
    assert filters.masquerade_cause("master", NAT, out, "PREROUTING", "10.46.181.145") == ""
    no_docker = NAT.replace("-A POSTROUTING -s 172.16.99.0/24 ! -o docker0 -j MASQUERADE\n", "")
    assert filters.masquerade_cause("master", no_docker, out, "PREROUTING", "10.46.181.145") == (
        "no MASQUERADE rule in master's nat POSTROUTING matches tcp 172.16.99.8 -> "
        "203.0.113.10:80 from docker0 to eth0: the source is not rewritten to 10.46.181.145"
    )
    # a NodePort flow: KUBE-MARK-MASQ in PREROUTING, MASQUERADE by the mark in POSTROUTING
    node = Packet(
        "10.46.181.1",
        "10.46.181.145",
        "tcp",
        dport=30080,
        in_if="eth0",
        out_if="docker0",
        local=frozenset({"10.46.181.145"}),
    )
    assert filters.masquerade_cause("master", no_docker, node, "PREROUTING", "172.16.99.1") == ""
    unmarked = no_docker.replace("-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n", "")
    assert "no MASQUERADE rule" in filters.masquerade_cause(
        "master", unmarked, node, "PREROUTING", "172.16.99.1"
    )
