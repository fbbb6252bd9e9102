"""Services and checks of a topology: cluster IPs, ports and node ports as the API server
would accept them, and the flows `inv verify` sends."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from .source import Locator, dotted
from .topology import Check, ClusterDNS, External, Node, Pod, Service, ServicePort


def _build_service_ports(raw: list[dict], path: tuple, loc: Locator) -> tuple[ServicePort, ...]:
    out, seen, names = [], {}, set()
    for i, p in enumerate(raw):
        ppath = (*path, i)
        name, proto = p.get("name", ""), p.get("protocol", "tcp")
        if (p["port"], proto) in seen:
            raise loc.error(
                (*ppath, "port"),
                f"duplicate port {p['port']}/{proto}",
                f"already declared at {dotted(seen[(p['port'], proto)])}",
            )
        seen[(p["port"], proto)] = ppath
        if len(raw) > 1 and not name:
            raise loc.error(ppath, "ports of a service with several ports need a name")
        if name in names:
            raise loc.error((*ppath, "name"), f"duplicate port name {name!r}")
        names.add(name)
        out.append(
            ServicePort(name, p["port"], p.get("targetPort", p["port"]), proto, p.get("nodePort"))
        )
    return tuple(out)


def build_services(
    data: dict, pods: tuple[Pod, ...], networks: list[tuple[IPv4Network, str]], loc: Locator
) -> tuple[Service, ...]:
    pod_names = {p.name for p in pods}
    out, ips, node_ports = [], {}, {}
    for i, raw in enumerate(data.get("services", [])):
        path = ("services", i)
        ip = IPv4Address(raw["clusterIP"])
        for net, what in networks:
            if ip in net:
                raise loc.error(
                    (*path, "clusterIP"),
                    f"cluster IP {ip} is inside {what} {net}",
                    "cluster IPs live only in iptables: pick a range of their own, "
                    "like the article's 192.168.3.0/24",
                )
        if ip in ips:
            raise loc.error(
                (*path, "clusterIP"), f"{ip} is already the cluster IP of {dotted(ips[ip])}"
            )
        ips[ip] = path
        kind = raw.get("type", "ClusterIP")
        ports = _build_service_ports(raw["ports"], (*path, "ports"), loc)
        for j, port in enumerate(ports):
            ppath = (*path, "ports", j, "nodePort")
            if port.node_port is not None and kind != "NodePort":
                raise loc.error(ppath, "nodePort is only for services of type NodePort")
            if port.node_port in node_ports:
                raise loc.error(
                    ppath,
                    f"nodePort {port.node_port} is already used at "
                    f"{dotted(node_ports[port.node_port])}",
                )
            if port.node_port is not None:
                node_ports[port.node_port] = ppath
        for j, ep in enumerate(raw["endpoints"]):
            if ep not in pod_names:
                raise loc.error(
                    (*path, "endpoints", j),
                    f"endpoint {ep!r} is not a pod",
                    "endpoints are names of pods in this topology",
                )
        namespace, name = raw["name"].split("/")
        out.append(
            Service(
                namespace,
                name,
                ip,
                kind,
                raw.get("sessionAffinity", "None"),
                ports,
                tuple(raw["endpoints"]),
            )
        )
    return tuple(_assign_node_ports(out, node_ports))


def build_checks(
    data: dict,
    nodes: tuple[Node, ...],
    pods: tuple[Pod, ...],
    external: External | None,
    services: tuple[Service, ...],
    loc: Locator,
) -> tuple[Check, ...]:
    hosts = {n.name for n in nodes} | {p.name for p in pods}
    hosts |= {h.name for h in external.hosts} if external else set()
    svc_names = {s.full_name for s in services}
    out = []
    for i, raw in enumerate(data.get("checks", [])):
        path = ("checks", i)
        if raw["from"] not in hosts:
            raise loc.error((*path, "from"), f"no node, pod or host named {raw['from']!r}")
        target, proto = raw["to"], raw.get("proto", "icmp")
        if target not in hosts and target not in svc_names:
            try:
                IPv4Address(target)
            except ValueError:
                raise loc.error(
                    (*path, "to"),
                    f"{target!r} is not a name, a service or an address",
                    "use a node, pod or host name, namespace/service, or an IPv4 address",
                ) from None
        if target in svc_names and proto == "icmp":
            raise loc.error(
                (*path, "proto"),
                "a cluster IP answers no ping: it exists only in iptables",
                "use proto: http, tcp or udp with the service's port",
            )
        if proto != "icmp" and "port" not in raw:
            raise loc.error(path, f"a {proto} check needs a port")
        if proto != "icmp" and "size" in raw:
            raise loc.error((*path, "size"), "size is for icmp checks (a ping of that size)")
        expect = raw.get("expect", {})
        for j, ep in enumerate(expect.get("endpoints", [])):
            if ep not in hosts:
                raise loc.error((*path, "expect", "endpoints", j), f"no pod or host named {ep!r}")
        out.append(
            Check(
                raw["name"],
                raw["from"],
                target,
                proto,
                raw.get("port"),
                expect.get("reachable", True),
                tuple(expect.get("endpoints", [])),
                expect.get("source"),
                raw.get("size"),
            )
        )
    return tuple(out)


def build_dns(
    data: dict, services: tuple[Service, ...], external: External | None, loc: Locator
) -> ClusterDNS | None:
    raw = data.get("dns")
    if raw is None:
        return None
    svc = next((s for s in services if s.full_name == raw["service"]), None)
    if svc is None:
        raise loc.error(
            ("dns", "service"),
            f"no service named {raw['service']!r}",
            "declare it under services (kube-system/kube-dns: ports dns 53/udp, dns-tcp 53/tcp)",
        )
    if not any(p.port == 53 and p.protocol == "udp" for p in svc.ports) or not svc.endpoints:
        raise loc.error(("dns", "service"), f"{svc.full_name} needs endpoints and port 53/udp")
    upstream = raw.get("upstream")
    hosts = {h.name for h in external.hosts} if external else set()
    if upstream is not None and upstream not in hosts:
        raise loc.error(
            ("dns", "upstream"),
            f"no external host named {upstream!r}",
            "the upstream is a host under external.hosts",
        )
    return ClusterDNS(svc.full_name, raw.get("domain", "cluster.local"), upstream)


NODE_PORT_BASE = 30000


def _assign_node_ports(services: list[Service], taken: dict) -> list[Service]:
    """NodePort services without a nodePort get the next free one, as the API server does."""
    free = (p for p in range(NODE_PORT_BASE, 32768) if p not in taken)
    out = []
    for svc in services:
        if svc.type == "NodePort":
            ports = tuple(
                p
                if p.node_port
                else ServicePort(p.name, p.port, p.target_port, p.protocol, next(free))
                for p in svc.ports
            )
            svc = Service(
                svc.namespace,
                svc.name,
                svc.cluster_ip,
                svc.type,
                svc.affinity,
                ports,
                svc.endpoints,
            )
        out.append(svc)
    return out
