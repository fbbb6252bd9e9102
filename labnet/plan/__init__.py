"""The plan stage: model -> the concrete objects per namespace (links, addresses, routes,
sysctls, rule sets, processes), and the hops a flow is predicted to take. Pure: no I/O,
unit-tested without root, printable as a dry run (`inv plan`)."""

from __future__ import annotations

from .build import (
    BRIDGE_NF_CALL_IPTABLES,
    plan,
    plan_node_pods,
    pod_addresses,
    pod_veth_name,
    short_ifname,
)
from .calico import cali_name
from .objects import (
    ETH0_INDEX,
    EXTERNAL_BRIDGE,
    LO_INDEX,
    PROTO_BOOT,
    UNDERLAY_BRIDGE,
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
from .rules import docker_rules, flannel_rules, kube_proxy_rules

__all__ = [
    "BRIDGE_NF_CALL_IPTABLES",
    "ETH0_INDEX",
    "EXTERNAL_BRIDGE",
    "LO_INDEX",
    "PROTO_BOOT",
    "UNDERLAY_BRIDGE",
    "Address",
    "Bridge",
    "Daemon",
    "LabPlan",
    "Namespace",
    "NodePods",
    "Route",
    "Rules",
    "Steps",
    "Sysctl",
    "Veth",
    "docker_rules",
    "flannel_rules",
    "kube_proxy_rules",
    "netns_name",
    "plan",
    "plan_node_pods",
    "cali_name",
    "pod_addresses",
    "pod_veth_name",
    "short_ifname",
]
