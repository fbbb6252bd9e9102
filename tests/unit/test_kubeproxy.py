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


def test_article_chain_names_for_rbd_rest_api():
    port = ServicePort("", 8080, 8080, "tcp", None)
    s = svc("default", "rbd-rest-api", port, ("a", "b"))
    assert kubeproxy.port_name(s, port) == "default/rbd-rest-api:"
    assert kubeproxy.svc_chain(s, port) == "KUBE-SVC-AU252PRZZQGOERSG"
    assert kubeproxy.sep_chain(s, port, "172.16.99.6") == "KUBE-SEP-I6L4LR53UYF7FORX"
    assert kubeproxy.sep_chain(s, port, "172.16.99.7") == "KUBE-SEP-LBWOKUH4CUTN7XKH"


def test_rules_in_kube_proxy_order():
    port = ServicePort("", 8080, 8080, "tcp", None)
    s = svc("default", "rbd-rest-api", port, ("a", "b"))
    nat = kubeproxy.render((s,), {"a": "172.16.99.6", "b": "172.16.99.7"})
    assert nat.chains["KUBE-SERVICES"] == [
        '-m comment --comment "default/rbd-rest-api: cluster IP" -m tcp -p tcp -d 192.168.3.22 '
        "--dport 8080 -j KUBE-SVC-AU252PRZZQGOERSG",
        '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in '
        'this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
    ]
    assert nat.chains["KUBE-SVC-AU252PRZZQGOERSG"] == [
        '-m comment --comment "default/rbd-rest-api: -> 172.16.99.6:8080" -m statistic --mode '
        "random --probability 0.5000000000 -j KUBE-SEP-I6L4LR53UYF7FORX",
        '-m comment --comment "default/rbd-rest-api: -> 172.16.99.7:8080" '
        "-j KUBE-SEP-LBWOKUH4CUTN7XKH",
    ]
    assert nat.chains["KUBE-SEP-I6L4LR53UYF7FORX"] == [
        '-m comment --comment "default/rbd-rest-api:" -s 172.16.99.6 -j KUBE-MARK-MASQ',
        '-m comment --comment "default/rbd-rest-api:" -m tcp -p tcp -j DNAT '
        "--to-destination 172.16.99.6:8080",
    ]
    assert nat.chains["KUBE-MARK-MASQ"] == ["-j MARK --or-mark 0x4000"]
    assert nat.chains["KUBE-POSTROUTING"] == [
        "-m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-j MARK --xor-mark 0x4000",
        '-m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE '
        "--random-fully",
    ]
    text = nat.restore_text()
    assert text.startswith("*nat\n:KUBE-SERVICES - [0:0]\n") and text.endswith("COMMIT\n")
    assert (
        '-I PREROUTING 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES' in text
    )


def test_three_endpoints_probabilities_and_nodeport():
    port = ServicePort("http", 80, 8080, "tcp", 30080)
    s = svc("default", "web", port, ("a", "b", "c"), kind="NodePort")
    nat = kubeproxy.render((s,), {"a": "10.0.0.1", "b": "10.0.0.2", "c": "10.0.0.3"})
    rules = nat.chains[kubeproxy.svc_chain(s, port)]
    assert "--probability 0.3333333333 " in rules[0]
    assert "--probability 0.5000000000 " in rules[1]
    assert "statistic" not in rules[2]
    ext = kubeproxy.ext_chain(s, port)
    assert nat.chains["KUBE-NODEPORTS"] == [
        f'-m comment --comment "default/web:http" -m tcp -p tcp --dport 30080 -j {ext}'
    ]
    assert nat.chains[ext] == [
        '-m comment --comment "masquerade traffic for default/web:http external destinations" '
        "-j KUBE-MARK-MASQ",
        f"-j {kubeproxy.svc_chain(s, port)}",
    ]
    assert nat.chains["KUBE-SERVICES"][-1].endswith("-j KUBE-NODEPORTS")


def test_client_ip_affinity_uses_recent():
    port = ServicePort("", 80, 8080, "udp", None)
    s = svc("default", "sticky", port, ("a", "b"), affinity="ClientIP")
    nat = kubeproxy.render((s,), {"a": "10.0.0.1", "b": "10.0.0.2"})
    sep_a = kubeproxy.sep_chain(s, port, "10.0.0.1")
    rules = nat.chains[kubeproxy.svc_chain(s, port)]
    assert rules[0].endswith(
        f"-m recent --name {sep_a} --mask 255.255.255.255 --rsource "
        f"--rcheck --seconds 10800 --reap -j {sep_a}"
    )
    assert len(rules) == 4  # two recent checks, then the random split
    assert (
        f"-m recent --name {sep_a} --mask 255.255.255.255 --rsource --set -m udp -p udp -j DNAT"
        in (nat.chains[sep_a][1])
    )
