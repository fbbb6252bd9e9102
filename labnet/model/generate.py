"""`inv gen`: a valid topology of any size, for benchmarks and bigger classroom labs.

Pure: sizes in, the topology as data out (dumped as YAML by the task). The flannel network
is sized to hold one /24 per node; pods are spread over the nodes round robin; a few
services take endpoints on several nodes, so some requests cross the tunnel. Like pod1 of
the reference lab, a pod is its network namespace (the "pause" container); only the
services' endpoints run a server, unless `serve_all` gives every pod one.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from labnet.errors import InputError

from . import versions

BACKENDS = ("vxlan", "host-gw")
MAX_NODES = 250  # one underlay /24 of node addresses, one flannel /24 per node
MAX_PODS_PER_NODE = 250  # a /24 less the network, flannel.1 (.0), docker0 (.1) and broadcast


def _flannel_network(nodes: int) -> IPv4Network:
    """The smallest network from 172.16.0.0 with room for SubnetMin (the 2nd /24) onwards."""
    prefix = 24
    while (1 << (24 - prefix)) < nodes + 1:
        prefix -= 1
    return IPv4Network(f"172.16.0.0/{max(prefix, 16)}")


def topology(
    nodes: int, pods: int, backend: str = "vxlan", name: str | None = None, serve_all: bool = False
) -> dict:
    if backend not in BACKENDS:
        raise InputError(f"backend {backend!r} is unknown", f"use one of: {', '.join(BACKENDS)}")
    if not 1 <= nodes <= MAX_NODES:
        raise InputError(f"--nodes {nodes}: between 1 and {MAX_NODES}")
    if pods < 0 or -(-pods // nodes) > MAX_PODS_PER_NODE:
        raise InputError(f"--pods {pods}: at most {MAX_PODS_PER_NODE} per node")
    name = name or f"gen-{nodes}n-{pods}p"
    network = _flannel_network(nodes)
    first = network.network_address + 256  # SubnetMin: flannel skips the first subnet
    node_list = []
    for i in range(nodes):
        subnet = IPv4Network(f"{IPv4Address(int(first) + 256 * i)}/24")
        node_list.append(
            {
                "name": f"node{i + 1}",
                "address": str(IPv4Address("10.46.0.0") + 256 + i + 1),
                "subnet": str(subnet),
            }
        )
    endpoints_of = [[f"pod{s * 3 + k + 1}" for k in range(3)] for s in range(min(3, pods // 3))]
    serving = {p for e in endpoints_of for p in e}
    pod_list = []
    per_node = [0] * nodes
    for j in range(pods):
        n = j % nodes
        per_node[n] += 1
        subnet = IPv4Network(node_list[n]["subnet"])
        pod = {
            "name": f"pod{j + 1}",
            "node": node_list[n]["name"],
            "address": str(subnet.network_address + 1 + per_node[n]),
        }
        if serve_all or pod["name"] in serving:
            pod["containers"] = [{"name": "app", "serve": ["http:8080"]}]
        pod_list.append(pod)
    services = []
    for s, endpoints in enumerate(endpoints_of):
        services.append(
            {
                "name": f"default/svc{s + 1}",
                "clusterIP": f"192.168.3.{10 + s}",
                "ports": [{"port": 80, "targetPort": 8080}],
                "endpoints": endpoints,
            }
        )
    topo = {
        "name": name,
        "description": f"generated: {nodes} nodes, {pods} pods, {len(services)} services",
        "versions": dict(versions.TODAY),
        "underlay": {"subnet": "10.46.0.0/16"},
        "etcd": {"address": "10.46.0.10"},
        "flannel": {
            "network": str(network),
            "backend": {"type": backend},
        },
        "nodes": node_list,
        "pods": pod_list,
    }
    if services:
        topo["services"] = services
    return topo
