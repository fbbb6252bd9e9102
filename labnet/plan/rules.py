"""Rule sets as their owners write them (iptables-restore input): docker's bridge rules,
flanneld's --ip-masq rules, and kube-proxy's nat table on every node (or, in its nftables
mode, its `ip kube-proxy` table as `nft -f` input)."""

from __future__ import annotations

from ..model import Topology, versions
from . import kubeproxy_nft
from .kubeproxy import render
from .objects import Rules, netns_name


def docker_rules(release: versions.Docker, subnet: str, bridge: str, flannel_ipmasq: bool) -> str:
    """What dockerd writes for its bridge (iptables-restore text, tests/goldens/docker). With
    FLANNEL_IPMASQ=true, mk-docker-opts.sh gives docker --ip-masq=false: no MASQUERADE."""
    if not release.rules:
        return ""
    # the masquerade and its "skip DNAT" rule come together, only with --ip-masq
    masq = [
        f"-I POSTROUTING 1 -s {subnet} ! -o {bridge} -j MASQUERADE",
        f"-I DOCKER 1 -i {bridge} -j RETURN",
    ]
    # 1.13 sets DROP when it finds forwarding off, as on a node that just booted
    policy = [":FORWARD DROP [0:0]"] if release.forward_policy == "DROP" else []
    return (
        "\n".join(
            [
                "*nat",
                ":DOCKER - [0:0]",
                *([] if flannel_ipmasq else masq),
                "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
                "-A OUTPUT -m addrtype --dst-type LOCAL -j DOCKER ! --dst 127.0.0.0/8",
                "COMMIT",
                "*filter",
                *policy,
                ":DOCKER - [0:0]",
                ":DOCKER-ISOLATION - [0:0]",
                "-I DOCKER-ISOLATION 1 -j RETURN",
                f"-I FORWARD 1 -i {bridge} -o {bridge} -j ACCEPT",
                f"-I FORWARD 1 -i {bridge} ! -o {bridge} -j ACCEPT",
                f"-I FORWARD 1 -o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                f"-I FORWARD 1 -o {bridge} -j DOCKER",
                "-I FORWARD 1 -j DOCKER-ISOLATION",
                "COMMIT",
            ]
        )
        + "\n"
    )


def flannel_rules(release: versions.Flannel, network: str, subnet: str, ipmasq: bool) -> str:
    """What flanneld writes (iptables-restore text): --ip-masq's POSTROUTING rules and the
    FORWARD rules of v0.9.1+, each release's set in its order (tests/goldens/flannel)."""
    nat = _flannel_masq(release.ipmasq, network, subnet) if ipmasq else []
    fwd = _flannel_forward(release, network) if release.forward else []
    text = ""
    if nat:
        text += "*nat\n" + "".join(f"{r}\n" for r in nat) + "COMMIT\n"
    if fwd:
        text += "*filter\n" + "".join(f"{r}\n" for r in fwd) + "COMMIT\n"
    return text


def _flannel_masq(kind: str, net: str, subnet: str) -> list[str]:
    if kind == "chain":
        c = '-m comment --comment "flanneld masq"'
        return [
            ":FLANNEL-POSTRTG - [0:0]",
            f"-A POSTROUTING {c} -j FLANNEL-POSTRTG",
            f"-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 {c} -j RETURN",
            f"-A FLANNEL-POSTRTG -s {subnet} -d {net} {c} -j RETURN",
            f"-A FLANNEL-POSTRTG -s {net} -d {subnet} {c} -j RETURN",
            f"-A FLANNEL-POSTRTG ! -s {net} -d {subnet} {c} -j RETURN",
            f"-A FLANNEL-POSTRTG -s {net} ! -d 224.0.0.0/4 {c} -j MASQUERADE --random-fully",
            f"-A FLANNEL-POSTRTG ! -s {net} -d {net} {c} -j MASQUERADE --random-fully",
        ]
    rules = [
        f"-A POSTROUTING -s {net} -d {net} -j RETURN",
        f"-A POSTROUTING -s {net} ! -d 224.0.0.0/4 -j MASQUERADE",
    ]
    if kind == "four":
        rules.append(f"-A POSTROUTING ! -s {net} -d {subnet} -j RETURN")
    return rules + [f"-A POSTROUTING ! -s {net} -d {net} -j MASQUERADE"]


def _flannel_forward(release: versions.Flannel, net: str) -> list[str]:
    if release.ipmasq == "chain":
        c = '-m comment --comment "flanneld forward"'
        return [
            ":FLANNEL-FWD - [0:0]",
            f"-A FORWARD {c} -j FLANNEL-FWD",
            f"-A FLANNEL-FWD -s {net} {c} -j ACCEPT",
            f"-A FLANNEL-FWD -d {net} {c} -j ACCEPT",
        ]
    return [f"-A FORWARD -s {net} -j ACCEPT", f"-A FORWARD -d {net} -j ACCEPT"]


def kube_proxy_rules(topo: Topology, pod_ips: dict[str, str]) -> list[Rules]:
    """The same nat table on every node, as kube-proxy writes it; in nftables mode, each
    node's `ip kube-proxy` table (its nodeport-ips set holds the node's own address)."""
    if not topo.services:
        return []
    if topo.kube_proxy_mode == "nftables":
        return [
            Rules(
                netns_name(topo.name, n.name),
                "kube-proxy",
                kubeproxy_nft.render(
                    topo.services, pod_ips, str(n.address), topo.flannel.network
                ).text(),
                "nft",
            )
            for n in topo.nodes
        ]
    era = topo.versions.kube_proxy.era
    text = render(topo.services, pod_ips, era, topo.flannel.network).restore_text()
    return [Rules(netns_name(topo.name, n.name), "kube-proxy", text) for n in topo.nodes]
