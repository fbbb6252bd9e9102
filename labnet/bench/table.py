"""The bench's results as terminal tables: medians with their spread, and the fitted growth."""

from __future__ import annotations

from rich.table import Table


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _spread(median: float, runs: list[float]) -> str:
    """The median, and the fastest and slowest run when there were several: on a shared
    machine one lab's runs differ by 20 % and more."""
    if len(runs) < 2:
        return _secs(median)
    return f"{median:.2f} ({min(runs):.2f}-{max(runs):.2f})"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def bench_table(result: dict) -> Table:
    """One row a case: medians side by side (labnet's up with its fastest and slowest run),
    the ratios, and what the user-style run saw."""
    m = result["machine"]
    t = Table(
        title=f"inv bench: medians of {result['runs']} runs (labnet up: fastest-slowest "
        f"too), {m['cpus']} cores, "
        f"kernel {m['kernel']}, Python {m['python']}",
        title_justify="left",
    )
    for col in ("lab", "nodes", "pods", "labnet up", "labnet down", "ip -batch up+down"):
        t.add_column(col, justify="right" if col != "lab" else "left")
    for col in ("vs ip -batch", "Mininet up+down", "vs Mininet", "leases", "PSS MB", "pings"):
        t.add_column(col, justify="right")
    for c in result["cases"]:
        pings = f"{c['pings'].get('answered', 0)}/{c['pings'].get('sent', 0)}"
        t.add_row(
            c["label"],
            str(c["nodes"]),
            str(c["pods"]),
            _spread(c["labnet_up"], [r["up"] for r in c["labnet"]]),
            _secs(c["labnet_down"]),
            _secs(c["ip_batch_up_down"]),
            _ratio(c["vs_ip_batch"]),
            _secs(c["mininet_up_down"]),
            _ratio(c["vs_mininet"]),
            f"{c['leases']}/{c['nodes']}",
            f"{c['pss_mb']:.0f}",
            pings,
        )
    return t


def bench_fit(result: dict) -> str:
    lines = []
    for key, what in (("up_s_per_namespace", "up"), ("pss_mb_per_namespace", "memory")):
        f = result["fit"].get(key)
        if f:
            unit = "ms" if what == "up" else "MB"
            scale = 1000 if what == "up" else 1
            lines.append(
                f"{what}: {f['slope'] * scale:.2f} {unit} per namespace "
                f"(+ {f['intercept'] * scale:.0f} {unit}), r² {f['r2']:.3f}"
            )
    return "\n".join(lines)
