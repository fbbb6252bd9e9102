"""Cluster DNS as the article's cluster had it: kube-dns's front, dnsmasq, in the pods behind
the DNS service, and an outside DNS server on the lab's internet side for other names.

Pods get /etc/resolv.conf as kubelet writes it for dnsPolicy ClusterFirst; nodes and the
DNS pods themselves (dnsPolicy Default) ask the outside server. Each file goes to
/etc/netns/<namespace>/resolv.conf, which `ip netns exec` mounts over /etc/resolv.conf, so
a command typed by hand in a lab namespace resolves as a container there does.
"""

from __future__ import annotations

import json

from ..model import Topology
from .objects import Daemon, netns_name

DNSMASQ = "dnsmasq"
# in the foreground (the launcher keeps its pid), no pid file (several run on one machine),
# nothing from the machine's own /etc/hosts or /etc/resolv.conf, each query to the log
_COMMON = (
    "--keep-in-foreground",
    "--pid-file",
    "--no-hosts",
    "--no-resolv",
    "--log-queries",
    "--log-facility=-",
)


def cluster_argv(topo: Topology) -> list[str]:
    """kube-dns's dnsmasq: every service's name, NXDOMAIN for the rest of the cluster
    domain (a search-list try never leaves the pod), anything else to the upstream."""
    dns = topo.dns
    records = [
        f"--host-record={s.name}.{s.namespace}.svc.{dns.domain},{s.cluster_ip}"
        for s in topo.services
    ]
    upstream = _upstream(topo)
    server = [f"--server={upstream}"] if upstream else []
    return [DNSMASQ, *_COMMON, f"--local=/{dns.domain}/", *records, *server]


def outside_argv(topo: Topology) -> list[str]:
    """The lab's internet DNS: the external hosts' names, and nothing else."""
    hosts = topo.external.hosts if topo.external else ()
    records = [f"--host-record={n},{h.address}" for h in hosts for n in h.names]
    return [DNSMASQ, *_COMMON, *records]


def _upstream(topo: Topology) -> str | None:
    if topo.dns is None or topo.dns.upstream is None:
        return None
    return str(next(h.address for h in topo.external.hosts if h.name == topo.dns.upstream))


def dns_pods(topo: Topology) -> list[str]:
    svc = next(s for s in topo.services if s.full_name == topo.dns.service)
    return list(svc.endpoints)


def daemons(topo: Topology) -> list[Daemon]:
    if topo.dns is None:
        return []
    out = []
    for pod in dns_pods(topo):
        settings = (
            ("hostname", pod),
            ("serve", ""),
            ("command", json.dumps(cluster_argv(topo))),
        )
        out.append(Daemon(f"{pod}/dnsmasq", "container", netns_name(topo.name, pod), settings))
    if topo.dns.upstream:
        host = topo.dns.upstream
        settings = (("hostname", host), ("serve", ""), ("command", json.dumps(outside_argv(topo))))
        out.append(Daemon(f"{host}/dns", "server", netns_name(topo.name, host), settings))
    return out


def resolv_confs(topo: Topology) -> dict[str, str]:
    """namespace -> resolv.conf: kubelet's ClusterFirst file for the pods (search list from
    the pod's namespace, ndots:5), the outside server for the nodes and the DNS pods."""
    if topo.dns is None:
        return {}
    svc = next(s for s in topo.services if s.full_name == topo.dns.service)
    domain, upstream = topo.dns.domain, _upstream(topo)
    out = {}
    for pod in topo.pods:
        if pod.name in svc.endpoints:
            continue
        out[netns_name(topo.name, pod.name)] = (
            f"search {pod.namespace}.svc.{domain} svc.{domain} {domain}\n"
            f"nameserver {svc.cluster_ip}\n"
            "options ndots:5\n"
        )
    if upstream:
        outside = f"nameserver {upstream}\n"
        for name in [n.name for n in topo.nodes] + list(svc.endpoints):
            out[netns_name(topo.name, name)] = outside
    return out
