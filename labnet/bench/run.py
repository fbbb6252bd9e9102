"""`inv bench`: labnet against the kernel's own speed (ip -batch) and Mininet, at growing sizes.

For each case (the reference lab, then generated labs of growing size) and each run:
- labnet up and down, in-process (what labnet itself costs: no interpreter start);
- the same namespaces, veths, bridge ports, addresses and routes made by `ip -batch`;
- Mininet's `mn --topo single,N --switch lxbr --controller none --test none`, when installed.
Each run starts on an idle machine (`settle`), so the kernel's clean-up of the previous
run's namespaces is not timed as part of it. Once per case, the lab is also brought up the
way a user does (`python -m labnet up`, whose process then exits, so no orchestrator shares
its pages), and measured: every agent's lease, the memory of all the lab's processes summed
as PSS (a page shared by N processes counts 1/N in each), and a sample of cross-node pings.
Results: JSON and an SVG plot.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from labnet import model, plan
from labnet.bench import baseline
from labnet.daemons import state
from labnet.errors import InputError
from labnet.kernel import netns
from labnet.lab import build, teardown
from labnet.model import generate, shipped

REFERENCE = shipped.topology_path(shipped.REFERENCE)
SIZES = [(1, 100), (2, 20), (5, 50), (10, 100), (25, 250), (50, 500)]  # (nodes, pods)
QUICK_SIZES = [(1, 100), (2, 20), (5, 50)]  # 1x100 is the "100 pods on one node"
PINGS = 100

Progress = Callable[[str], None]


@dataclass
class Case:
    label: str
    path: str
    nodes: int
    pods: int
    generated: bool
    labnet: list[dict[str, float]] = field(default_factory=list)  # per run: up, down
    ip_batch: list[dict[str, float]] = field(default_factory=list)
    mininet: list[dict[str, float]] = field(default_factory=list)
    leases: int = 0
    pss_mb: float = 0.0
    processes: int = 0
    pings: dict[str, int] = field(default_factory=dict)  # sent, answered

    def median(self, runs: str, key: str) -> float | None:
        values = [r[key] for r in getattr(self, runs)]
        return statistics.median(values) if values else None


def _quiet(_: str) -> None:
    pass


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """ "2x10,50x10" -> [(2, 20), (50, 500)]: nodes, and pods in all."""
    out = []
    for part in text.split(","):
        try:
            nodes, per_node = (int(x) for x in part.lower().split("x"))
        except ValueError:
            raise InputError(f"--sizes {part!r}", "write NODESxPODS_PER_NODE, e.g. 10x10") from None
        out.append((nodes, nodes * per_node))
    return out


def cases(sizes: list[tuple[int, int]], workdir: Path, reference: bool = True) -> list[Case]:
    out = []
    if reference:
        topo = model.load(str(REFERENCE))
        out.append(Case("reference", str(REFERENCE), len(topo.nodes), len(topo.pods), False))
    for nodes, pods in sizes:
        name = f"bench-{nodes}n-{pods}p"
        path = workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(generate.topology(nodes, pods, name=name)))
        out.append(Case(f"{nodes} x {pods // nodes}", str(path), nodes, pods, True))
    return out


# ---------------------------------------------------------------- measuring

SETTLE_BUSY = 0.15  # of all CPUs: above this, the machine is still busy with the last run
SETTLE_WINDOW = 0.5  # seconds a sample
SETTLE_QUIET = 4  # samples in a row under SETTLE_BUSY
SETTLE_MAX = 30.0  # seconds


def _cpu_ticks() -> tuple[int, int]:
    """(busy, all) jiffies of the machine, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def settle(max_wait: float = SETTLE_MAX) -> float:
    """Wait until the machine is idle: under 15 % busy for 2 s in a row, for at most
    `max_wait` s. The kernel frees deleted namespaces in the background: after a down of 552,
    it starts half a second later and takes about 3 s of one core, some of it holding the RTNL
    lock, with pauses of up to 0.75 s. Without this, one run's clean-up is timed as part of
    the next run's up. Returns the seconds waited."""
    start = time.monotonic()
    quiet = 0
    busy0, all0 = _cpu_ticks()
    while quiet < SETTLE_QUIET and time.monotonic() - start < max_wait:
        time.sleep(SETTLE_WINDOW)
        busy1, all1 = _cpu_ticks()
        idle = all1 > all0 and (busy1 - busy0) / (all1 - all0) < SETTLE_BUSY
        quiet = quiet + 1 if idle else 0
        busy0, all0 = busy1, all1
    return time.monotonic() - start


def _settled(work: Callable[..., dict[str, float]], *args: object) -> dict[str, float]:
    """One run, on an idle machine; `settled` is the seconds waited for it."""
    waited = settle()
    return {**work(*args), "settled": waited}


def _time(work: Callable[[], object]) -> float:
    t = time.perf_counter()
    work()
    return time.perf_counter() - t


def run_labnet(case: Case) -> dict[str, float]:
    t = time.perf_counter()
    result = build.up(case.path)
    up = time.perf_counter() - t
    return {"up": up, "down": _time(lambda: teardown.down(result.lab))}


def smaps_kb(pid: int, field: str) -> int:
    """One field of /proc/PID/smaps_rollup (Pss, Anonymous, ...), in kB; 0 when gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kb(pid: int) -> int:
    return smaps_kb(pid, "Pss")


def lab_pids(st: state.LabState) -> set[int]:
    """Every process inside the lab's namespaces: etcd, agents, launcher, containers."""
    return {pid for pids in netns.pids_by_namespace(st.namespaces).values() for pid in pids}


def cross_node_pairs(st: state.LabState, count: int) -> list[tuple[str, str]]:
    """`count` (pod, address of a pod on another node), spread over all nodes."""
    by_node = [(n, list(f["pods"].items())) for n, f in st.nodes.items() if f["pods"]]
    pairs: list[tuple[str, str]] = []
    if len(by_node) < 2:
        return pairs
    i = 0
    while len(pairs) < count and i < count * 4:
        src_node, src_pods = by_node[i % len(by_node)]
        dst_node, dst_pods = by_node[(i + 1 + i // len(by_node)) % len(by_node)]
        if src_node != dst_node:
            src = src_pods[(i // len(by_node)) % len(src_pods)][0]
            dst = dst_pods[(i // len(by_node)) % len(dst_pods)][1]
            pairs.append((src, dst))
        i += 1
    return pairs


def ping_sample(st: state.LabState, count: int) -> dict[str, int]:
    """One ping each, all at once (a lab of 500 pods answers them in parallel)."""
    procs = [
        subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                plan.netns_name(st.lab, src),
                "ping",
                "-c",
                "1",
                "-W",
                "5",
                dst,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for src, dst in cross_node_pairs(st, count)
    ]
    answered = sum(p.wait() == 0 for p in procs)
    return {"sent": len(procs), "answered": answered}


def inspect_as_user(case: Case) -> None:
    """`python -m labnet up` (its process exits), then leases, PSS and pings; then down."""
    proc = subprocess.run(
        [sys.executable, "-m", "labnet", "up", case.path], capture_output=True, text=True
    )
    lab_name = model.load(case.path).name
    try:
        if proc.returncode != 0:
            raise RuntimeError(f"up {case.label}: {proc.stderr.strip()[-400:]}")
        st = state.load(lab_name)
        case.leases = sum((state.node_dir(lab_name, n) / "subnet.env").exists() for n in st.nodes)
        pids = lab_pids(st)
        case.processes = len(pids)
        case.pss_mb = sum(pss_kb(p) for p in pids) / 1024
        case.pings = ping_sample(st, PINGS)
    finally:
        if state.lab_dir(lab_name).exists():
            teardown.down(lab_name)


# ---------------------------------------------------------------- the whole run


def fit(xs: list[float], ys: list[float]) -> dict[str, float]:
    """Least squares y = slope * x + intercept, and r^2 (1.0: exactly linear)."""
    if len(xs) < 2:
        return {}
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (slope * x + intercept)) ** 2 for x, y in zip(xs, ys, strict=True))
    return {"slope": slope, "intercept": intercept, "r2": 1 - ss_res / ss_tot if ss_tot else 1.0}


def summary(all_cases: list[Case]) -> dict:
    grown = [c for c in all_cases if c.generated and c.labnet]
    xs = [float(c.pods + c.nodes) for c in grown]
    out: dict = {
        "up_s_per_namespace": fit(xs, [c.median("labnet", "up") for c in grown]),
        "pss_mb_per_namespace": fit(xs, [c.pss_mb for c in grown]),
    }
    return out


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }


def run(
    sizes: list[tuple[int, int]],
    runs: int,
    out_dir: Path,
    reference: bool = True,
    progress: Progress = _quiet,
) -> dict:
    mininet = baseline.mininet_available()
    with tempfile.TemporaryDirectory(prefix="labnet-bench-") as tmp:
        all_cases = cases(sizes, Path(tmp), reference)
        for case in all_cases:
            lab_plan = plan.plan(model.load(case.path))
            for i in range(runs):
                progress(f"{case.label}: run {i + 1}/{runs}")
                case.labnet.append(_settled(run_labnet, case))
                case.ip_batch.append(_settled(baseline.ip_batch_run, lab_plan))
                if mininet and case.pods <= baseline.MININET_MAX_HOSTS:
                    case.mininet.append(_settled(baseline.mininet_run, case.pods))
            progress(f"{case.label}: leases, memory and {PINGS} cross-node pings")
            settle()
            inspect_as_user(case)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine(),
        "runs": runs,
        "mininet": mininet,
        "cases": [asdict(c) | medians(c) for c in all_cases],
        "fit": summary(all_cases),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(result, indent=1))
    from labnet.bench.plot import svg

    (out_dir / "bench.svg").write_text(svg(result))
    return result


def medians(c: Case) -> dict[str, float | None]:
    out = {
        "labnet_up": c.median("labnet", "up"),
        "labnet_down": c.median("labnet", "down"),
        "ip_batch_up": c.median("ip_batch", "up"),
        "ip_batch_down": c.median("ip_batch", "down"),
        "mininet_up_down": c.median("mininet", "up_down"),
    }
    ours = (out["labnet_up"] or 0) + (out["labnet_down"] or 0)
    ip = (out["ip_batch_up"] or 0) + (out["ip_batch_down"] or 0)
    out["ip_batch_up_down"] = ip or None
    out["vs_ip_batch"] = ours / ip if ip else None
    out["vs_mininet"] = ours / out["mininet_up_down"] if out["mininet_up_down"] else None
    return out
