"""The plan's objects: what a lab creates, per namespace, as plain data (frozen where it can
be). Interface indexes are planned, so a whole namespace's links, addresses and routes go
to the kernel in one netlink batch."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    peer_mtu: int | None = None  # when the peer's MTU differs from this end's
    mac: str | None = None  # this end's MAC, when it is chosen (Calico's cali veths)


@dataclass(frozen=True)
class Address:
    netns: str
    ifname: str
    cidr: str


@dataclass(frozen=True)
class Route:
    netns: str
    dst: str
    gateway: str  # "": a route on the link itself (scope link)
    ifname: str


@dataclass(frozen=True)
class Rules:
    """A rule set for one namespace, written by `owner`: iptables-restore --noflush input,
    or `nft -f` input when its loader is nft (kube-proxy's nftables mode)."""

    netns: str
    owner: str  # docker | flannel | kube-proxy
    text: str
    loader: str = "iptables-restore"  # or "nft"


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
    link_sysctls: list[Sysctl] = field(default_factory=list)  # of links these steps make

    def split(self, namespaces: set[str]) -> tuple[Steps, Steps]:
        """(what belongs to `namespaces`, the rest). A veth belongs to its peer's namespace."""

        def mine(obj: object) -> bool:
            return getattr(obj, "peer_netns", getattr(obj, "netns", None)) in namespaces

        parts = {}
        for name in ("bridges", "veths", "addresses", "routes", "sysctls", "rules", "link_sysctls"):
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
    resolv: dict[str, str] = field(default_factory=dict)  # namespace -> its resolv.conf


def netns_name(lab: str, name: str) -> str:
    return f"{lab}-{name}"
