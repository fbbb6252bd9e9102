"""Explain a lost packet with the kernel state at the hop where it was last expected:
routes, neighbours, FDB entries, the vxlan device, the nat rules."""

from __future__ import annotations

import json
import subprocess

from labnet.daemons import state
from labnet.kernel import iptables
from labnet.model import Check
from labnet.plan import path


def _run(ns: str, argv: list[str]) -> tuple[int, str]:
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=10
    )
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def _json(ns: str, argv: list[str]) -> list | dict | None:
    code, out = _run(ns, argv)
    if code != 0:
        return None
    try:
        return json.loads(out or "[]")
    except json.JSONDecodeError:
        return None


def _link(ns: str, ifname: str) -> dict | None:
    data = _json(ns, ["ip", "-j", "-d", "link", "show", "dev", ifname])
    return data[0] if data else None


def _route(ns: str, hop: path.Hop) -> str:
    data = _json(ns, ["ip", "-j", "route", "get", hop.dst])
    if not data:
        return f"no route to {hop.dst} in {ns}"
    dev = data[0].get("dev")
    if dev != hop.ifname:
        via = f" via {data[0]['gateway']}" if data[0].get("gateway") else ""
        return (
            f"the kernel routes {hop.dst}{via} dev {dev}, not through {hop.ifname}: "
            "a route is missing"
        )
    return ""


def _vxlan(m: path.NetModel, ns: str, hop: path.Hop) -> str:
    dev = m.topo.flannel.device
    remote = m.node_of_subnet(hop.dst)
    if _link(ns, dev) is None:
        return f"{ns} has no {dev}"
    neigh = _json(ns, ["ip", "-j", "neigh", "show", "dev", dev]) or []
    gateway = str(remote.subnet.network_address) if remote else hop.dst
    target = hop.dst if m.topo.flannel.mode == "miss" else gateway
    entry = next((n for n in neigh if n.get("dst") == target and n.get("lladdr")), None)
    if entry is None:
        return (
            f"no neighbour entry for {target} on {dev} in {ns}: nobody answered the L3 "
            "miss (is the flannel agent running?)"
        )
    fdb = _json(ns, ["bridge", "-j", "fdb", "show", "dev", dev]) or []
    mac = entry["lladdr"]
    if not any(f.get("mac") == mac and f.get("dst") for f in fdb):
        return (
            f"no FDB entry for {mac} on {dev} in {ns}: the kernel does not know which node "
            f"to send it to (`bridge fdb show dev {dev}` lists no `{mac} dst ...`)"
        )
    return ""


def _decap(m: path.NetModel, ns: str, hop: path.Hop) -> str:
    link = _link(ns, hop.ifname)
    if link is None:
        return f"{ns} has no {hop.ifname}"
    data = link.get("linkinfo", {}).get("info_data", {})
    vni, port = data.get("id"), data.get("port")
    fl = m.topo.flannel
    if vni != fl.vni:
        return f"{hop.ifname} in {ns} has VNI {vni}; the packets arrive with VNI {fl.vni}"
    if port != fl.port:
        return f"{hop.ifname} in {ns} listens on UDP {port}; the packets arrive on {fl.port}"
    return ""


def _dnat(ns: str, check: Check, target_ip: str) -> str:
    chains = iptables.parse_save(iptables.save(ns))
    for rule in chains.get("KUBE-SERVICES", []):
        if iptables.option(rule, "-d") in (target_ip, f"{target_ip}/32") and iptables.option(
            rule, "--dport"
        ) == str(check.port):
            return ""
    return (
        f"no rule in {ns}'s KUBE-SERVICES matches {check.proto} {target_ip}:{check.port}: "
        "nothing rewrites the destination to an endpoint (no DNAT)"
    )


def _masquerade(ns: str, hop: path.Hop) -> str:
    chains = iptables.parse_save(iptables.save(ns))
    rules = [r for r in chains.get("POSTROUTING", []) if iptables.option(r, "-j") == "MASQUERADE"]
    if not rules:
        return f"no MASQUERADE rule in {ns}'s POSTROUTING: the source is not rewritten"
    return (
        f"the source was not rewritten to {hop.src} ({len(rules)} MASQUERADE rules in POSTROUTING)"
    )


def explain(m: path.NetModel, st: state.LabState, check: Check, hop: path.Hop) -> str:
    ns = hop.netns
    if _link(ns, hop.ifname) is None:
        return f"{ns} has no interface {hop.ifname}"
    if "MASQUERADE" in hop.note:
        reason = _masquerade(ns, hop)
        if reason:
            return reason
    if hop.note == "decapsulated":
        reason = _decap(m, ns, hop)
        if reason:
            return reason
    if hop.outer is not None or (hop.ifname == m.topo.flannel.device and hop.direction == "out"):
        here = m.nodes.get(ns)
        if here and hop.direction == "out":
            reason = _vxlan(m, ns, hop)
            if reason:
                return reason
    svc_target = next(
        (str(s.cluster_ip) for s in m.topo.services if s.full_name == check.target), None
    )
    if svc_target and ns in m.nodes and hop.dst != svc_target and not hop.reply:
        reason = _dnat(ns, check, svc_target)
        if reason:
            return reason
    if (
        hop.direction == "out"
        and m.ifaces.get((ns, hop.ifname))
        and m.ifaces[(ns, hop.ifname)].kind != "vxlan"
    ):
        reason = _route(ns, hop)
        if reason:
            return reason
    return f"the kernel state in {ns} shows no obvious cause; open the pcaps of this run"
