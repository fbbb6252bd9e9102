"""The lab as intended, for predicting paths (labnet.plan.path): its interfaces, each
namespace's routes (the plan's, and those flannel's agent or BIRD writes) and the nodes'
facts, built from the topology and what the lab recorded. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from ..model import Flannel, Topology
from .build import plan, plan_node_pods
from .objects import netns_name

BLACKHOLE = "blackhole"  # a route's device: the packet is dropped there


@dataclass(frozen=True)
class Iface:
    netns: str
    name: str
    kind: str  # veth | bridge | vxlan
    addr: IPv4Interface | None = None
    peer: tuple[str, str] | None = None  # veth peer (netns, ifname)
    master: str | None = None  # bridge in the same namespace


@dataclass
class NodeFacts:
    name: str
    netns: str
    subnet: IPv4Network
    public_ip: str
    iface: str
    bridge: str


@dataclass
class NetModel:
    """The lab as intended: interfaces, routes, flannel and NAT facts per namespace."""

    topo: Topology
    ifaces: dict[tuple[str, str], Iface]
    routes: dict[str, list[tuple[IPv4Network, str, str | None]]]  # netns -> (dst, dev, via)
    nodes: dict[str, NodeFacts]  # by netns
    pod_ips: dict[str, str]
    names: dict[str, str]  # netns -> short name

    def addresses(self, ns: str) -> dict[str, str]:
        return {str(i.addr.ip): i.name for (n, _), i in self.ifaces.items() if n == ns and i.addr}

    def owner(self, ip: str) -> tuple[str, str] | None:
        for (ns, name), i in self.ifaces.items():
            if i.addr and str(i.addr.ip) == ip and i.kind not in ("vxlan", "tun"):
                return ns, name
        return None

    def route(self, ns: str, dst: str) -> tuple[str, str | None] | None:
        best = None
        for net, dev, via in self.routes.get(ns, []):
            if IPv4Address(dst) in net and (best is None or net.prefixlen > best[0].prefixlen):
                best = (net, dev, via)
        return (best[1], best[2]) if best else None

    def node_of_subnet(self, ip: str) -> NodeFacts | None:
        return next((n for n in self.nodes.values() if IPv4Address(ip) in n.subnet), None)


# ---------------------------------------------------------------- building the model


def build(topo: Topology, subnets: dict[str, str], pod_ips: dict[str, str]) -> NetModel:
    """From the topology and what the lab recorded (each node's subnet, each pod's IP)."""
    lab_plan = plan(topo)
    steps = [lab_plan.base]
    for node in topo.nodes:
        steps.append(
            plan_node_pods(topo, node, IPv4Network(subnets[node.name]), topo.flannel_mtu).steps
        )
    ifaces: dict[tuple[str, str], Iface] = {}
    routes: dict[str, list] = {}
    for s in steps:
        for br in s.bridges:
            ifaces[(br.netns, br.ifname)] = Iface(br.netns, br.ifname, "bridge")
        for v in s.veths:
            ifaces[(v.netns, v.ifname)] = Iface(
                v.netns, v.ifname, "veth", peer=(v.peer_netns, v.peer_ifname), master=v.master
            )
            ifaces[(v.peer_netns, v.peer_ifname)] = Iface(
                v.peer_netns, v.peer_ifname, "veth", peer=(v.netns, v.ifname)
            )
    for s in steps:
        for a in s.addresses:
            key = (a.netns, a.ifname)
            ifaces[key] = replace(ifaces[key], addr=IPv4Interface(a.cidr))
            routes.setdefault(a.netns, []).append((IPv4Interface(a.cidr).network, a.ifname, None))
        for r in s.routes:
            dst = IPv4Network("0.0.0.0/0" if r.dst == "default" else r.dst)
            routes.setdefault(r.netns, []).append((dst, r.ifname, r.gateway))
    nodes = {}
    for node in topo.nodes:
        ns = netns_name(topo.name, node.name)
        subnet = IPv4Network(subnets[node.name])
        nodes[ns] = NodeFacts(node.name, ns, subnet, str(node.address), node.iface, node.bridge)
    if topo.flannel:
        _flannel_routes(topo.flannel, nodes, ifaces, routes)
    else:
        _bgp_routes(nodes, routes)
    names = {ns.name: ns.owner for ns in lab_plan.namespaces}
    return NetModel(topo, ifaces, routes, nodes, pod_ips, names)


def _flannel_routes(fl: Flannel, nodes: dict, ifaces: dict, routes: dict) -> None:
    """What each node's agent adds: vxlan's flannel.1 (miss mode: one route to the whole
    network; static: one onlink route a lease), host-gw's route a lease via its node, or
    udp's TUN device flannel0 (one route to the whole network, the agent behind it)."""
    for ns, n in nodes.items():
        others = [o for o in nodes.values() if o is not n]
        if fl.backend == "host-gw":
            routes[ns] += [(o.subnet, n.iface, o.public_ip) for o in others]
            continue
        plen = fl.network.prefixlen if fl.mode == "miss" else 32
        addr = IPv4Interface(f"{n.subnet.network_address}/{plen}")
        kind = "vxlan" if fl.vxlan else "tun"
        ifaces[(ns, fl.device)] = Iface(ns, fl.device, kind, addr=addr)
        if fl.mode == "miss" or kind == "tun":
            routes[ns].append((fl.network, fl.device, None))
        else:
            routes[ns] += [(o.subnet, fl.device, str(o.subnet.network_address)) for o in others]


def _bgp_routes(nodes: dict, routes: dict) -> None:
    """What each node's BIRD writes: the other nodes' blocks via them, its own a blackhole."""
    for ns, n in nodes.items():
        routes[ns].append((n.subnet, BLACKHOLE, None))
        routes[ns] += [(o.subnet, n.iface, o.public_ip) for o in nodes.values() if o is not n]
