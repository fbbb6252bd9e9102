"""The benchmark's plot: time and memory against lab size, as a small self-contained SVG."""

from __future__ import annotations

from html import escape

W, H, PAD = 360, 240, 48
SERIES = [  # (key in a case, label, colour)
    ("labnet_up", "labnet up", "#1f77b4"),
    ("labnet_down", "labnet down", "#aec7e8"),
    ("ip_batch_up", "ip -batch up", "#ff7f0e"),
    ("mininet_up_down", "Mininet up+down", "#2ca02c"),
]


def _size(case: dict) -> int:
    """Namespaces a lab holds, roughly: its nodes and pods."""
    return case["nodes"] + case["pods"]


def _chart(x0: int, title: str, unit: str, points: list[tuple[str, str, list]]) -> list[str]:
    """One chart: points is [(label, colour, [(x, y), ...]), ...]."""
    xs = [x for _, _, pts in points for x, _ in pts] or [1]
    ys = [y for _, _, pts in points for _, y in pts] or [1]
    xmax, ymax = max(xs) * 1.05 or 1, max(ys) * 1.1 or 1

    def px(x: float) -> float:
        return x0 + PAD + (W - PAD - 16) * x / xmax

    def py(y: float) -> float:
        return H - PAD + 8 - (H - PAD - 24) * y / ymax

    out = [
        f'<text x="{x0 + W / 2}" y="16" text-anchor="middle" font-weight="bold">'
        f"{escape(title)}</text>",
        f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(xmax)}" y2="{py(0)}" stroke="#333"/>',
        f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(0)}" y2="{py(ymax)}" stroke="#333"/>',
        f'<text x="{x0 + W / 2}" y="{H - 6}" text-anchor="middle">namespaces (nodes + pods)</text>',
        f'<text x="{x0 + 12}" y="{H / 2}" transform="rotate(-90 {x0 + 12} {H / 2})" '
        f'text-anchor="middle">{escape(unit)}</text>',
    ]
    for frac in (0.5, 1.0):
        tick = ymax / 1.1 * frac
        out.append(f'<text x="{px(0) - 4}" y="{py(tick) + 4}" text-anchor="end">{tick:.3g}</text>')
    out.append(f'<text x="{px(max(xs))}" y="{py(0) + 14}" text-anchor="middle">{max(xs)}</text>')
    for i, (label, colour, pts) in enumerate(points):
        pts = sorted(pts)
        if pts:
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
            out.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
            out += [
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>' for x, y in pts
            ]
        ly = 30 + 14 * i
        out.append(f'<rect x="{px(0) + 8}" y="{ly - 8}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{px(0) + 22}" y="{ly + 1}">{escape(label)}</text>')
    return out


def svg(result: dict) -> str:
    grown = [c for c in result["cases"] if c["generated"]]
    times = [
        (label, colour, [(_size(c), c[key]) for c in grown if c.get(key) is not None])
        for key, label, colour in SERIES
    ]
    memory = [("all processes (PSS)", "#9467bd", [(_size(c), c["pss_mb"]) for c in grown])]
    body = _chart(0, "time", "seconds", times) + _chart(W, "memory", "MB", memory)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H}" '
        f'font-family="sans-serif" font-size="11">\n'
        f'<rect width="{2 * W}" height="{H}" fill="white"/>\n' + "\n".join(body) + "\n</svg>\n"
    )
