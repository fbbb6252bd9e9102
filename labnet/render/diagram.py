"""An SVG diagram of a lab, and of a flow's path through it (with its VXLAN envelope).

Nodes are boxes holding their interfaces (eth0, flannel.1, docker0) and their pods; the
underlay segment runs across the top with etcd, the gateway and the external hosts. Large
type and strong colours: it is meant for a projector. Pure: topology and addresses in, SVG
text out.
"""

from __future__ import annotations

from html import escape

from labnet import plan
from labnet.model import Topology
from labnet.plan import path

NODE_W, POD_W, POD_H, GAP = 400, 145, 54, 40
Y_UNDERLAY, Y_NODE = 150, 200
Y_ETH0, Y_FLANNEL, Y_DOCKER, Y_PODS = 250, 320, 390, 460
FONT = "font-family='DejaVu Sans, Arial, sans-serif'"
PATH_COLOUR = "#d62728"


def _text(
    x: float,
    y: float,
    s: str,
    size: int = 15,
    weight: str = "normal",
    anchor: str = "middle",
    fill: str = "#111",
) -> str:
    return (
        f"<text x='{x:.0f}' y='{y:.0f}' {FONT} font-size='{size}' font-weight='{weight}' "
        f"text-anchor='{anchor}' fill='{fill}'>{escape(s)}</text>"
    )


def _box(
    x: float, y: float, w: float, h: float, fill: str, stroke: str = "#333", rx: int = 8
) -> str:
    return (
        f"<rect x='{x:.0f}' y='{y:.0f}' width='{w:.0f}' height='{h:.0f}' rx='{rx}' "
        f"fill='{fill}' stroke='{stroke}' stroke-width='2'/>"
    )


def _line(x1: float, y1: float, x2: float, y2: float, colour: str = "#555", width: int = 2) -> str:
    return (
        f"<line x1='{x1:.0f}' y1='{y1:.0f}' x2='{x2:.0f}' y2='{y2:.0f}' stroke='{colour}' "
        f"stroke-width='{width}'/>"
    )


class _Layout:
    """Where each drawn thing is, keyed by (namespace, interface)."""

    def __init__(self) -> None:
        self.points: dict[tuple[str, str], tuple[float, float]] = {}
        self.parts: list[str] = []


def _node(
    lay: _Layout, topo: Topology, x: float, node, subnet: str, pods: dict[str, str], mac: str
) -> float:
    lab = topo.name
    ns = plan.netns_name(lab, node.name)
    width = max(NODE_W, len(pods) * (POD_W + 10) + 20)
    height = Y_PODS - Y_NODE + POD_H + 30
    lay.parts.append(_box(x, Y_NODE, width, height, "#eef3fb", "#1f4e9a"))
    lay.parts.append(
        _text(x + 12, Y_NODE + 24, f"{node.name}  (netns {ns})", 16, "bold", "start", "#1f4e9a")
    )
    cx = x + width / 2
    rows = [(Y_ETH0, node.iface, f"{node.iface} {node.address}", "#fff")]
    rows += _calico_rows(topo, subnet) if topo.calico else _flannel_rows(topo, node, subnet, mac)
    for y, ifname, label, fill in rows:
        lay.parts.append(_box(cx - 170, y - 18, 340, 34, fill))
        lay.parts.append(_text(cx, y + 5, label, 14))
        lay.points[(ns, ifname)] = (cx + 186, y)  # beside the box: the label stays readable
    lay.parts.append(_line(cx, Y_UNDERLAY, cx, Y_ETH0 - 18, "#1f4e9a", 3))
    lay.points[(plan.netns_name(lab, "underlay"), plan.short_ifname("ul-", node.name))] = (
        cx + 186,
        Y_UNDERLAY,
    )
    px = x + 10 + (width - 20 - len(pods) * (POD_W + 10) + 10) / 2
    namespaces = {p.name: p.namespace for p in topo.pods}
    for pod, ip in pods.items():
        pcx = px + POD_W / 2
        lay.parts.append(_line(pcx, Y_DOCKER + 16, pcx, Y_PODS, "#3a7d3a"))
        lay.parts.append(_box(px, Y_PODS, POD_W, POD_H, "#ffffff", "#3a7d3a"))
        lay.parts.append(_text(pcx, Y_PODS + 22, pod, 15, "bold"))
        lay.parts.append(_text(pcx, Y_PODS + 42, f"eth0 {ip}", 13))
        lay.points[(plan.netns_name(lab, pod), "eth0")] = (pcx, Y_PODS)
        if topo.calico:  # the pod's cali veth: where its line meets the node's routes
            cali = plan.cali_name(namespaces[pod], pod)
            lay.points[(ns, cali)] = (pcx, Y_DOCKER + 16)
        px += POD_W + 10
    return width


def _flannel_rows(topo: Topology, node, subnet: str, mac: str) -> list[tuple[float, str, str, str]]:
    """flannel.1 (flannel0 with udp; none with host-gw) and the node's bridge."""
    fl, gw = topo.flannel, subnet.split("/")[0]
    rows = [
        (
            Y_FLANNEL,
            fl.device,
            f"{fl.device} {gw} vxlan id {fl.vni} {mac}"
            if fl.vxlan
            else f"{fl.device} {gw} TUN: the flannel agent, udp/{fl.port}",
            "#fff4e0",
        ),
        (
            Y_DOCKER,
            node.bridge,
            f"{node.bridge} {_first(subnet)}/{subnet.split('/')[1]}",
            "#eaf7ea",
        ),
    ]
    if fl.backend == "host-gw":  # no flannel.1, pods' traffic leaves by eth0
        del rows[0]
    return rows


def _calico_rows(topo: Topology, subnet: str) -> list[tuple[float, str, str, str]]:
    """No tunnel and no bridge: BIRD, and the node's routes to its pods' cali veths."""
    bgp = f"BIRD AS {topo.calico.asn}: {subnet} (blackhole)"
    cali = "/32 routes to cali*, proxy ARP"
    return [(Y_FLANNEL, "bird", bgp, "#fff4e0"), (Y_DOCKER, "cali", cali, "#eaf7ea")]


def _first(subnet: str) -> str:
    a, b, c, d = subnet.split("/")[0].split(".")
    return f"{a}.{b}.{c}.{int(d) + 1}"


def _top(lay: _Layout, topo: Topology, total_w: float) -> None:
    lab = topo.name
    lay.parts.append(_line(20, Y_UNDERLAY, total_w - 20, Y_UNDERLAY, "#1f4e9a", 6))
    lay.parts.append(
        _text(
            24,
            Y_UNDERLAY - 10,
            f"underlay {topo.underlay.subnet} (bridge br0, netns {lab}-underlay)",
            14,
            "bold",
            "start",
            "#1f4e9a",
        )
    )
    lay.parts.append(_box(30, 20, 260, 60, "#f7f0fb", "#6a3d9a"))
    lay.parts.append(_text(160, 45, "etcd", 16, "bold"))
    lay.parts.append(_text(160, 66, f"eth0 {topo.etcd.address}:2379", 13))
    lay.parts.append(_line(160, 80, 160, Y_UNDERLAY, "#6a3d9a"))
    if topo.external:
        ext = topo.external
        gx = total_w - 600
        lay.parts.append(_box(gx, 20, 230, 60, "#fdf2e6", "#b35806"))
        lay.parts.append(_text(gx + 115, 45, "gateway", 16, "bold"))
        lay.parts.append(_text(gx + 115, 66, f"{ext.gateway} | {ext.gateway_inside}", 13))
        lay.parts.append(_line(gx + 115, 80, gx + 115, Y_UNDERLAY, "#b35806"))
        gw_ns = plan.netns_name(lab, "gateway")
        lay.points[(gw_ns, "eth0")] = (gx + 115, 80)
        lay.points[(gw_ns, plan.EXTERNAL_BRIDGE)] = (gx + 230, 50)
        lay.points[(plan.netns_name(lab, "underlay"), plan.short_ifname("ul-", "gateway"))] = (
            gx + 115,
            Y_UNDERLAY,
        )
        hx = gx + 260
        for h in ext.hosts:
            lay.parts.append(_line(gx + 230, 50, hx, 50, "#b35806"))
            lay.parts.append(_box(hx, 20, 290, 60, "#fff", "#b35806"))
            lay.parts.append(_text(hx + 145, 45, f"{h.name} (outside the cluster)", 15, "bold"))
            lay.parts.append(_text(hx + 145, 66, f"eth0 {h.address}", 13))
            lay.points[(plan.netns_name(lab, h.name), "eth0")] = (hx, 50)
            hx += 310


def _envelope(hop: path.Hop, x: float, y: float) -> list[str]:
    """The outer packet around the inner one, as nested boxes."""
    o = hop.outer
    layers = [
        (f"IP {o.src} > {o.dst}", "#d9e7fb"),
        (f"UDP dport {o.port}", "#fde3c8"),
        (f"VXLAN VNI {o.vni}" if o.vni is not None else "flannel udp: no header", "#fff2b3"),
        (f"inner IP {hop.src} > {hop.dst}", "#daf2d6"),
        (hop.proto.upper() + (f" :{hop.port}" if hop.port else ""), "#ffffff"),
    ]
    out, w, h = [], 420, 150
    for i, (label, fill) in enumerate(layers):
        out.append(_box(x + i * 14, y + i * 22, w - i * 28, h - i * 26, fill, PATH_COLOUR, 6))
        out.append(_text(x + i * 14 + 8, y + i * 22 + 17, label, 13, "bold", "start"))
    return out


def svg(
    topo: Topology,
    subnets: dict[str, str],
    pod_ips: dict[str, str],
    macs: dict[str, str] | None = None,
    flow: path.Path | None = None,
    title: str = "",
) -> str:
    macs = macs or {}
    lay = _Layout()
    x, widths = 30.0, []
    for node in topo.nodes:
        pods = {p.name: pod_ips.get(p.name, "?") for p in topo.pods if p.node == node.name}
        w = _node(lay, topo, x, node, subnets.get(node.name, "?/24"), pods, macs.get(node.name, ""))
        widths.append(w)
        x += w + GAP
    total_w = max(x + 10, 1150.0)
    height = Y_PODS + POD_H + 60 + (190 if flow else 0)
    head = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{total_w:.0f}' height='{height}' "
        f"viewBox='0 0 {total_w:.0f} {height}'>",
        _box(0, 0, total_w, height, "#ffffff", "#ffffff", 0),
    ]
    _top(lay, topo, total_w)
    if flow:
        pts = [
            lay.points[(h.netns, h.ifname)] for h in flow.hops if (h.netns, h.ifname) in lay.points
        ]
        if pts:
            poly = " ".join(f"{px:.0f},{py:.0f}" for px, py in pts)
            lay.parts.append(
                f"<polyline points='{poly}' fill='none' stroke='{PATH_COLOUR}' "
                "stroke-width='5' stroke-opacity='0.8' stroke-linejoin='round'/>"
            )
            for i, (px, py) in enumerate(pts, 1):
                lay.parts.append(
                    f"<circle cx='{px:.0f}' cy='{py:.0f}' r='11' fill='{PATH_COLOUR}'/>"
                )
                lay.parts.append(_text(px, py + 5, str(i), 12, "bold", "middle", "#fff"))
        enc = next((h for h in flow.hops if h.outer), None)
        if enc:
            lay.parts += _envelope(enc, 30, Y_PODS + POD_H + 50)
            lay.parts.append(
                _text(
                    470,
                    Y_PODS + POD_H + 70,
                    "on the underlay: the inner packet travels inside VXLAN/UDP/IP",
                    14,
                    "normal",
                    "start",
                )
            )
    if title:
        lay.parts.append(_text(total_w - 20, height - 12, title, 14, "bold", "end", PATH_COLOUR))
    return "\n".join(head + lay.parts + ["</svg>"]) + "\n"
