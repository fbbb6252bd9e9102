"""The kernel's filters in a lost packet's way: iptables rules walked for one packet the way
the kernel walks them, br_netfilter and reverse-path filtering, and the causes they give at
the failing hop's step (diagnose.Site): a DROP or REJECT rule, a DROP policy with no rule
accepting the flow, a missing DNAT (kube-proxy's rules gone) or MASQUERADE, br_netfilter off
on a node, strict rp_filter where the route back leaves by another link.

A packet here is predicted, not captured, so some matches cannot be decided (a random
split, a recent list, a physdev, an unknown conntrack state). A chain is walked twice,
once with such a match taken as true and once as false; a drop counts only when both walks
reach it, a DNAT or MASQUERADE is there when either walk reaches it."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network
from typing import TYPE_CHECKING

from labnet.kernel import iptables

if TYPE_CHECKING:
    from labnet.plan.path import Hop
    from labnet.probe.diagnose import Site

# targets after which the walk goes on to the next rule
CONTINUE = {"MARK", "CONNMARK", "LOG", "NFLOG", "TRACE", "CT", "NOTRACK", "CHECKSUM", "TCPMSS"}
# modules this walker knows (others make a rule's match unknown); of recent, only --set
KNOWN = {"tcp", "udp", "icmp", "conntrack", "state", "comment", "addrtype", "mark", "multiport"}
KNOWN |= {"recent"}
PROTOS = {"1": "icmp", "6": "tcp", "17": "udp"}
MAX_DEPTH = 32


@dataclass
class Packet:
    src: str
    dst: str
    proto: str  # icmp | tcp | udp
    sport: int | None = None
    dport: int | None = None
    in_if: str | None = None
    out_if: str | None = None
    state: str | None = "NEW"  # conntrack's state for it; None when not known
    local: frozenset[str] = field(default_factory=frozenset)  # its namespace's addresses
    mark: int = 0

    def describe(self) -> str:
        port = f":{self.dport}" if self.dport else ""
        way = (f" from {self.in_if}" if self.in_if else "") + (
            f" to {self.out_if}" if self.out_if else ""
        )
        return f"{self.proto} {self.src} -> {self.dst}{port}{way}"


@dataclass(frozen=True)
class Hit:
    chain: str
    target: str  # ACCEPT, DROP, REJECT, DNAT, MASQUERADE, RETURN, ... or the policy's
    rule: tuple[str, ...] | None  # None: the built-in chain's policy

    def text(self) -> str:
        if self.rule is None:
            return f"the {self.chain} policy {self.target}"
        return f"`-A {self.chain} {shlex.join(self.rule)}`"


def policies(save_text: str) -> dict[str, str]:
    """Built-in chain -> its policy, from iptables-save text (`:FORWARD DROP [0:0]`)."""
    out = {}
    for line in save_text.splitlines():
        words = line[1:].split() if line.startswith(":") else []
        if len(words) >= 2 and words[1] != "-":
            out[words[0]] = words[1]
    return out


def split(rule: list[str]) -> tuple[list[tuple[bool, str, str, list[str]]], str | None, bool]:
    """A rule's argv -> its matches (negated, module, option, values), its target, and
    whether it is a goto (-g)."""
    matches: list[tuple[bool, str, str, list[str]]] = []
    module, neg, i = "", False, 0
    while i < len(rule):
        word = rule[i]
        if word == "!":
            neg, i = True, i + 1
            continue
        if word in ("-j", "-g"):
            return matches, (rule[i + 1] if i + 1 < len(rule) else None), word == "-g"
        j = i + 1
        while j < len(rule) and rule[j] != "!" and not rule[j].startswith("-"):
            j += 1
        values = rule[i + 1 : j]
        if word == "-m":
            module = values[0] if values else ""
        matches.append((neg, module, word, values))
        neg, i = False, j
    return matches, None, False


def _ports(spec: str, port: int | None) -> bool | None:
    if port is None:
        return None
    for part in spec.split(","):
        lo, _, hi = part.partition(":")
        if int(lo or 0) <= port <= int(hi or lo or 65535):
            return True
    return False


def _iface(spec: str, name: str | None) -> bool:
    if name is None:
        return False
    return name.startswith(spec[:-1]) if spec.endswith("+") else name == spec


def _test(p: Packet, module: str, opt: str, values: list[str]) -> bool | None:
    v = values[0] if values else ""
    if opt == "-m":
        return True if v in KNOWN else None
    if module == "recent":  # --set records the source and matches; a look-up is unknown
        return None if opt in ("--rcheck", "--update") else True
    if opt in ("-s", "-d"):
        return IPv4Address(p.src if opt == "-s" else p.dst) in IPv4Network(v, strict=False)
    if opt in ("-i", "-o"):
        return _iface(v, p.in_if if opt == "-i" else p.out_if)
    if opt == "-p":
        return v == "all" or PROTOS.get(v, v) == p.proto
    if opt in ("--dport", "--dports", "--destination-port"):
        return _ports(v, p.dport)
    if opt in ("--sport", "--sports", "--source-port"):
        return _ports(v, p.sport)
    if opt in ("--ctstate", "--state"):
        return None if p.state is None else p.state in v.split(",")
    if opt == "--comment":
        return True
    if opt in ("--dst-type", "--src-type") and v == "LOCAL":
        return (p.dst if opt == "--dst-type" else p.src) in p.local
    if opt == "--mark":
        value, _, mask = v.partition("/")
        return p.mark & int(mask or "0xffffffff", 0) == int(value, 0)
    return None


def matches(p: Packet, rule: list[str]) -> bool | None:
    """True, False, or None when the rule holds a match this walker cannot decide."""
    result: bool | None = True
    for neg, module, opt, values in split(rule)[0]:
        ok = _test(p, module, opt, values)
        if ok is None:
            result = None
        elif ok == neg:
            return False
    return result


def walk(chains: dict, chain: str, p: Packet, unknown: bool, depth: int = 0) -> Hit | None:
    """The rule that decides the packet in `chain` and the chains it jumps to; None when it
    falls off the end. MARK rules set the packet's mark as they pass."""
    for rule in chains.get(chain, []):
        target, goto = split(rule)[1:]
        ok = matches(p, rule)
        if not (unknown if ok is None else ok) or target is None:
            continue
        if target == "MARK":
            value, _, mask = (iptables.option(rule, "--set-xmark") or "0/0").partition("/")
            p.mark = p.mark & ~int(mask or "0xffffffff", 0) ^ int(value, 0)
            continue
        if target in CONTINUE:
            continue
        if target in chains and depth < MAX_DEPTH:
            hit = walk(chains, target, p, unknown, depth + 1)
            if hit is not None and hit.target != "RETURN":
                return hit
            if goto:
                return Hit(chain, "RETURN", tuple(rule))
            continue
        return Hit(chain, target, tuple(rule))
    return None


def decide(save_text: str, chain: str, p: Packet) -> list[Hit]:
    """What the two walks of a built-in chain reach (a RETURN or the end: its policy)."""
    chains, pol = iptables.parse_save(save_text), policies(save_text)
    hits = []
    for unknown in (False, True):
        hit = walk(chains, chain, replace(p), unknown)
        if hit is None or hit.target == "RETURN":
            hit = Hit(chain, pol.get(chain, "ACCEPT"), None)
        hits.append(hit)
    return hits


# ---------------------------------------------------------------- causes, from a table's text


def filter_cause(ns: str, save_text: str, chain: str, p: Packet) -> str:
    """A DROP or REJECT both walks of the filter chain reach, named with its rule."""
    hits = decide(save_text, chain, p)
    if any(h.target not in ("DROP", "REJECT") for h in hits):
        return ""
    hit = hits[0]
    if hit.rule is None:
        return f"the {chain} policy in {ns} is DROP and no rule accepts {p.describe()}"
    return f"iptables in {ns} {'rejects' if hit.target == 'REJECT' else 'drops'} " + (
        f"{p.describe()}: filter {hit.text()}"
    )


def nat_reaches(save_text: str, chain: str, p: Packet, targets: set[str]) -> Hit | None:
    """The first of `targets` that either walk of a nat chain reaches."""
    return next((h for h in decide(save_text, chain, p) if h.target in targets), None)


def dnat_cause(ns: str, save_text: str, chain: str, p: Packet) -> str:
    """kube-proxy's DNAT for a service flow: its KUBE-SERVICES rule, and a walk of the nat
    chain the flow enters by (PREROUTING, or OUTPUT from the node itself)."""
    rules = iptables.parse_save(save_text).get("KUBE-SERVICES", [])
    if not [r for r in rules if "--dst-type" not in r and matches(p, r) is not False]:
        return (
            f"no rule in {ns}'s KUBE-SERVICES matches {p.proto} {p.dst}:{p.dport}: nothing "
            "rewrites the destination to an endpoint (no DNAT; are kube-proxy's rules gone?)"
        )
    if nat_reaches(save_text, chain, p, {"DNAT"}) is None:
        return (
            f"{ns}'s nat {chain} does not lead {p.describe()} to a DNAT (KUBE-SERVICES has "
            "its rule, but nothing jumps there or its endpoints' chains are gone)"
        )
    return ""


def masquerade_cause(ns: str, save_text: str, first: Packet, chain: str, after: str) -> str:
    """The source should have been rewritten to `after`: the nat chain the flow enters by
    (its marks, its DNAT), then POSTROUTING."""
    p = replace(first)
    for unknown in (False, True):  # a mark PREROUTING sets (KUBE-MARK-MASQ) reaches POSTROUTING
        walk(iptables.parse_save(save_text), chain, p, unknown)
    dnat = nat_reaches(save_text, chain, first, {"DNAT"})
    if dnat is not None:
        to = iptables.option(list(dnat.rule or ()), "--to-destination") or ""
        host, _, port = to.partition(":")
        p.dst, p.dport = host or p.dst, int(port) if port else p.dport
    hit = nat_reaches(save_text, "POSTROUTING", p, {"MASQUERADE", "SNAT"})
    if hit is None:
        return (
            f"no MASQUERADE rule in {ns}'s nat POSTROUTING matches {p.describe()}: the source "
            f"is not rewritten to {after}"
        )
    return ""


# ---------------------------------------------------------------- at the failing hop's step


def _packet(s: Site, h: Hop, src: str, dst: str, **kw) -> Packet:
    ports = {"sport": h.port} if h.reply else {"dport": h.port}
    conntrack = "ESTABLISHED" if h.reply else "NEW"
    local = frozenset(s.k.addresses(s.hop.netns))
    return Packet(src, dst, h.proto, **ports, state=conntrack, local=local, **kw)


def _filter_steps(s: Site) -> list[tuple[str, Packet]]:
    """The filter chains the step passes, each with the packet as that chain sees it
    (after PREROUTING's DNAT, before POSTROUTING's MASQUERADE)."""
    h, p, e = s.hop, s.prev, s.entry
    if e == "routed":
        return [("FORWARD", _packet(s, h, p.src, h.dst, in_if=p.ifname, out_if=h.ifname))]
    if e == "origin":
        return [("OUTPUT", _packet(s, h, h.src, h.dst, out_if=h.ifname))]
    if e == "delivered":
        return [
            ("INPUT", _packet(s, p, p.src, p.dst, in_if=p.ifname)),
            ("OUTPUT", _packet(s, h, h.src, h.dst, out_if=h.ifname)),
        ]
    if e in ("encap", "decap"):  # the outer packet: vxlan's UDP, sent or received by the node
        o, way = (h.outer, {"out_if": h.ifname}) if e == "encap" else (p.outer, {"in_if": p.ifname})
        if o is None:
            return []
        local = frozenset(s.k.addresses(h.netns))
        udp = Packet(o.src, o.dst, "udp", dport=o.port, state=None, local=local, **way)
        return [("OUTPUT" if e == "encap" else "INPUT", udp)]
    iface = s.m.ifaces.get((h.netns, h.ifname))
    if e == "bridged" and iface and iface.master:  # br_netfilter: the bridge is in and out
        if s.k.sysctl(h.netns, "net/bridge/bridge-nf-call-iptables") == 1:
            br = iface.master
            return [("FORWARD", _packet(s, h, p.src, h.dst, in_if=br, out_if=br))]
    return []


def filter_check(s: Site) -> str | None:
    """The filter table: a DROP or REJECT rule, or a DROP policy, on the step's chains."""
    steps = _filter_steps(s)
    if not steps:
        return None
    ns = s.hop.netns
    for chain, pkt in steps:
        reason = filter_cause(ns, s.k.rules(ns, "filter"), chain, pkt)
        if reason:
            return reason
    return ""


def nat_check(s: Site) -> str | None:
    """MASQUERADE where the hop expects a rewritten source; kube-proxy's DNAT where the
    flow meets its service's rules. In kube-proxy's nftables mode a service flow's DNAT and
    masquerade are in the `ip kube-proxy` table, which these iptables walks do not read."""
    h, p = s.hop, s.prev
    if s.m.topo.kube_proxy_mode == "nftables" and any(e.kind == "dnat" for e in s.nat):
        return None
    if "MASQUERADE" in h.note:
        ns = h.netns
        into = p.ifname if p and p.netns == ns and p.direction == "in" else None
        dnat = next((e for e in s.nat if e.netns == ns and e.kind == "dnat"), None)
        pkt = _packet(s, h, p.src if p else h.src, h.dst, in_if=into, out_if=h.ifname)
        if dnat:
            pkt.dst, pkt.dport = dnat.before
        chain = "PREROUTING" if into else "OUTPUT"
        return masquerade_cause(ns, s.k.rules(ns, "nat"), pkt, chain, h.src)
    dnat = next((e for e in s.nat if e.kind == "dnat"), None)
    if dnat is None or h.reply or dnat.netns not in (h.netns, p.netns if p else None):
        return None
    ns = dnat.netns
    into = next((x.ifname for x in (h, p) if x and x.netns == ns and x.direction == "in"), None)
    pkt = _packet(s, h, (p or h).src, dnat.before[0], in_if=into)
    pkt.dport = dnat.before[1]
    chain = "PREROUTING" if into else "OUTPUT"
    return dnat_cause(ns, s.k.rules(ns, "nat"), chain, pkt)


def br_netfilter_check(s: Site) -> str | None:
    """kube-proxy needs bridged frames to pass iptables (the lab sets it on every node)."""
    if not any(svc.full_name == s.check.target for svc in s.m.topo.services) or not s.nodes():
        return None
    for ns in s.nodes():
        if s.k.sysctl(ns, "net/bridge/bridge-nf-call-iptables") == 0:
            return (
                f"net.bridge.bridge-nf-call-iptables is 0 in {ns}: packets bridged on "
                f"{s.m.nodes[ns].bridge} skip iptables and conntrack, so the service's DNAT "
                "(and its undoing for the reply) does not happen between pods of one bridge"
            )
    return ""


def rp_filter_check(s: Site) -> str | None:
    """Reverse-path filtering on the link the packet entered by: strict (1) wants the
    route back to the source through that link, loose (2) any route back."""
    if s.entry not in ("routed", "delivered", "decap"):
        return None
    p, ns = s.prev, s.hop.netns
    src = p.outer.src if s.entry == "decap" and p.outer else p.src
    mode = max(s.k.sysctl(ns, f"net/ipv4/conf/{c}/rp_filter") or 0 for c in ("all", p.ifname))
    if mode == 0:
        return ""
    back = s.k.route(ns, src)
    if back is None:
        return f"rp_filter={mode} on {p.ifname} in {ns} drops it: there is no route back to {src}"
    if mode == 1 and back.get("dev") != p.ifname:
        return (
            f"rp_filter=1 (strict) on {p.ifname} in {ns} drops it: the route back to {src} "
            f"leaves by {back.get('dev')}, not {p.ifname}"
        )
    return ""
