"""kube-proxy's iptables mode, rendered exactly as a release writes its tables.

Two layouts: the article's (v1.5, early 2017) and today's (v1.37). Chain names, comments,
rule order and probabilities follow kubernetes' pkg/proxy/iptables/proxier.go at those
releases; tests/goldens/kube-proxy holds the texts derived from that code, which the lab
tests compare with a live node. Pure: services and endpoint addresses in, iptables-restore
text out. Services come in topology order (kube-proxy walks a Go map: any order is real).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from ipaddress import IPv4Network

from ..model import Service, ServicePort

MASQ_MARK = "0x00004000"  # fmt.Sprintf("%#08x", 1<<14), as NewProxier prints it
AFFINITY_SECONDS = 10800  # kube-proxy's default ClientIP timeout (3 h)


def chain_hash(text: str) -> str:
    """First 16 characters of base32(sha256(text)): kube-proxy's portProtoHash."""
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def port_name(svc: Service, port: ServicePort, era: str = "today") -> str:
    """servicePortName: `ns/name:port`; an unnamed port is `ns/name:` in v1.5 and `ns/name`
    today (fmtPortName), which changes its chains' hashes."""
    if era == "1.5" or port.name:
        return f"{svc.full_name}:{port.name}"
    return svc.full_name


def svc_chain(svc: Service, port: ServicePort, era: str = "today") -> str:
    return "KUBE-SVC-" + chain_hash(port_name(svc, port, era) + port.protocol)


def ext_chain(svc: Service, port: ServicePort, era: str = "today") -> str:
    return "KUBE-EXT-" + chain_hash(port_name(svc, port, era) + port.protocol)


def sep_chain(svc: Service, port: ServicePort, ip: str, era: str = "today") -> str:
    return "KUBE-SEP-" + chain_hash(
        port_name(svc, port, era) + port.protocol + f"{ip}:{port.target_port}"
    )


def probability(i: int, n: int, era: str = "today") -> str:
    """Endpoint i of n is taken with probability 1/(n-i): %0.5f in v1.5, %0.10f today."""
    return f"{1.0 / (n - i):0.5f}" if era == "1.5" else f"{1.0 / (n - i):0.10f}"


def _q(text: str) -> str:
    return f'"{text}"' if " " in text else text


@dataclass
class Tables:
    """Chains (declared in order) with their rules, and the jumps from built-in chains
    kube-proxy prepends, per table."""

    nat: dict[str, list[str]] = field(default_factory=dict)
    filter: dict[str, list[str]] = field(default_factory=dict)
    jumps: dict[str, list[str]] = field(default_factory=lambda: {"nat": [], "filter": []})

    @property
    def chains(self) -> dict[str, list[str]]:
        """The nat table's chains (what `inv rules` and the path walk read)."""
        return self.nat

    def restore_text(self) -> str:
        """iptables-restore --noflush input: our chains declared (so re-applying resets them),
        their rules, then the jumps from the built-in chains (`-I CHAIN 1`)."""
        lines = []
        for table in ("nat", "filter"):
            chains = getattr(self, table)
            if not chains and not self.jumps[table]:
                continue
            lines.append(f"*{table}")
            lines += [f":{c} - [0:0]" for c in chains]
            for chain, rules in chains.items():
                lines += [f"-A {chain} {r}" for r in rules]
            lines += [f"-I {j}" for j in self.jumps[table]]
            lines.append("COMMIT")
        return "\n".join(lines) + "\n"


NatTable = Tables


def _add(chains: dict[str, list[str]], chain: str, rule: str) -> None:
    chains.setdefault(chain, []).append(rule)


def _chance(i: int, n: int, era: str) -> str:
    """The random split: each endpoint but the last is taken with probability 1/(n-i)."""
    return (
        f"-m statistic --mode random --probability {probability(i, n, era)} " if i < n - 1 else ""
    )


def _rcheck(sep: str) -> str:
    """ClientIP affinity: a client seen by this endpoint within the timeout goes back to it."""
    return f"-m recent --name {sep} --rcheck --seconds {AFFINITY_SECONDS} --reap -j {sep}"


def _sorted_ips(ips: list[str], port: ServicePort) -> list[str]:
    """kube-proxy orders endpoints by their "ip:port" string."""
    return sorted(ips, key=lambda ip: f"{ip}:{port.target_port}")


def _v15_port(t: Tables, svc: Service, port: ServicePort, ips: list[str]) -> None:
    """syncProxyRules of v1.5 for one service port (tests/goldens/kube-proxy/v1.5.8.rules)."""
    era, proto = "1.5", f"-m {port.protocol} -p {port.protocol}"
    spn, svc_c = port_name(svc, port, era), svc_chain(svc, port, era)
    c = f"-m comment --comment {_q(spn)}"
    t.nat.setdefault(svc_c, [])
    _add(
        t.nat,
        "KUBE-SERVICES",
        f'-m comment --comment "{spn} cluster IP" {proto} -d {svc.cluster_ip}/32 '
        f"--dport {port.port} -j {svc_c}",
    )
    if port.node_port is not None:
        for target in ("KUBE-MARK-MASQ", svc_c):
            _add(t.nat, "KUBE-NODEPORTS", f"{c} {proto} --dport {port.node_port} -j {target}")
    if not ips:
        _add(
            t.filter,
            "KUBE-SERVICES",
            f'-m comment --comment "{spn} has no endpoints" {proto} -d {svc.cluster_ip}/32 '
            f"--dport {port.port} -j REJECT",
        )
        return
    seps = [(ip, sep_chain(svc, port, ip, era)) for ip in ips]
    sticky = svc.affinity == "ClientIP"
    for _, sep in seps:
        t.nat.setdefault(sep, [])
    if sticky:
        for _, sep in seps:
            _add(t.nat, svc_c, f"{c} {_rcheck(sep)}")
    for i, (ip, sep) in enumerate(seps):
        _add(t.nat, svc_c, f"{c} {_chance(i, len(seps), era)}-j {sep}")
        _add(t.nat, sep, f"{c} -s {ip}/32 -j KUBE-MARK-MASQ")
        setter = f"-m recent --name {sep} --set " if sticky else ""
        _add(t.nat, sep, f"{c} {setter}{proto} -j DNAT --to-destination {ip}:{port.target_port}")


def _today_port(
    t: Tables, svc: Service, port: ServicePort, ips: list[str], cluster_cidr: str
) -> None:
    """syncProxyRules of today's kube-proxy for one service port, on a node whose kernel
    has no nfacct (tests/goldens/kube-proxy/v1.37.rules)."""
    proto = f"-m {port.protocol} -p {port.protocol}"
    spn, svc_c = port_name(svc, port), svc_chain(svc, port)
    dest = f"{proto} -d {svc.cluster_ip} --dport {port.port}"
    if not ips:  # nothing in nat: the filter table rejects
        _add(
            t.filter,
            "KUBE-SERVICES",
            f'-m comment --comment "{spn} has no endpoints" {dest} -j REJECT',
        )
        return
    ext = ext_chain(svc, port) if port.node_port is not None else None
    if ext:
        t.nat.setdefault(ext, [])
    t.nat.setdefault(svc_c, [])
    seps = [(ip, sep_chain(svc, port, ip)) for ip in ips]
    for _, sep in seps:
        t.nat.setdefault(sep, [])
    _add(t.nat, "KUBE-SERVICES", f'-m comment --comment "{spn} cluster IP" {dest} -j {svc_c}')
    _add(
        t.nat,
        svc_c,
        f'-m comment --comment "{spn} cluster IP" {dest} ! -s {cluster_cidr} -j KUBE-MARK-MASQ',
    )
    if ext:
        _add(
            t.nat,
            "KUBE-NODEPORTS",
            f"-m comment --comment {_q(spn)} {proto} --dport {port.node_port} -j {ext}",
        )
        _add(
            t.nat,
            ext,
            f'-m comment --comment "masquerade traffic for {spn} external destinations" '
            "-j KUBE-MARK-MASQ",
        )
        _add(t.nat, ext, f"-j {svc_c}")
    sticky = svc.affinity == "ClientIP"

    def to(ip: str) -> str:
        return f'-m comment --comment "{spn} -> {ip}:{port.target_port}"'

    if sticky:
        for ip, sep in seps:
            _add(t.nat, svc_c, f"{to(ip)} {_rcheck(sep)}")
    for i, (ip, sep) in enumerate(seps):
        _add(t.nat, svc_c, f"{to(ip)} {_chance(i, len(seps), 'today')}-j {sep}")
    c = f"-m comment --comment {_q(spn)}"
    for ip, sep in seps:
        _add(t.nat, sep, f"{c} -s {ip} -j KUBE-MARK-MASQ")
        setter = f"-m recent --name {sep} --set " if sticky else ""
        _add(t.nat, sep, f"{c} {setter}{proto} -j DNAT --to-destination {ip}:{port.target_port}")


PORTALS = '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'
POSTROUTING = '-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING'
NODEPORTS_LAST = (
    '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in '
    'this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS'
)
# the nat table's jumps from built-in chains: the same in every release
NAT_JUMPS = (
    f"OUTPUT 1 {PORTALS}",
    f"PREROUTING 1 {PORTALS}",
    f"POSTROUTING 1 {POSTROUTING}",
)
NAT_CHAINS = ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ")


def _v15(services: tuple[Service, ...], pod_ips: dict[str, str]) -> Tables:
    t = Tables({c: [] for c in NAT_CHAINS}, {"KUBE-SERVICES": []})
    _add(
        t.nat,
        "KUBE-POSTROUTING",
        '-m comment --comment "kubernetes service traffic requiring SNAT" '
        f"-m mark --mark {MASQ_MARK}/{MASQ_MARK} -j MASQUERADE",
    )
    _add(t.nat, "KUBE-MARK-MASQ", f"-j MARK --set-xmark {MASQ_MARK}/{MASQ_MARK}")
    for svc in services:
        for port in svc.ports:
            _v15_port(t, svc, port, _sorted_ips([pod_ips[e] for e in svc.endpoints], port))
    _add(t.nat, "KUBE-SERVICES", NODEPORTS_LAST)
    t.jumps["nat"] = list(NAT_JUMPS)
    t.jumps["filter"] = [f"OUTPUT 1 {PORTALS}"]
    return t


FILTER_CHAINS = (
    "KUBE-SERVICES",
    "KUBE-EXTERNAL-SERVICES",
    "KUBE-FORWARD",
    "KUBE-NODEPORTS",
    "KUBE-PROXY-FIREWALL",
    "KUBE-FIREWALL",
)
NEW = "-m conntrack --ctstate NEW"
_FILTER_JUMPS = (
    f'INPUT 1 {NEW} -m comment --comment "kubernetes externally-visible service portals" '
    "-j KUBE-EXTERNAL-SERVICES",
    f'FORWARD 1 {NEW} -m comment --comment "kubernetes externally-visible service portals" '
    "-j KUBE-EXTERNAL-SERVICES",
    'INPUT 1 -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
    f"FORWARD 1 {NEW} {PORTALS}",
    f"OUTPUT 1 {NEW} {PORTALS}",
    'FORWARD 1 -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
    f'INPUT 1 {NEW} -m comment --comment "kubernetes load balancer firewall" '
    "-j KUBE-PROXY-FIREWALL",
    f'OUTPUT 1 {NEW} -m comment --comment "kubernetes load balancer firewall" '
    "-j KUBE-PROXY-FIREWALL",
    f'FORWARD 1 {NEW} -m comment --comment "kubernetes load balancer firewall" '
    "-j KUBE-PROXY-FIREWALL",
    "INPUT 1 -j KUBE-FIREWALL",
    "OUTPUT 1 -j KUBE-FIREWALL",
)


def _today(services: tuple[Service, ...], pod_ips: dict[str, str], cluster_cidr: str) -> Tables:
    t = Tables({c: [] for c in NAT_CHAINS}, {c: [] for c in FILTER_CHAINS})
    _add(
        t.filter,
        "KUBE-FIREWALL",
        '-m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 '
        "! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
    )
    _add(t.nat, "KUBE-POSTROUTING", f"-m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN")
    _add(t.nat, "KUBE-POSTROUTING", f"-j MARK --xor-mark {MASQ_MARK}")
    _add(
        t.nat,
        "KUBE-POSTROUTING",
        '-m comment --comment "kubernetes service traffic requiring SNAT" '
        "-j MASQUERADE --random-fully",
    )
    _add(t.nat, "KUBE-MARK-MASQ", f"-j MARK --or-mark {MASQ_MARK}")
    for svc in services:
        for port in svc.ports:
            ips = _sorted_ips([pod_ips[e] for e in svc.endpoints], port)
            _today_port(t, svc, port, ips, cluster_cidr)
    _add(t.nat, "KUBE-SERVICES", NODEPORTS_LAST)
    for rule in (
        "-m conntrack --ctstate INVALID -j DROP",
        '-m comment --comment "kubernetes forwarding rules" '
        f"-m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT",
        '-m comment --comment "kubernetes forwarding conntrack rule" '
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    ):
        _add(t.filter, "KUBE-FORWARD", rule)
    t.jumps["nat"] = list(NAT_JUMPS)
    t.jumps["filter"] = list(_FILTER_JUMPS)
    return t


def render(
    services: tuple[Service, ...],
    pod_ips: dict[str, str],
    era: str = "today",
    cluster_cidr: IPv4Network | str = "172.16.0.0/16",
) -> Tables:
    """The tables kube-proxy of `era` ("1.5" or "today") writes on every node."""
    if era == "1.5":
        return _v15(services, pod_ips)
    return _today(services, pod_ips, str(cluster_cidr))
