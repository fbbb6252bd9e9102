"""Explain a lost packet with the kernel state that decides the hop where it was first
expected and not seen, in one line.

The predicted path gives the hop before the failing one, which places the loss in one step:
leaving a namespace (routed, delivered, bridged, encapsulated, or sent by it) or entering
the next one (across a veth or a bridge port, or by vxlan's decapsulation). That step's
checks run in order, nearest cause first (CHECKS); the first that finds something names it,
and when none does the line says what was checked."""

from __future__ import annotations

from dataclasses import dataclass, field

from labnet.daemons import processes, state
from labnet.errors import InputError
from labnet.lab import lookup
from labnet.model import Check
from labnet.plan import path
from labnet.probe import filters
from labnet.probe.reading import Kernel

SIZES = {"icmp": 84, "tcp": 60, "udp": 60}  # a probe's first packet: ping's echo, a SYN


@dataclass
class Site:
    """The failing hop in its predicted path, and the step that should have led to it."""

    m: path.NetModel
    st: state.LabState
    check: Check
    hop: path.Hop
    prev: path.Hop | None
    next: path.Hop | None
    nat: list[path.NatEvent]
    located: bool = True  # False: the hop is on no predicted path, its step is unknown
    k: Kernel = field(default_factory=Kernel)
    checked: list[str] = field(default_factory=list)

    @property
    def entry(self) -> str:
        """origin | routed | delivered | encap | bridged (this hop leaves its namespace), or
        wire | decap (this hop enters its namespace); unknown."""
        h, p = self.hop, self.prev
        if not self.located:
            return "unknown"
        if p is None:
            return "origin"
        if h.direction == "in":
            return "decap" if p.netns == h.netns else "wire"
        if p.netns != h.netns:
            return "bridged"
        if p.direction == "out":
            return "encap"
        return "delivered" if h.reply and not p.reply else "routed"

    @property
    def target(self) -> str:
        """The destination this hop's packet is routed by (vxlan's outer one, if any)."""
        return self.hop.outer.dst if self.hop.outer else self.hop.dst

    @property
    def vxlan(self) -> bool:
        fl = self.m.topo.flannel  # None with Calico: no envelope
        return bool(fl) and any(
            h and (h.outer or h.ifname == fl.device) for h in (self.hop, self.prev)
        )

    def nodes(self) -> list[str]:
        hops = (self.hop, self.prev, self.next)
        return list(dict.fromkeys(h.netns for h in hops if h and h.netns in self.m.nodes))

    def wire(self) -> list[tuple[str, str, str]]:
        """(netns, ifname, how it relates to the path) of the links between the hop before
        and this one, and the next when it enters another namespace: each hop's link, its
        veth peer and their bridges; vxlan's devices."""
        out: dict[tuple[str, str], str] = {}  # the first reason a link is named stays
        ahead = self.next if self.next and self.next.direction == "in" else None
        for h in (self.hop, self.prev, ahead):  # ahead: an unanswered ARP stalls before it
            if h is None:
                continue
            out.setdefault((h.netns, h.ifname), "")
            iface = self.m.ifaces.get((h.netns, h.ifname))
            peer = self.m.ifaces.get(iface.peer) if iface and iface.peer else None
            if iface and iface.master:
                out.setdefault((h.netns, iface.master), f"the bridge of {h.ifname}")
            if peer:
                out.setdefault((peer.netns, peer.name), f"the far end of {h.ifname} in {h.netns}")
                if peer.master:
                    out.setdefault((peer.netns, peer.master), f"the bridge of {peer.name}")
        for ns in self.nodes() if self.vxlan else []:
            out.setdefault((ns, self.m.topo.flannel.device), "the node's vxlan device")
            out.setdefault((ns, self.m.nodes[ns].iface), "the node's underlay link")
        return [(ns, name, why) for (ns, name), why in out.items()]


def _locate(m: path.NetModel, st: state.LabState, check: Check, hop: path.Hop) -> Site:
    """The hop in the path verify predicted for the check (every endpoint's, as verify
    judges them), with the hops around it."""
    try:
        src_ns = lookup.find(check.source, st.lab).netns
        src_ip = st.addresses[check.source]
        svc = next((s for s in m.topo.services if s.full_name == check.target), None)
        ip = str(svc.cluster_ip) if svc else lookup.address_of(st, check.target)
    except (InputError, KeyError):
        return Site(m, st, check, hop, None, None, [], located=False)
    owner = m.owner(ip)
    candidates = [owner[0]] if owner and owner[0] in m.nodes else list(m.nodes)
    matches = (path.service_match(m, ns, ip, check.port, check.proto) for ns in candidates)
    hit = next((h for h in matches if h), None)
    for ep in (list(hit[0].endpoints) if hit else []) or [None]:
        fwd, back = path.predict(m, src_ns, src_ip, ip, check.proto, check.port, ep)
        hops = fwd.hops + (back.hops if back else [])
        if hop in hops:
            i = hops.index(hop)
            nxt = hops[i + 1] if i + 1 < len(hops) else None
            return Site(m, st, check, hop, hops[i - 1] if i else None, nxt, fwd.nat)
    return Site(m, st, check, hop, None, None, [], located=False)


# ---------------------------------------------------------------- the checks, in order
# Each returns None when it does not apply to the step, "" when it finds nothing, or a cause.


def _links(s: Site) -> str | None:
    for ns, ifname, why in s.wire():
        link, where = s.k.links(ns).get(ifname), f" ({why})" if why else ""
        if link is None:
            return f"{ns} has no interface {ifname}{where}"
        if "UP" not in link.get("flags", []):
            return f"{ifname} in {ns} is down{where}: `ip link set {ifname} up` there"
    return ""


def _addresses(s: Site) -> str | None:
    for ns in dict.fromkeys(h.netns for h in (s.hop, s.prev, s.next) if h):
        held = s.k.links(ns)
        for (n, name), iface in s.m.ifaces.items():
            if n == ns and iface.addr and name in held:
                if str(iface.addr.ip) not in s.k.addresses(ns):
                    return f"{name} in {ns} has lost its address {iface.addr}"
    return ""


def _routed_out(s: Site) -> bool:
    """This hop leaves its namespace by a route (not through a bridge port)."""
    iface = s.m.ifaces.get((s.hop.netns, s.hop.ifname))
    return s.hop.direction == "out" and s.entry != "bridged" and not (iface and iface.master)


def _routes(s: Site) -> str | None:
    if not _routed_out(s):
        return None
    h, dst = s.hop, s.target
    route = s.k.route(h.netns, dst)
    if route is None:
        return f"no route to {dst} in {h.netns}: a route is missing"
    if route.get("dev") != h.ifname:
        via = f" via {route['gateway']}" if route.get("gateway") else ""
        return (
            f"the kernel routes {dst}{via} dev {route.get('dev')}, not through {h.ifname}: "
            "a route is missing"
        )
    return ""


def _forwarding(s: Site) -> str | None:
    if s.entry != "routed":
        return None
    ns, into, out = s.hop.netns, s.prev.ifname, s.hop.ifname
    if s.k.sysctl(ns, "net/ipv4/ip_forward") == 0:
        return f"net.ipv4.ip_forward is 0 in {ns}: it does not forward from {into} to {out}"
    if s.k.sysctl(ns, f"net/ipv4/conf/{into}/forwarding") == 0:
        return f"net.ipv4.conf.{into}.forwarding is 0 in {ns}: it does not forward from {into}"
    return ""


def _mtu(s: Site) -> str | None:
    """Every link of the step against the probe's first packet (84 bytes for a ping, or the
    check's `size`), plus the envelope on the underlay's links (vxlan's 50 bytes, udp's 28)."""
    base = s.check.size or SIZES.get(s.hop.proto, 60)
    outer = any(h and h.outer for h in (s.hop, s.prev))
    over = s.m.topo.underlay.mtu - s.m.topo.flannel_mtu  # the envelope: vxlan 50, udp 28
    for ns, ifname, _why in s.wire():
        node = s.m.nodes.get(ns)
        under = s.m.names.get(ns) == "underlay" or (node and ifname == node.iface)
        size = base + over if under and outer else base
        mtu = s.k.links(ns).get(ifname, {}).get("mtu")
        if mtu and mtu < size:
            vx = f" ({base} + {over} of {s.m.topo.flannel.backend})" if size > base else ""
            tail = f"; {_overhead(s)}" if _overhead(s) else ""
            return f"{ifname} in {ns} has MTU {mtu}, too small for the {size}-byte packet{vx}{tail}"
    return ""


def _overhead(s: Site) -> str | None:
    """vxlan adds 50 bytes: flannel.1's MTU must be the underlay link's minus 50."""
    if not s.vxlan:
        return None
    dev, kind = s.m.topo.flannel.device, s.m.topo.flannel.backend
    over = s.m.topo.underlay.mtu - s.m.topo.flannel_mtu  # vxlan 50, udp 28
    for ns in s.nodes():
        links, under = s.k.links(ns), s.m.nodes[ns].iface
        u_mtu, v_mtu = links.get(under, {}).get("mtu"), links.get(dev, {}).get("mtu")
        if u_mtu and v_mtu and v_mtu > u_mtu - over:
            return (
                f"{dev}'s MTU in {ns} is {v_mtu}, but must be {under}'s {u_mtu} minus "
                f"{over} ({u_mtu - over}) for the {kind} header"
            )
    return ""


def _agent(s: Site, ns: str) -> str:
    """The node's flannel agent (or BIRD), when its recorded process is not running."""
    kinds = {"flannel": "the flannel agent", "bird": "the BIRD"}
    rec = next((p for p in s.st.processes if p.kind in kinds and p.netns == ns), None)
    if rec is None or processes.alive(rec):
        return ""
    return f"{rec.name} (pid {rec.pid}), {kinds[rec.kind]} of {ns}, is not running"


def _neighbours(s: Site) -> str | None:
    """The next hop's neighbour entry; on flannel.1, vxlan's neighbour and FDB entry."""
    h = s.hop
    if h.netns in s.m.nodes and h.direction == "out":
        if s.m.topo.flannel and (h.ifname == s.m.topo.flannel.device or s.entry == "encap"):
            if s.m.topo.flannel.backend == "udp":  # no neighbours: the agent is the data path
                return _agent(s, h.netns)
            return _vxlan(s, h.netns)
    if not _routed_out(s):
        return None
    route = s.k.route(h.netns, s.target)
    if route is None or route.get("dev") != h.ifname:
        return ""
    hop_ip = route.get("gateway") or s.target
    for n in s.k.json(h.netns, "ip", "-j", "neigh", "show", "dev", h.ifname):
        if n.get("dst") == hop_ip and set(n.get("state", [])) & {"FAILED", "INCOMPLETE"}:
            owner = s.m.owner(hop_ip)
            who = f" ({owner[1]} in {owner[0]} should)" if owner else ""
            return f"no neighbour for {hop_ip} on {h.ifname} in {h.netns}: nobody answers ARP{who}"
    return ""


def _vxlan(s: Site, ns: str) -> str:
    """flannel.1's neighbour for the destination (written on an L3 miss, or per lease) and
    the FDB entry for its MAC (per lease)."""
    s.checked.append("FDB")
    m, dev, hop = s.m, s.m.topo.flannel.device, s.hop
    remote = m.node_of_subnet(hop.dst)
    gateway = str(remote.subnet.network_address) if remote else hop.dst
    target = hop.dst if m.topo.flannel.mode == "miss" else gateway
    neigh = s.k.json(ns, "ip", "-j", "neigh", "show", "dev", dev)
    entry = next((n for n in neigh if n.get("dst") == target and n.get("lladdr")), None)
    agent = _agent(s, ns)
    if entry is None:
        if m.topo.flannel.mode != "miss":
            why = agent or "the agent writes one per lease (is the lease there?)"
        elif agent:
            why = f"nobody answers the L3 miss: {agent}"
        elif s.k.sysctl(ns, f"net/ipv4/neigh/{dev}/app_solicit") == 0:
            why = f"app_solicit is 0 on {dev}, so the kernel asks no agent (no L3 miss)"
        else:
            why = "the agent runs but did not answer the L3 miss (see its log)"
        return f"no neighbour entry for {target} on {dev} in {ns}: {why}"
    mac = entry["lladdr"]
    fdb = s.k.json(ns, "bridge", "-j", "fdb", "show", "dev", dev)
    if not any(f.get("mac") == mac and f.get("dst") for f in fdb):
        tail = f"; {agent}" if agent else " (FDB entries come from lease events)"
        return (
            f"no FDB entry for {mac} on {dev} in {ns}: the kernel does not know which node "
            f"to send it to (`bridge fdb show dev {dev}` lists no `{mac} dst ...`){tail}"
        )
    return ""


def _vxlan_ids(s: Site) -> str | None:
    """The sending and the receiving node's flannel.1: the same VNI and UDP port."""
    if not s.vxlan:
        return None
    m, dev = s.m, s.m.topo.flannel.device
    outer = next((h.outer for h in (s.hop, s.prev) if h and h.outer), None)
    by_ip = {n.public_ip: ns for ns, n in m.nodes.items()}
    if outer:
        tx, rx = by_ip.get(outer.src), by_ip.get(outer.dst)
    else:
        remote = m.node_of_subnet(s.hop.dst)
        tx, rx = s.hop.netns, remote.netns if remote else None
    if tx is None or rx is None or tx == rx:
        return ""
    a, b = (s.k.links(ns).get(dev, {}).get("linkinfo", {}).get("info_data", {}) for ns in (tx, rx))
    if a.get("id") != b.get("id"):
        return (
            f"{dev} has VNI {a.get('id')} in {tx} and VNI {b.get('id')} in {rx}: {rx} drops "
            f"what {tx} sends (the topology says VNI {m.topo.flannel.vni})"
        )
    if a.get("port") != b.get("port"):
        return (
            f"{dev} in {tx} sends to UDP {a.get('port')}, but {dev} in {rx} listens on UDP "
            f"{b.get('port')} (the topology says {m.topo.flannel.port})"
        )
    return ""


def _agents(s: Site) -> str | None:
    every = s.vxlan or s.m.topo.calico  # any node's agent (or BIRD) feeds the others' tables
    nodes = s.nodes() + ([n.netns for n in s.m.nodes.values()] if every else [])
    found = [r for ns in dict.fromkeys(nodes) if (r := _agent(s, ns))]
    return (found or [""])[0] if nodes else None


CHECKS = [
    ("links up", _links),
    ("addresses", _addresses),
    ("routes", _routes),
    ("forwarding", _forwarding),
    ("rp_filter", filters.rp_filter_check),
    ("FORWARD policy and filter rules", filters.filter_check),
    ("MTU", _mtu),
    ("neighbours", _neighbours),
    ("vxlan id/port", _vxlan_ids),
    ("br_netfilter", filters.br_netfilter_check),
    ("nat rules", filters.nat_check),
    ("vxlan MTU overhead", _overhead),
    ("agent", _agents),
]


def explain(m: path.NetModel, st: state.LabState, check: Check, hop: path.Hop) -> str:
    """One line: the first cause the kernel state of the failing hop's step shows, or the
    checks made when none does."""
    site = _locate(m, st, check, hop)
    for name, run in CHECKS:
        site.checked.append(name)
        reason = run(site)
        if reason:
            return reason
        if reason is None:  # it does not apply to this step
            site.checked.remove(name)
    where = " and ".join(dict.fromkeys(h.netns for h in (hop, site.prev) if h))
    checked = ", ".join(site.checked)
    return f"checked in {where}: {checked}: nothing explains it; open the pcaps of this run"
