"""kube-proxy's iptables mode, rendered exactly as kube-proxy writes the nat table.

Chain names, comments, rule order and probabilities follow kubernetes'
pkg/proxy/iptables/proxier.go, so `iptables -t nat -nL` in a lab node reads like a real node.
Pure: services and endpoint addresses in, iptables-restore text out.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from ..model import Service, ServicePort

MASQ_MARK = "0x4000"
AFFINITY_SECONDS = 10800  # kube-proxy's default ClientIP timeout (3 h)
PORTALS = "kubernetes service portals"
POSTROUTING = "kubernetes postrouting rules"
NODEPORTS_LAST = "kubernetes service nodeports; NOTE: this must be the last rule in this chain"


def chain_hash(text: str) -> str:
    """First 16 characters of base32(sha256(text)): kube-proxy's portProtoHash."""
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def port_name(svc: Service, port: ServicePort) -> str:
    """servicePortName: ns/name:portname (portname may be empty)."""
    return f"{svc.full_name}:{port.name}"


def svc_chain(svc: Service, port: ServicePort) -> str:
    return "KUBE-SVC-" + chain_hash(port_name(svc, port) + port.protocol)


def ext_chain(svc: Service, port: ServicePort) -> str:
    return "KUBE-EXT-" + chain_hash(port_name(svc, port) + port.protocol)


def sep_chain(svc: Service, port: ServicePort, ip: str) -> str:
    return "KUBE-SEP-" + chain_hash(
        port_name(svc, port) + port.protocol + f"{ip}:{port.target_port}"
    )


def probability(i: int, n: int) -> str:
    """Endpoint i of n is taken with probability 1/(n-i); kube-proxy prints %0.10f."""
    return f"{1.0 / (n - i):0.10f}"


@dataclass
class NatTable:
    chains: dict[str, list[str]]  # chain -> rule specs (without "-A CHAIN")

    def add(self, chain: str, rule: str) -> None:
        self.chains.setdefault(chain, []).append(rule)

    def restore_text(self) -> str:
        """iptables-restore --noflush input: our chains declared (so re-applying resets them),
        then the jumps from the built-in chains, prepended as kube-proxy does."""
        lines = ["*nat"] + [f":{c} - [0:0]" for c in self.chains]
        for chain, rules in self.chains.items():
            lines += [f"-A {chain} {r}" for r in rules]
        lines += [
            f'-I PREROUTING 1 -m comment --comment "{PORTALS}" -j KUBE-SERVICES',
            f'-I OUTPUT 1 -m comment --comment "{PORTALS}" -j KUBE-SERVICES',
            f'-I POSTROUTING 1 -m comment --comment "{POSTROUTING}" -j KUBE-POSTROUTING',
            "COMMIT",
        ]
        return "\n".join(lines) + "\n"


def _match(proto: str) -> str:
    return f"-m {proto} -p {proto}"


def _service_rules(nat: NatTable, svc: Service, port: ServicePort, ips: list[str]) -> None:
    spn, svc_c = port_name(svc, port), svc_chain(svc, port)
    nat.add(
        "KUBE-SERVICES",
        f'-m comment --comment "{spn} cluster IP" {_match(port.protocol)} '
        f"-d {svc.cluster_ip} --dport {port.port} -j {svc_c}",
    )
    if port.node_port is not None:
        ext = ext_chain(svc, port)
        nat.add(
            "KUBE-NODEPORTS",
            f'-m comment --comment "{spn}" {_match(port.protocol)} '
            f"--dport {port.node_port} -j {ext}",
        )
        nat.add(
            ext,
            f'-m comment --comment "masquerade traffic for {spn} external destinations" '
            "-j KUBE-MARK-MASQ",
        )
        nat.add(ext, f"-j {svc_c}")
    nat.chains.setdefault(svc_c, [])
    seps = [(ip, sep_chain(svc, port, ip)) for ip in ips]
    sticky = svc.affinity == "ClientIP"
    recent = "-m recent --name {} --mask 255.255.255.255 --rsource"
    if sticky:
        for ip, sep in seps:
            nat.add(
                svc_c,
                f'-m comment --comment "{spn} -> {ip}:{port.target_port}" '
                f"{recent.format(sep)} --rcheck --seconds {AFFINITY_SECONDS} --reap -j {sep}",
            )
    for i, (ip, sep) in enumerate(seps):
        chance = (
            ""
            if i == len(seps) - 1
            else f"-m statistic --mode random --probability {probability(i, len(seps))} "
        )
        nat.add(svc_c, f'-m comment --comment "{spn} -> {ip}:{port.target_port}" {chance}-j {sep}')
    for ip, sep in seps:
        nat.add(sep, f'-m comment --comment "{spn}" -s {ip} -j KUBE-MARK-MASQ')
        setter = f"{recent.format(sep)} --set " if sticky else ""
        nat.add(
            sep,
            f'-m comment --comment "{spn}" {setter}{_match(port.protocol)} '
            f"-j DNAT --to-destination {ip}:{port.target_port}",
        )


def render(services: tuple[Service, ...], pod_ips: dict[str, str]) -> NatTable:
    """The nat table kube-proxy writes on every node for these services."""
    nat = NatTable(
        {c: [] for c in ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ")}
    )
    nat.add("KUBE-POSTROUTING", f"-m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN")
    nat.add("KUBE-POSTROUTING", f"-j MARK --xor-mark {MASQ_MARK}")
    nat.add(
        "KUBE-POSTROUTING",
        '-m comment --comment "kubernetes service traffic requiring SNAT" '
        "-j MASQUERADE --random-fully",
    )
    nat.add("KUBE-MARK-MASQ", f"-j MARK --or-mark {MASQ_MARK}")
    for svc in services:
        ips = [pod_ips[ep] for ep in svc.endpoints]
        for port in svc.ports:
            _service_rules(nat, svc, port, ips)
    nat.add(
        "KUBE-SERVICES",
        f'-m comment --comment "{NODEPORTS_LAST}" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
    )
    return nat
