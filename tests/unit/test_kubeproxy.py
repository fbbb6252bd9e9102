"""kube-proxy's chain names and rules, checked against upstream test vectors and the article."""

from __future__ import annotations

from ipaddress import IPv4Address

from labnet.model import Service, ServicePort
from labnet.plan import kubeproxy


def svc(ns: str, name: str, port: ServicePort, endpoints=(), affinity="None", kind="ClusterIP"):
    return Service(ns, name, IPv4Address("192.168.3.22"), kind, affinity, (port,), endpoints)


def test_upstream_hash_vectors():
    p80 = ServicePort("p80", 80, 80, "tcp", None)
    assert kubeproxy.svc_chain(svc("ns1", "svc1", p80), p80) == "KUBE-SVC-XPGD46QRK7WJZT7O"
    assert kubeproxy.sep_chain(svc("ns1", "svc1", p80), p80, "10.180.0.1") == (
        "KUBE-SEP-SXIVWICOYRO3J4NJ"
    )
    https = ServicePort("https", 443, 443, "tcp", None)
    assert kubeproxy.svc_chain(svc("default", "kubernetes", https), https) == (
        "KUBE-SVC-NPX46M4PTMTKRN6Y"
    )


def test_an_unnamed_port_is_named_as_each_release_names_it():
    """v1.5: `ns/svc:` (the article's KUBE-SVC-AU252PRZZQGOERSG); today fmtPortName drops
    the colon, so the same service hashes to another chain (tests/goldens/kube-proxy)."""
    port = ServicePort("", 8080, 8080, "tcp", None)
    s = svc("default", "rbd-rest-api", port, ("a", "b"))
    assert kubeproxy.port_name(s, port, "1.5") == "default/rbd-rest-api:"
    assert kubeproxy.svc_chain(s, port, "1.5") == "KUBE-SVC-AU252PRZZQGOERSG"
    assert kubeproxy.sep_chain(s, port, "172.16.99.6", "1.5") == "KUBE-SEP-I6L4LR53UYF7FORX"
    assert kubeproxy.sep_chain(s, port, "172.16.99.7", "1.5") == "KUBE-SEP-LBWOKUH4CUTN7XKH"
    assert kubeproxy.port_name(s, port) == "default/rbd-rest-api"
    assert kubeproxy.svc_chain(s, port) == "KUBE-SVC-YTRQUIYGUWXPPZ34"


def test_probabilities_per_release():
    assert [kubeproxy.probability(i, 3, "1.5") for i in range(2)] == ["0.33333", "0.50000"]
    assert [kubeproxy.probability(i, 3) for i in range(2)] == ["0.3333333333", "0.5000000000"]


def test_endpoints_are_sorted_as_kube_proxy_sorts_them():
    """By "ip:port" string: 172.16.57.16 comes before 172.16.99.10 whatever the topology says."""
    port = ServicePort("http", 80, 8080, "tcp", None)
    s = svc("default", "web", port, ("a", "b"))
    nat = kubeproxy.render((s,), {"a": "172.16.99.10", "b": "172.16.57.16"}, "1.5")
    first = nat.nat[kubeproxy.svc_chain(s, port, "1.5")][0]
    assert first.endswith(f"-j {kubeproxy.sep_chain(s, port, '172.16.57.16', '1.5')}")
    assert "--probability 0.50000" in first


def test_a_service_without_endpoints_is_rejected_in_the_filter_table():
    port = ServicePort("", 80, 80, "tcp", None)
    s = svc("default", "my-nginx", port)
    old, new = kubeproxy.render((s,), {}, "1.5"), kubeproxy.render((s,), {})
    assert old.filter["KUBE-SERVICES"] == [
        '-m comment --comment "default/my-nginx: has no endpoints" -m tcp -p tcp '
        "-d 192.168.3.22/32 --dport 80 -j REJECT"
    ]
    assert new.filter["KUBE-SERVICES"] == [
        '-m comment --comment "default/my-nginx has no endpoints" -m tcp -p tcp '
        "-d 192.168.3.22 --dport 80 -j REJECT"
    ]
    assert not any("my-nginx" in r for r in new.nat["KUBE-SERVICES"])
