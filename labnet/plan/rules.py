"""Rule sets as their owners write them (iptables-restore input): docker's bridge rules,
flanneld's --ip-masq rules, and kube-proxy's nat table on every node."""

from __future__ import annotations

from ..model import Topology
from .kubeproxy import render
from .objects import Rules, netns_name


def docker_rules(subnet: str, bridge: str) -> str:
    """What dockerd writes for its bridge: masquerade what leaves it, forward what it sends."""
    return (
        "*nat\n"
        f"-A POSTROUTING -s {subnet} ! -o {bridge} -j MASQUERADE\n"
        "COMMIT\n"
        "*filter\n"
        f"-A FORWARD -o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
        f"-A FORWARD -i {bridge} ! -o {bridge} -j ACCEPT\n"
        f"-A FORWARD -i {bridge} -o {bridge} -j ACCEPT\n"
        "COMMIT\n"
    )


def flannel_ipmasq_rules(network: str, subnet: str) -> str:
    """flanneld --ip-masq (network/ipmasq.go): no NAT inside the flannel network."""
    return (
        "*nat\n"
        f"-A POSTROUTING -s {network} -d {network} -j RETURN\n"
        f"-A POSTROUTING -s {network} ! -d 224.0.0.0/4 -j MASQUERADE\n"
        f"-A POSTROUTING ! -s {network} -d {subnet} -j RETURN\n"
        f"-A POSTROUTING ! -s {network} -d {network} -j MASQUERADE\n"
        "COMMIT\n"
    )


def kube_proxy_rules(topo: Topology, pod_ips: dict[str, str]) -> list[Rules]:
    """The same nat table on every node, as kube-proxy writes it."""
    if not topo.services:
        return []
    text = render(topo.services, pod_ips).restore_text()
    return [Rules(netns_name(topo.name, n.name), "kube-proxy", text) for n in topo.nodes]
