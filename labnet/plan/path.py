"""Predict the hops a packet crosses, from what the lab is meant to be.

The lab's plan and state (addresses, routes, bridges, flannel leases, the NAT rules docker,
flannel and kube-proxy write) are modelled here, and a flow is walked through it: routing by
longest prefix, delivery across bridges and veths, vxlan encapsulation to the lease's
PublicIP, DNAT at PREROUTING, MASQUERADE at POSTROUTING, and conntrack's reverse NAT for the
reply. What the kernel really did is then read from captures (verify.py); comparing the two
names the first hop where they part. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from ..model import Service, ServicePort
from .netmodel import BLACKHOLE, Iface, NetModel, NodeFacts, build
from .objects import netns_name

__all__ = ["BLACKHOLE", "Iface", "NetModel", "NodeFacts", "build", "predict"]

MULTICAST = IPv4Network("224.0.0.0/4")
MAX_HOPS = 32


@dataclass(frozen=True)
class Outer:
    """The envelope (VXLAN's, or flannel's udp): outer IPs, UDP port and VNI."""

    src: str
    dst: str
    port: int
    vni: int | None  # None: flannel's udp puts the bare IP packet in the datagram


@dataclass(frozen=True)
class Hop:
    netns: str
    ifname: str
    direction: str  # in | out
    src: str  # inner (or only) IP header at this point
    dst: str
    proto: str  # icmp | tcp | udp
    port: int | None  # the far end's port: dport of a request, sport of a reply
    reply: bool = False
    outer: Outer | None = None
    note: str = ""  # e.g. "after DNAT", "after MASQUERADE"

    @property
    def place(self) -> str:
        return f"{self.netns}/{self.ifname}"


@dataclass(frozen=True)
class NatEvent:
    netns: str
    kind: str  # dnat | snat
    before: tuple[str, int | None]
    after: tuple[str, int | None]


@dataclass
class Path:
    hops: list[Hop]
    delivered_to: str | None  # namespace that receives it, None when lost in the model
    nat: list[NatEvent] = field(default_factory=list)
    problem: str = ""


# ---------------------------------------------------------------- NAT, as the rules say


def service_match(
    model: NetModel, ns: str, dst: str, port: int | None, proto: str
) -> tuple[Service, ServicePort, bool] | None:
    """kube-proxy's KUBE-SERVICES: a cluster IP and port, or a NodePort on a local address."""
    l4 = "udp" if proto == "udp" else "tcp"
    local = dst in model.addresses(ns)
    for svc in model.topo.services:
        for sp in svc.ports:
            if sp.protocol != l4:
                continue
            if str(svc.cluster_ip) == dst and sp.port == port:
                return svc, sp, False
            if local and sp.node_port is not None and sp.node_port == port:
                return svc, sp, True
    return None


def _masquerade(model: NetModel, ns: str, src: str, dst: str, dev: str, marked: bool) -> bool:
    """POSTROUTING in a node: KUBE-POSTROUTING, then flannel's ip-masq rules, then docker's."""
    if marked:
        return True
    node = model.nodes[ns]
    s, d = IPv4Address(src), IPv4Address(dst)
    if model.topo.flannel and model.topo.flannel.ipmasq:
        network = model.topo.flannel.network
        if s in network and d in network:
            return False
        if s in network and d not in MULTICAST:
            return True
        if s not in network and d in node.subnet:
            return False
        if s not in network and d in network:
            return True
    # docker's MASQUERADE, absent without docker and when flannel masquerades instead
    if not model.topo.versions.docker.rules:
        return False
    return s in node.subnet and dev != node.bridge


# ---------------------------------------------------------------- walking a packet


@dataclass
class _Packet:
    src: str
    dst: str
    sport: int | None
    dport: int | None
    proto: str
    reply: bool

    def hop(
        self, ns: str, ifname: str, direction: str, outer: Outer | None = None, note: str = ""
    ) -> Hop:
        port = self.sport if self.reply else self.dport
        return Hop(
            ns, ifname, direction, self.src, self.dst, self.proto, port, self.reply, outer, note
        )


class _Walker:
    def __init__(self, model: NetModel, endpoint: str | None, nat_done: list[NatEvent]) -> None:
        self.m = model
        self.endpoint = endpoint  # the endpoint kube-proxy picks for this flow
        self.reverse = nat_done  # a reply undoes these
        self.nat: list[NatEvent] = []
        self.hops: list[Hop] = []
        self.early_mark: bool | None = None  # DNAT already done by br_netfilter on arrival

    def bridge_netfilter(self, ns: str) -> bool:
        """With bridge-nf-call-iptables (set for kube-proxy), frames entering a node's bridge
        pass the nat table at the bridge port, before a capture on the bridge sees them."""
        return bool(self.m.topo.services) and ns in self.m.nodes

    def prerouting(self, ns: str, p: _Packet) -> bool:
        """DNAT (kube-proxy) or reverse SNAT (conntrack). Returns the masquerade mark."""
        if p.reply:
            for ev in self.reverse:
                if ev.netns == ns and ev.kind == "snat" and (p.dst, p.dport) == ev.after:
                    p.dst, p.dport = ev.before
            return False
        if ns not in self.m.nodes:
            return False
        hit = service_match(self.m, ns, p.dst, p.dport, p.proto)
        if hit is None:
            return False
        svc, sp, nodeport = hit
        ep = self.endpoint if self.endpoint in svc.endpoints else svc.endpoints[0]
        ep_ip = self.m.pod_ips[ep]
        before = (p.dst, p.dport)
        p.dst, p.dport = ep_ip, sp.target_port
        self.nat.append(NatEvent(ns, "dnat", before, (p.dst, p.dport)))
        return nodeport or p.src == ep_ip  # KUBE-EXT, or a pod reaching itself (hairpin)

    def postrouting(self, ns: str, p: _Packet, dev: str, marked: bool) -> str:
        if p.reply:
            for ev in self.reverse:
                if ev.netns == ns and ev.kind == "dnat" and (p.src, p.sport) == ev.after:
                    p.src, p.sport = ev.before
                    return "after reverse DNAT"
            return ""
        if ns not in self.m.nodes or not _masquerade(self.m, ns, p.src, p.dst, dev, marked):
            return ""
        addr = self.m.ifaces[(ns, dev)].addr
        before = (p.src, p.sport)
        p.src = str(addr.ip)
        self.nat.append(NatEvent(ns, "snat", before, (p.src, p.sport)))
        return "after MASQUERADE"

    def walk(self, ns: str, p: _Packet) -> Path:
        in_if = None
        for _ in range(MAX_HOPS):
            if self.early_mark is not None:
                marked, self.early_mark = self.early_mark, None
            else:
                marked = self.prerouting(ns, p) if in_if is not None else False
            if p.dst in self.m.addresses(ns):
                return Path(self.hops, ns, self.nat)
            if in_if is None and ns in self.m.nodes and not p.reply:
                marked = self.prerouting(ns, p)  # OUTPUT chain: node-originated traffic
            route = self.m.route(ns, p.dst)
            if route is None:
                return Path(self.hops, None, self.nat, f"no route to {p.dst} in {ns}")
            dev, via = route
            if dev == BLACKHOLE:
                return Path(self.hops, None, self.nat, f"blackhole route to {p.dst} in {ns}")
            note = self.postrouting(ns, p, dev, marked)
            nxt = self.transmit(ns, dev, via or p.dst, p, note)
            if nxt is None:
                return Path(self.hops, None, self.nat, f"nobody has {via or p.dst} on {dev}")
            ns, in_if = nxt
        return Path(self.hops, None, self.nat, "too many hops (a loop?)")

    def transmit(
        self, ns: str, dev: str, next_ip: str, p: _Packet, note: str
    ) -> tuple[str, str] | None:
        iface = self.m.ifaces[(ns, dev)]
        if iface.kind in ("vxlan", "tun"):
            return self.encapsulate(ns, dev, p, note)
        self.hops.append(p.hop(ns, dev, "out", note=note))
        if iface.kind == "bridge":
            return self.across_bridge(ns, dev, next_ip, p)
        peer_ns, peer_if = iface.peer
        peer = self.m.ifaces[(peer_ns, peer_if)]
        if peer.master is None:
            self.hops.append(p.hop(peer_ns, peer_if, "in"))
            return peer_ns, peer_if
        bridge = self.m.ifaces[(peer_ns, peer.master)]
        if bridge.addr and str(bridge.addr.ip) == next_ip:  # the bridge is the router (docker0)
            if self.bridge_netfilter(peer_ns):
                self.early_mark = self.prerouting(peer_ns, p)
            self.hops.append(p.hop(peer_ns, bridge.name, "in"))
            return peer_ns, bridge.name
        return self.across_bridge(peer_ns, peer.master, next_ip, p, via_port=True)

    def across_bridge(
        self, ns: str, bridge: str, next_ip: str, p: _Packet, via_port: bool = False
    ) -> tuple[str, str] | None:
        """Out of the bridge port that leads to whoever holds next_ip."""
        owner = self.m.owner(next_ip)
        if owner is None:
            return None
        for (n, name), i in self.m.ifaces.items():
            if n == ns and i.master == bridge and i.peer == owner:
                if via_port:
                    if p.reply and self.bridge_netfilter(ns):  # conntrack undoes the DNAT here
                        self.postrouting(ns, p, bridge, False)
                    self.hops.append(p.hop(ns, name, "out"))
                self.hops.append(p.hop(owner[0], owner[1], "in"))
                return owner
        return None

    def encapsulate(self, ns: str, dev: str, p: _Packet, note: str) -> tuple[str, str] | None:
        """flannel.1 (flannel0: the agent, in user space): the inner packet goes to the node
        whose lease covers the destination."""
        remote = self.m.node_of_subnet(p.dst)
        here = self.m.nodes[ns]
        fl = self.m.topo.flannel
        agent = "" if fl.vxlan else "read by the agent"
        self.hops.append(p.hop(ns, dev, "out", note=", ".join(filter(None, (note, agent)))))
        if remote is None or remote is here:
            return None
        outer = Outer(here.public_ip, remote.public_ip, fl.port, fl.vni if fl.vxlan else None)
        ul_ns = netns_name(self.m.topo.name, "underlay")
        port = next(
            n
            for (s, n), i in self.m.ifaces.items()
            if s == ul_ns and i.peer == (remote.netns, remote.iface)
        )
        self.hops.append(p.hop(ns, here.iface, "out", outer))
        self.hops.append(p.hop(ul_ns, port, "out", outer))
        self.hops.append(p.hop(remote.netns, remote.iface, "in", outer))
        inside = "written by the agent" if agent else "decapsulated"
        self.hops.append(p.hop(remote.netns, dev, "in", note=inside))
        return remote.netns, dev


def predict(
    model: NetModel,
    src_ns: str,
    src_ip: str,
    dst_ip: str,
    proto: str,
    port: int | None,
    endpoint: str | None = None,
    sport: int | None = None,
) -> tuple[Path, Path | None]:
    """The request's path, and the reply's (None when the request gets nowhere)."""
    l4 = "icmp" if proto == "icmp" else ("udp" if proto == "udp" else "tcp")
    req = _Walker(model, endpoint, [])
    forward = req.walk(src_ns, _Packet(src_ip, dst_ip, sport, port, l4, False))
    if forward.delivered_to is None:
        return forward, None
    last = forward.hops[-1] if forward.hops else None
    if last is None:
        return forward, None
    back = _Walker(model, None, forward.nat)
    reply = back.walk(forward.delivered_to, _Packet(last.dst, last.src, last.port, sport, l4, True))
    return forward, reply
