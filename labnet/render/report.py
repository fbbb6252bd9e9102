"""Pictures and pages for people who would rather look than read: the lab's SVG diagram with a
flow's path, and the self-contained HTML report of a verify run."""

from __future__ import annotations

import os
from html import escape
from pathlib import Path
from urllib.parse import quote

from labnet import model, plan
from labnet.daemons import state
from labnet.errors import InputError
from labnet.lab import lookup
from labnet.plan import path
from labnet.render import diagram


def lab_facts(
    target: str,
) -> tuple[model.Topology, dict[str, str], dict[str, str], dict[str, str], state.LabState | None]:
    """Topology, subnets, pod IPs and MACs: from the running lab, else from what is pinned."""
    name = lookup.resolve_lab(target)
    st = state.load(name) if state.lab_dir(name).exists() else None
    if st is not None:
        topo = model.load(st.topology)
        subnets = {n: f["subnet"] for n, f in st.nodes.items()}
        pods = {p.name: st.addresses.get(p.name, "?") for p in topo.pods}
        return topo, subnets, pods, lookup.flannel_macs(st), st
    if not target.endswith((".yaml", ".yml")):
        raise InputError(f"no lab named {name!r} is up", "give the topology file instead")
    topo = model.load(target)
    subnets = {n.name: str(n.subnet) for n in topo.nodes if n.subnet}
    planned = {p: ip for n in plan.plan(topo).nodes.values() if n for p, ip in n.pods.items()}
    pods = {p.name: planned.get(p.name, "?") for p in topo.pods}  # pinned subnets: as planned
    return topo, subnets, pods, {}, None


def _address(
    topo: model.Topology, st: state.LabState | None, pods: dict[str, str], name: str
) -> str:
    if st is not None:
        return lookup.address_of(st, name)
    hosts = {n.name: str(n.address) for n in topo.nodes} | pods
    hosts |= {h.name: str(h.address) for h in topo.external.hosts} if topo.external else {}
    if name in hosts:
        return hosts[name]
    return name


def graph(target: str, flow: str = "") -> tuple[str, str]:
    """(lab name, SVG). flow is FROM:TO (names or addresses), drawn with its encapsulation."""
    topo, subnets, pods, macs, st = lab_facts(target)
    drawn = None
    if flow:
        if ":" not in flow:
            raise InputError(f"--path {flow!r}: expected FROM:TO", "e.g. --path pod1:pod3")
        if len(subnets) < len(topo.nodes):
            raise InputError(
                "the path needs every node's subnet",
                "bring the lab up first, or pin the subnets in the topology",
            )
        src, dst = flow.split(":", 1)
        m = path.build(topo, subnets, pods)
        src_ip = _address(topo, st, pods, src)
        dst_ip = _address(topo, st, pods, dst)
        drawn, _ = path.predict(m, plan.netns_name(topo.name, src), src_ip, dst_ip, "icmp", None)
    title = f"path {flow.replace(':', ' -> ')}" if flow else topo.name
    return topo.name, diagram.svg(topo, subnets, pods, macs, drawn, title)


# ---------------------------------------------------------------- the HTML report of verify


CSS = """
body{font-family:DejaVu Sans,Arial,sans-serif;margin:24px;color:#111}
h1{font-size:26px} h2{font-size:20px;margin-top:34px}
.pass{color:#1a7f37} .fail{color:#c62828}
table.hops{border-collapse:collapse;margin:10px 0;font-size:14px}
table.hops td,table.hops th{border:1px solid #bbb;padding:4px 8px;vertical-align:top}
table.hops th{background:#eef3fb}
td.seen{background:#e6f4ea} td.missing,td.mismatch{background:#fde7e7}
td.nocapture{background:#fff4d6}
.layer{border:2px solid #555;border-radius:6px;padding:3px 6px;margin:2px;font-size:12px}
.l0{background:#d9e7fb}.l1{background:#fde3c8}.l2{background:#fff2b3}.l3{background:#daf2d6}
.l4{background:#fff}
.why{color:#c62828;font-weight:bold}
"""


def _layers(hop: path.Hop) -> str:
    """The hop's headers as nested boxes: outer IP > UDP > VXLAN > inner IP > L4."""
    inner = [
        f"IP {hop.src} &gt; {hop.dst}",
        hop.proto.upper() + (f" :{hop.port}" if hop.port else ""),
    ]
    names = (
        [
            f"IP {hop.outer.src} &gt; {hop.outer.dst}",
            f"UDP {hop.outer.port}",
            f"VXLAN VNI {hop.outer.vni}" if hop.outer.vni is not None else "flannel udp: none",
        ]
        if hop.outer
        else []
    ) + inner
    classes = ["l0", "l1", "l2", "l3", "l4"][-len(names) :]
    html = ""
    for name, cls in zip(reversed(names), reversed(classes), strict=True):
        html = f"<div class='layer {cls}'>{name}{html}</div>"
    return html


def _href(file: Path, page_dir: Path) -> str:
    """A link relative to the page, so the page and its run directory can be copied, uploaded
    or opened on another machine together."""
    return escape(quote(os.path.relpath(os.path.abspath(file), os.path.abspath(page_dir))))


def html(report, target: str, page: Path | None = None) -> str:
    """The report as a page to be written at `page` (default: report.html in the run
    directory); its links to the pcaps are relative to where the page is."""
    from labnet.probe.verify import Report

    assert isinstance(report, Report)
    page_dir = (page or report.run_dir / "report.html").parent
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>labnet verify "
        f"{escape(report.lab)}</title><style>{CSS}</style></head><body>",
        f"<h1>labnet verify: {escape(report.lab)}</h1>",
    ]
    ok = sum(r.passed for r in report.results)
    cls = "pass" if report.passed else "fail"
    parts.append(
        f"<p class='{cls}' id='summary'>{ok}/{len(report.results)} checks passed in "
        f"{report.seconds:.2f} s</p>"
    )
    first = report.results[0] if report.results else None
    if first:
        flow = f"{first.check.source}:{first.check.target}"
        if "/" in first.check.target:
            flow = ""
        _, picture = graph(target, flow)
        parts.append(f"<div id='diagram'>{picture}</div>")
    for i, r in enumerate(report.results):
        verdict = "PASS" if r.passed else "FAIL"
        parts.append(
            f"<h2 class='{'pass' if r.passed else 'fail'}'>{verdict} {escape(r.check.name)}</h2>"
        )
        parts.append(
            f"<p>{escape(r.check.source)} &rarr; {escape(r.check.target)} "
            f"({escape(r.check.proto)}{':' + str(r.check.port) if r.check.port else ''})</p>"
        )
        attempt = next(
            (a for a in r.attempts if any(v.verdict != "seen" for v in a.hops)),
            r.attempts[0] if r.attempts else None,
        )
        parts.append(
            f"<table class='hops' id='hops-{i}'><tr><th>#</th><th>hop</th><th>expected "
            "headers</th><th>seen</th><th>verdict</th><th>pcap</th></tr>"
        )
        for n, v in enumerate(attempt.hops if attempt else [], 1):
            pcap = report.run_dir / f"{v.hop.netns}_{v.hop.ifname}.pcap"
            link = (
                f"<a href='{_href(pcap, page_dir)}'>{escape(pcap.name)}</a>"
                if pcap.exists()
                else ""
            )
            parts.append(
                f"<tr><td>{n}</td><td>{escape(v.hop.netns)}<br>{escape(v.hop.ifname)} "
                f"({v.hop.direction})</td><td>{_layers(v.hop)}</td>"
                f"<td>{escape(v.seen or '-')}</td>"
                f"<td class='{v.verdict.replace(' ', '')}'>{v.verdict}</td>"
                f"<td>{link}</td></tr>"
            )
        parts.append("</table>")
        for p in r.problems:
            parts.append(f"<p class='why'>problem: {escape(p)}</p>")
        if r.explanation:
            parts.append(f"<p class='why'>why: {escape(r.explanation)}</p>")
    links = [f"<a href='{_href(p, page_dir)}'>{escape(p.name)}</a>" for p in report.pcaps]
    parts.append(f"<p id='pcaps'>pcap files: {', '.join(links) or 'none'}</p></body></html>")
    return "\n".join(parts) + "\n"


def write(text: str, out: str | Path) -> Path:
    p = Path(out)
    p.write_text(text, encoding="utf-8")
    return p
