"""Calico's data path, planned: no bridge and no encapsulation. Each pod's veth ends in the
node as `cali<hash>` with Calico's MAC, proxy ARP on, and a /32 route to the pod; the pod's
eth0 has its address as a /32 and reaches everything through 169.254.1.1, an address nobody
holds, which the node's end answers by proxy ARP. The blocks of the other nodes come from
BIRD (labnet.plan.bird), not from here. Pure: no I/O."""

from __future__ import annotations

import hashlib
from ipaddress import IPv4Network

from ..model import CALICO_GATEWAY, CALICO_MAC, Node, Topology
from .objects import ETH0_INDEX, NODE_BRIDGE_INDEX, Address, NodePods, Route, Steps, Sysctl, Veth
from .objects import netns_name as ns_of


def cali_name(namespace: str, pod: str) -> str:
    """The host end's name, as Calico's CNI plugin makes it: "cali" and the first 11 hex
    digits of the SHA-1 of "<namespace>.<pod>" (libcalico-go's VethNameForWorkload)."""
    return "cali" + hashlib.sha1(f"{namespace}.{pod}".encode()).hexdigest()[:11]  # noqa: S324


def pod_addresses(topo: Topology, node: Node, block: IPv4Network) -> dict[str, str]:
    """Pinned addresses as written; the others in order from the block's first address
    (Calico's IPAM hands out a block's ordinals from 0: a pod's /32 needs no network or
    gateway address)."""
    pods = topo.pods_on(node.name)
    taken = {p.address for p in pods if p.address}
    free = (a for a in block if a not in taken)
    return {p.name: str(p.address or next(free)) for p in pods}


def plan_calico_pods(topo: Topology, node: Node, block: IPv4Network) -> NodePods:
    """One veth per pod, no bridge: what Calico's CNI plugin and Felix set up."""
    lab, mtu = topo.name, topo.underlay.mtu
    node_ns = ns_of(lab, node.name)
    steps = Steps()
    addrs = pod_addresses(topo, node, block)
    for i, pod in enumerate(topo.pods_on(node.name)):
        pod_ns, addr = ns_of(lab, pod.name), addrs[pod.name]
        cali = cali_name(pod.namespace, pod.name)
        steps.veths.append(
            Veth(
                node_ns, cali, pod_ns, "eth0", None, mtu, NODE_BRIDGE_INDEX + i, ETH0_INDEX,
                mac=CALICO_MAC,
            )
        )  # fmt: skip
        steps.addresses.append(Address(pod_ns, "eth0", f"{addr}/32"))
        steps.routes += [
            Route(pod_ns, f"{CALICO_GATEWAY}/32", "", "eth0"),  # 169.254.1.1 dev eth0 scope link
            Route(pod_ns, "default", CALICO_GATEWAY, "eth0"),
            Route(node_ns, f"{addr}/32", "", cali),  # Felix: <pod ip> dev cali... scope link
        ]
        # the CNI plugin's (and Felix's) sysctls: the node's end answers ARP for 169.254.1.1
        # (proxy ARP, without the usual delay)
        steps.link_sysctls += [
            Sysctl(node_ns, f"net/ipv4/conf/{cali}/route_localnet", "1"),
            Sysctl(node_ns, f"net/ipv4/neigh/{cali}/proxy_delay", "0"),
            Sysctl(node_ns, f"net/ipv4/conf/{cali}/proxy_arp", "1"),
            Sysctl(node_ns, f"net/ipv4/conf/{cali}/forwarding", "1"),
        ]
    return NodePods(node.name, str(block), addrs, steps)
