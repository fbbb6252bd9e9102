"""Semantic checks and defaults: the parts of a topology the schema cannot judge (addresses
inside their subnets, unique names, overlapping networks), each rejection at file:line."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from .podnet import PodNetwork, build_calico, pod_network
from .services import build_checks, build_dns, build_services
from .source import Locator, dotted
from .topology import (
    ETCD_HOST,
    FIRST_NODE_HOST,
    Container,
    Etcd,
    External,
    ExternalHost,
    Flannel,
    Node,
    Pod,
    Serve,
    Topology,
    Underlay,
)
from .versions import UDP_RELEASES, Versions


def _subnet_bounds(network: IPv4Network, subnet_len: int) -> tuple[IPv4Address, IPv4Address]:
    """flannel's defaults: SubnetMin skips the first subnet, SubnetMax is the last one."""
    size = 1 << (32 - subnet_len)
    first = network.network_address + size
    last = IPv4Address(int(network.broadcast_address) + 1 - size)
    return first, last


def _build_versions(data: dict, loc: Locator) -> Versions:
    versions = Versions.of(data.get("versions", {}))
    mode = data.get("flannel", {}).get("backend", {}).get("mode")
    if mode and mode != versions.flannel.mode:
        raise loc.error(
            ("flannel", "backend", "mode"),
            f"flannel {versions.flannel.version} runs vxlan in {versions.flannel.mode} mode, "
            f"not {mode}",
            "miss mode is flannel 0.6-0.8, static mode 0.9 and later: set versions.flannel "
            "(see: inv versions)",
        )
    return versions


def _kube_proxy_mode(data: dict, loc: Locator, versions: Versions) -> str:
    mode = data.get("kube_proxy", {}).get("mode", "iptables")
    if mode == "nftables" and versions.kube_proxy.era == "1.5":
        raise loc.error(
            ("kube_proxy", "mode"),
            f"kube-proxy {versions.kube_proxy.version} has no nftables mode (it came in "
            "v1.29 as alpha, v1.31 beta, v1.33 GA)",
            'set versions.kube-proxy to "1.37" (see: inv versions)',
        )
    return mode


def _build_flannel(raw: dict, loc: Locator, versions: Versions) -> Flannel:
    network = IPv4Network(raw.get("network", "172.16.0.0/16"))
    subnet_len = raw.get("subnet_len", 24)
    if subnet_len <= network.prefixlen:
        raise loc.error(
            ("flannel", "subnet_len"),
            f"subnet_len {subnet_len} must be longer than the network's /{network.prefixlen}",
        )
    lo, hi = _subnet_bounds(network, subnet_len)
    smin = IPv4Address(raw["subnet_min"]) if "subnet_min" in raw else lo
    smax = IPv4Address(raw["subnet_max"]) if "subnet_max" in raw else hi
    for key, value in (("subnet_min", smin), ("subnet_max", smax)):
        if value not in network:
            raise loc.error(("flannel", key), f"{value} is outside the flannel network {network}")
    if smin > smax:
        raise loc.error(("flannel", "subnet_min"), f"subnet_min {smin} is above subnet_max {smax}")
    backend = raw.get("backend", {})
    kind = backend.get("type", "vxlan")
    own = {"vxlan": ("vni", "port", "mode"), "udp": ("port",)}.get(kind, ())
    vxlan_only = sorted(k for k in ("vni", "port", "mode") if k in backend and k not in own)
    if vxlan_only:
        raise loc.error(
            ("flannel", "backend", vxlan_only[0]),
            f"{vxlan_only[0]} belongs to the vxlan backend, not {kind}",
            f"remove {', '.join(vxlan_only)}, or use type: vxlan",
        )
    if kind == "udp" and versions.flannel.version not in UDP_RELEASES:
        raise loc.error(
            ("flannel", "backend", "type"),
            f"flannel {versions.flannel.version} has no udp backend",
            f"flannel releases with it: {', '.join(UDP_RELEASES)}: set versions.flannel "
            "(see: inv versions)",
        )
    return Flannel(
        network,
        subnet_len,
        smin,
        smax,
        backend.get("vni", 1),
        backend.get("port", 8285 if kind == "udp" else 8472),
        versions.flannel.mode,
        # without docker's MASQUERADE, flannel's --ip-masq is what lets pods out (kube-flannel)
        raw.get("ipmasq", not versions.docker.rules),
        raw.get("lease_ttl", 86400),
        kind,
    )


RESERVED = ("etcd", "etcd-2", "etcd-3", "etcd-4", "etcd-5", "underlay", "gateway")


def _named_items(data: dict) -> list[tuple[tuple, dict]]:
    items = [((s, i), x) for s in ("nodes", "pods") for i, x in enumerate(data.get(s, []))]
    hosts = data.get("external", {}).get("hosts", [])
    return items + [(("external", "hosts", i), x) for i, x in enumerate(hosts)]


def _check_unique_names(data: dict, loc: Locator) -> None:
    seen: dict[str, tuple] = {name: () for name in RESERVED}
    for where, item in _named_items(data):
        name, path = item["name"], (*where, "name")
        if name in seen:
            what = (
                "a reserved name" if seen[name] == () else f"already used at {dotted(seen[name])}"
            )
            raise loc.error(
                path,
                f"duplicate name {name!r} ({what})",
                "node, pod and host names must be unique in a lab",
            )
        seen[name] = path


def _host_in(net: IPv4Network, addr: IPv4Address, loc: Locator, path: tuple, what: str) -> None:
    if addr not in net:
        raise loc.error(path, f"{addr} is outside {what} {net}")
    if net.prefixlen < 31 and addr in (net.network_address, net.broadcast_address):
        raise loc.error(path, f"{addr} is the network or broadcast address of {net}")


def _build_nodes(
    data: dict,
    underlay: Underlay,
    pods_net: PodNetwork,
    loc: Locator,
    used: dict[IPv4Address, tuple],
    bridge: str,
) -> tuple[Node, ...]:
    nodes, subnets = [], {}
    for i, raw in enumerate(data["nodes"]):
        path = ("nodes", i)
        if "address" in raw:
            addr = IPv4Address(raw["address"])
        else:
            addr = underlay.subnet.network_address + FIRST_NODE_HOST + i
        _host_in(underlay.subnet, addr, loc, path + ("address",), "the underlay subnet")
        if addr in used:
            raise loc.error(path + ("address",), f"{addr} is already used at {dotted(used[addr])}")
        used[addr] = path + ("address",)
        subnet = None
        if "subnet" not in raw and pods_net.pinned:
            raise loc.error(
                path,
                f"node {raw['name']!r} has no block",
                f"give each node its block of {pods_net.what}: subnet: <a /{pods_net.prefixlen}>",
            )
        if "subnet" in raw:
            subnet = IPv4Network(raw["subnet"])
            spath = path + ("subnet",)
            if not subnet.subnet_of(pods_net.network):
                raise loc.error(spath, f"{subnet} is outside {pods_net.what} {pods_net.network}")
            if subnet.prefixlen != pods_net.prefixlen:
                raise loc.error(spath, f"{subnet} is not a /{pods_net.prefixlen} ({pods_net.unit})")
            for other, opath in subnets.items():
                if subnet.overlaps(other):
                    raise loc.error(spath, f"{subnet} overlaps {other} of {dotted(opath)}")
            subnets[subnet] = spath
        nodes.append(
            Node(raw["name"], addr, subnet, raw.get("iface", "eth0"), raw.get("bridge", bridge))
        )
    return tuple(nodes)


def _build_pods(data: dict, nodes: tuple[Node, ...], loc: Locator, calico: bool) -> tuple[Pod, ...]:
    by_name = {n.name: n for n in nodes}
    pods, addrs = [], {}
    for i, raw in enumerate(data.get("pods", [])):
        path = ("pods", i)
        node = by_name.get(raw["node"])
        if node is None:
            raise loc.error(
                path + ("node",),
                f"no node named {raw['node']!r}",
                f"nodes are: {', '.join(by_name)}",
            )
        addr = None
        if "address" in raw:
            addr = IPv4Address(raw["address"])
            apath = path + ("address",)
            if node.subnet is None:
                raise loc.error(
                    apath,
                    f"pod address given but node {node.name!r} has no pinned subnet",
                    "pin the node's subnet, or leave the pod address out",
                )
            if calico:  # a pod's /32: any address of the block, as Calico's IPAM hands out
                if addr not in node.subnet:
                    raise loc.error(apath, f"{addr} is outside node {node.name}'s block")
            else:
                _host_in(node.subnet, addr, loc, apath, f"node {node.name}'s subnet")
            if not calico and int(addr) - int(node.subnet.network_address) < 2:
                raise loc.error(apath, f"{addr} is taken by flannel.1 (.0) or {node.bridge} (.1)")
            if addr in addrs:
                raise loc.error(apath, f"{addr} is already used at {dotted(addrs[addr])}")
            addrs[addr] = apath
        containers = _build_containers(raw.get("containers", []), path, loc)
        pods.append(Pod(raw["name"], node.name, addr, containers, raw.get("namespace", "default")))
    return tuple(pods)


def _serve(specs: list[str]) -> tuple[Serve, ...]:
    return tuple(Serve(proto, int(port)) for proto, port in (s.split(":") for s in specs))


def _check_listeners(serve: tuple[Serve, ...], seen: dict, loc: Locator, path: tuple) -> None:
    """Two listeners on one port and protocol cannot share a network namespace."""
    for i, s in enumerate(serve):
        key = ("udp" if s.proto == "udp" else "tcp", s.port)
        if not 0 < s.port < 65536:
            raise loc.error((*path, i), f"port {s.port} is out of range")
        if key in seen:
            raise loc.error(
                (*path, i),
                f"{s} is already served at {dotted(seen[key])}",
                "containers of a pod share its network namespace and its ports",
            )
        seen[key] = (*path, i)


def _build_containers(raw: list[dict], pod_path: tuple, loc: Locator) -> tuple[Container, ...]:
    out, names, ports = [], set(), {}
    for i, c in enumerate(raw):
        path = (*pod_path, "containers", i)
        if c["name"] in names:
            raise loc.error((*path, "name"), f"duplicate container name {c['name']!r}")
        names.add(c["name"])
        if not c.get("serve") and not c.get("command"):
            raise loc.error(
                path,
                "a container needs `serve` or `command`",
                "e.g. serve: [http:8080] or command: [sleep, infinity]",
            )
        serve = _serve(c.get("serve", []))
        _check_listeners(serve, ports, loc, (*path, "serve"))
        out.append(Container(c["name"], serve, tuple(c.get("command", []))))
    return tuple(out)


def _build_external(
    data: dict,
    underlay: Underlay,
    networks: list[tuple[IPv4Network, str]],
    loc: Locator,
    used: dict,
) -> External | None:
    raw = data.get("external")
    if raw is None:
        return None
    gw = IPv4Address(raw.get("gateway", str(underlay.subnet.network_address + 1)))
    _host_in(underlay.subnet, gw, loc, ("external", "gateway"), "the underlay subnet")
    if gw in used:
        raise loc.error(("external", "gateway"), f"{gw} is already used at {dotted(used[gw])}")
    used[gw] = ("external", "gateway")
    subnet = IPv4Network(raw.get("subnet", "203.0.113.0/24"))
    for net, what in networks:
        if subnet.overlaps(net):
            raise loc.error(("external", "subnet"), f"{subnet} overlaps {what} {net}")
    hosts, addrs = [], {subnet.network_address + 1: ("external", "subnet")}
    for i, h in enumerate(raw.get("hosts", [])):
        path = ("external", "hosts", i, "address")
        addr = IPv4Address(h["address"])
        _host_in(subnet, addr, loc, path, "the external subnet")
        if addr in addrs:
            what = "the gateway" if addrs[addr] == ("external", "subnet") else dotted(addrs[addr])
            raise loc.error(path, f"{addr} is already used by {what}")
        addrs[addr] = path
        serve = _serve(h.get("serve", []))
        _check_listeners(serve, {}, loc, ("external", "hosts", i, "serve"))
        hosts.append(ExternalHost(h["name"], addr, serve, tuple(h.get("names", []))))
    return External(gw, subnet, tuple(hosts))


def build(data: dict, loc: Locator) -> Topology:
    raw_ul = data.get("underlay", {})
    underlay = Underlay(
        IPv4Network(raw_ul.get("subnet", "10.46.181.0/24")),
        raw_ul.get("mtu", 1500),
        raw_ul.get("link_mtu"),
    )
    versions = _build_versions(data, loc)
    calico = build_calico(data, loc)
    flannel = None if calico else _build_flannel(data.get("flannel", {}), loc, versions)
    pods_net = pod_network(flannel, calico)
    if underlay.subnet.overlaps(pods_net.network):
        raise loc.error(
            ("underlay", "subnet"),
            f"{underlay.subnet} overlaps {pods_net.what} {pods_net.network}",
        )
    _check_unique_names(data, loc)
    raw_etcd = data.get("etcd", {})
    etcd_addr = IPv4Address(
        raw_etcd.get("address", str(underlay.subnet.network_address + ETCD_HOST))
    )
    _host_in(underlay.subnet, etcd_addr, loc, ("etcd", "address"), "the underlay subnet")
    members = raw_etcd.get("members", 1)
    used = {}
    for i in range(members):
        _host_in(underlay.subnet, etcd_addr + i, loc, ("etcd", "address"), "the underlay subnet")
        used[etcd_addr + i] = ("etcd", "address")
    nodes = _build_nodes(data, underlay, pods_net, loc, used, versions.docker.bridge)
    pods = _build_pods(data, nodes, loc, calico is not None)
    api = "v3" if calico else versions.flannel.etcd_api  # Calico's etcd datastore is v3
    etcd = Etcd(etcd_addr, raw_etcd.get("binary"), raw_etcd.get("api", api), members)
    networks = [(pods_net.network, pods_net.what), (underlay.subnet, "the underlay")]
    external = _build_external(data, underlay, networks, loc, used)
    if external:
        networks.append((external.subnet, "the external subnet"))
    services = build_services(data, pods, networks, loc)
    checks = build_checks(data, nodes, pods, external, services, loc)
    dns = build_dns(data, services, external, loc)
    return Topology(
        data["name"],
        loc.file,
        underlay,
        etcd,
        flannel,
        nodes,
        pods,
        external,
        services,
        checks,
        versions,
        dns,
        data.get("description", ""),
        _kube_proxy_mode(data, loc, versions),
        calico,
    )
