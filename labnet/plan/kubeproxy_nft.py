"""kube-proxy's nftables mode (--proxy-mode=nftables), rendered as today's release (v1.37)
writes its `ip kube-proxy` table on one node: base chains, the service-ips and
service-nodeports verdict maps, service-, external- and endpoint- chains, affinity sets,
masquerading, the no-endpoint reject and the filter chains.

Follows kubernetes' pkg/proxy/nftables/proxier.go (setupNFTables, syncProxyRules,
writeServiceToEndpointRules) and the layout of its TestOverallNFTablesRules;
tests/goldens/kube-proxy/v1.37-nftables.nft holds the text derived from that code. Pure:
services, endpoint addresses and the node's address in, `nft -f` text out. The node's
address matters here (iptables mode needs none): with --nodeport-addresses unset, the
nftables mode accepts NodePorts only on the node's primary IP (the nodeport-ips set).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from ipaddress import IPv4Network

from ..model import Service, ServicePort
from .kubeproxy import AFFINITY_SECONDS, MASQ_MARK, port_name

TABLE = "ip kube-proxy"
# the API server's --service-cluster-ip-range as one ServiceCIDR: the article's cluster IPs
SERVICE_CIDR = "192.168.3.0/24"
V4_KEY = "ipv4_addr . inet_proto . inet_service : verdict"

SETS = {
    "cluster-ips": '{ type ipv4_addr ; comment "Active ClusterIPs" ; }',
    "nodeport-ips": '{ type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }',
}
MAPS = {
    "firewall-ips": f"{{ type {V4_KEY} ; "
    'comment "destinations that are subject to LoadBalancerSourceRanges" ; }',
    "no-endpoint-nodeports": "{ type inet_proto . inet_service : verdict ; "
    'comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }',
    "no-endpoint-services": f"{{ type {V4_KEY} ; "
    'comment "vmap to drop or reject packets to services with no endpoints" ; }',
    "service-ips": f'{{ type {V4_KEY} ; comment "ClusterIP, ExternalIP and LoadBalancer IP '
    'traffic" ; }',
    "service-nodeports": '{ type inet_proto . inet_service : verdict ; comment "NodePort '
    'traffic" ; }',
}
# nftablesBaseChains: type, hook, priority (dstnat-10 = -110, filter = 0, dstnat, srcnat)
BASE_CHAINS = {
    "filter-prerouting-pre-dnat": ("filter", "prerouting", -110),
    "filter-output-pre-dnat": ("filter", "output", -110),
    "filter-forward": ("filter", "forward", 0),
    "filter-input": ("filter", "input", 0),
    "filter-output": ("filter", "output", 0),
    "nat-output": ("nat", "output", -100),
    "nat-postrouting": ("nat", "postrouting", 100),
    "nat-prerouting": ("nat", "prerouting", -100),
}
REGULAR_CHAINS = (
    "cluster-ips-check",
    "firewall-check",
    "mark-for-masquerade",
    "masquerading",
    "nodeport-endpoints-check",
    "services",
    "service-endpoints-check",
)
REJECT_COMMENT = "helper for @no-endpoint-services / @no-endpoint-nodeports"
NEW = "ct state new"
# nftablesJumpChains, in its order: (from, condition, to)
JUMPS = (
    ("filter-input", NEW, "nodeport-endpoints-check"),
    ("filter-input", NEW, "service-endpoints-check"),
    ("filter-forward", NEW, "service-endpoints-check"),
    ("filter-output", NEW, "service-endpoints-check"),
    ("filter-prerouting-pre-dnat", NEW, "firewall-check"),
    ("filter-output-pre-dnat", NEW, "firewall-check"),
    ("nat-output", "", "services"),
    ("nat-prerouting", "", "services"),
    ("nat-postrouting", "", "masquerading"),
    ("filter-forward", NEW, "cluster-ips-check"),
    ("filter-output", NEW, "cluster-ips-check"),
)
DISPATCH = "ip daddr . meta l4proto . th dport vmap"
NODEPORTS = "ip daddr @nodeport-ips meta l4proto . th dport vmap"


def hash_and_truncate(name: str) -> str:
    """hashAndTruncate: the first 8 characters of base32(sha256(name)), a dash, the name
    (names longer than 240 characters, impossible for IPv4, would be cut)."""
    digest = base64.b32encode(hashlib.sha256(name.encode()).digest()).decode()
    return f"{digest[:8]}-{name}"


def chain_base(svc: Service, port: ServicePort) -> str:
    """servicePortChainNameBase: HASH-namespace/name/protocol/portname (an unnamed port
    leaves the last part empty)."""
    return hash_and_truncate(f"{svc.namespace}/{svc.name}/{port.protocol}/{port.name}")


def endpoint_base(svc: Service, port: ServicePort, ip: str) -> str:
    """servicePortEndpointChainNameBase: ...portname__ip/port."""
    name = f"{svc.namespace}/{svc.name}/{port.protocol}/{port.name}__{ip}/{port.target_port}"
    return hash_and_truncate(name)


def svc_chain(svc: Service, port: ServicePort) -> str:
    return "service-" + chain_base(svc, port)


def ext_chain(svc: Service, port: ServicePort) -> str:
    return "external-" + chain_base(svc, port)


def ep_chain(svc: Service, port: ServicePort, ip: str) -> str:
    return "endpoint-" + endpoint_base(svc, port, ip)


def affinity_set(svc: Service, port: ServicePort, ip: str) -> str:
    return "affinity-" + endpoint_base(svc, port, ip)


@dataclass
class NftTable:
    """The table as `add` commands: the fixed part in the order of upstream's test dump,
    each service port in the order of kube-proxy's transaction (a chain before the rules
    that name it, as `nft -f` needs)."""

    lines: list[str] = field(default_factory=list)
    chains: dict[str, list[str]] = field(default_factory=dict)  # each chain's rules, in order

    def add(self, kind: str, rest: str) -> None:
        line = f"add {kind} {TABLE} {rest}"
        if kind == "element" and line in self.lines:
            return  # one element per key, as ensureElem keeps them (two ports, one cluster IP)
        self.lines.append(line)
        if kind == "chain":
            self.chains.setdefault(rest.split()[0], [])

    def rule(self, chain: str, rule: str) -> None:
        self.add("rule", f"{chain} {rule}")
        self.chains.setdefault(chain, []).append(rule)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _setup(t: NftTable, node_ip: str, service_cidrs: tuple[str, ...]) -> None:
    """setupNFTables: the table, its sets and maps, base and fixed chains and their rules."""
    t.lines.append(f'add table {TABLE} {{ comment "rules for kube-proxy" ; }}')
    for name, spec in SETS.items():
        t.add("set", f"{name} {spec}")
    for name, spec in MAPS.items():
        t.add("map", f"{name} {spec}")
    for name, (kind, hook, prio) in BASE_CHAINS.items():
        t.add("chain", f"{name} {{ type {kind} hook {hook} priority {prio} ; }}")
    for name in REGULAR_CHAINS:
        t.add("chain", name)
    t.add("chain", f'reject-chain {{ comment "{REJECT_COMMENT}" ; }}')
    t.rule(
        "cluster-ips-check",
        'ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"',
    )
    if service_cidrs:
        t.rule(
            "cluster-ips-check",
            f"ip daddr {{ {','.join(service_cidrs)} }} drop "
            'comment "Drop traffic to unallocated ClusterIPs"',
        )
    for src, cond, dst in JUMPS:
        t.rule(src, f"{cond} jump {dst}".strip())
    t.rule("firewall-check", f"{DISPATCH} @firewall-ips")
    t.rule("mark-for-masquerade", f"mark set mark or {MASQ_MARK}")
    t.rule("masquerading", f"mark and {MASQ_MARK} == 0 return")
    t.rule("masquerading", f"mark set mark xor {MASQ_MARK}")
    t.rule("masquerading", "masquerade fully-random")
    t.rule("nodeport-endpoints-check", f"{NODEPORTS} @no-endpoint-nodeports")
    t.rule("reject-chain", "reject")
    t.rule("services", f"{DISPATCH} @service-ips")
    t.rule("services", f"{NODEPORTS} @service-nodeports")
    t.add("element", f"nodeport-ips {{ {node_ip} }}")
    t.rule("service-endpoints-check", f"{DISPATCH} @no-endpoint-services")


def _port(t: NftTable, svc: Service, port: ServicePort, ips: list[str], cluster_cidr: str) -> None:
    """syncProxyRules for one service port (Cluster traffic policies, no LoadBalancer)."""
    proto, key = port.protocol, f"{svc.cluster_ip} . {port.protocol} . {port.port}"
    t.add("element", f"cluster-ips {{ {svc.cluster_ip} }}")
    if not ips:
        comment = f'comment "{port_name(svc, port)}"'
        t.add("element", f"no-endpoint-services {{ {key} {comment} : goto reject-chain }}")
        return
    svc_c = svc_chain(svc, port)
    ext_c = ext_chain(svc, port) if port.node_port is not None else None
    eps = [(ip, ep_chain(svc, port, ip), affinity_set(svc, port, ip)) for ip in ips]
    sticky = svc.affinity == "ClientIP"
    # in the transaction's order: chains, then elements and rules that name them
    for chain in [ep for _, ep, _ in eps] + [svc_c] + ([ext_c] if ext_c else []):
        t.add("chain", chain)
    t.add("element", f"service-ips {{ {key} : goto {svc_c} }}")
    if ext_c:
        t.add("element", f"service-nodeports {{ {proto} . {port.node_port} : goto {ext_c} }}")
    t.rule(svc_c, f"ip daddr {svc.cluster_ip} ip saddr != {cluster_cidr} jump mark-for-masquerade")
    if ext_c:
        t.rule(ext_c, "jump mark-for-masquerade")
        t.rule(ext_c, f"goto {svc_c}")
    if sticky:
        for _, _, aff in eps:
            spec = f"type ipv4_addr ; flags dynamic,timeout ; timeout {AFFINITY_SECONDS}s ;"
            t.add("set", f"{aff} {{ {spec} }}")
        for _, ep, aff in eps:
            t.rule(svc_c, f"ip saddr @{aff} goto {ep}")
    vmap = " , ".join(f"{i} : goto {ep}" for i, (_, ep, _) in enumerate(eps))
    t.rule(svc_c, f"numgen random mod {len(eps)} vmap {{ {vmap} }}")
    for ip, ep, aff in eps:
        t.rule(ep, f"ip saddr {ip} jump mark-for-masquerade")
        if sticky:
            t.rule(ep, f"update @{aff} {{ ip saddr }}")
        t.rule(ep, f"meta l4proto {proto} dnat to {ip}:{port.target_port}")


def render(
    services: tuple[Service, ...],
    pod_ips: dict[str, str],
    node_ip: str,
    cluster_cidr: IPv4Network | str = "172.16.0.0/16",
    service_cidrs: tuple[str, ...] = (SERVICE_CIDR,),
) -> NftTable:
    """The `ip kube-proxy` table kube-proxy's nftables mode writes on the node at `node_ip`
    after its first (full) sync. Endpoints in EndpointSliceCache's order ("ip:port")."""
    t = NftTable()
    _setup(t, node_ip, service_cidrs)
    for svc in services:
        for port in svc.ports:
            ips = [pod_ips[e] for e in svc.endpoints]
            ips.sort(key=lambda ip, p=port: f"{ip}:{p.target_port}")
            _port(t, svc, port, ips, str(cluster_cidr))
    return t
