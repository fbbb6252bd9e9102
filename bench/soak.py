"""Soak: a lab kept up for a long time, verified every few seconds while pods ping across
nodes, its processes' memory and open files sampled every minute.

Run as root:  .venv/bin/python bench/soak.py [--minutes 30] [--every 10] [--name LAB]
Passes when no verify fails, no ping is lost beyond the first, and no process of the lab
grows in anonymous memory (its heap) or open file descriptors by more than 5 % after the
first minute.
Prints a JSON summary; `--name` runs the topology under another lab name (so a soak can
run beside the reference lab).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from labnet.bench.run import smaps_kb  # noqa: E402
from labnet.daemons import processes, state  # noqa: E402
from labnet.lab import build, lookup, teardown  # noqa: E402
from labnet.probe import verify as verifier  # noqa: E402

GROWTH_LIMIT = 0.05


def renamed(topology: Path, name: str, workdir: Path) -> Path:
    text = re.sub(r"^name: .*$", f"name: {name}", topology.read_text(), count=1, flags=re.M)
    path = workdir / f"{name}.yaml"
    path.write_text(text)
    return path


def anon_kb(pid: int) -> int:
    """The process's anonymous memory (heap, stacks: kB), where a leak grows. PSS and even
    private memory move when other processes start or stop mapping the same program (a
    second lab's etcd), anonymous memory does not."""
    return smaps_kb(pid, "Anonymous")


def sample(st: state.LabState) -> dict[str, dict[str, int]]:
    """Anonymous memory (kB) and open file descriptors of every recorded process of the lab."""
    out = {}
    for rec in st.processes:
        if not processes.alive(rec):
            out[rec.name] = {"anon_kb": 0, "fds": 0, "dead": 1}
            continue
        try:
            fds = len(os.listdir(f"/proc/{rec.pid}/fd"))
        except OSError:
            fds = 0
        out[rec.name] = {"anon_kb": anon_kb(rec.pid), "fds": fds}
    return out


def growth(first: dict, last: dict) -> dict[str, dict[str, float]]:
    """Relative growth of each process's anonymous memory and fds from `first` to `last`."""
    out = {}
    for name, a in first.items():
        b = last.get(name, {"anon_kb": 0, "fds": 0})
        out[name] = {
            key: (b[key] - a[key]) / a[key] if a[key] else 0.0 for key in ("anon_kb", "fds")
        }
    return out


def pinger(st: state.LabState) -> subprocess.Popen:
    """pod1 pings pod3 across the nodes, five times a second, until stopped."""
    pod1 = lookup.find("pod1", st.lab)
    target = lookup.address_of(st, "pod3")
    return subprocess.Popen(
        # -q: only the summary (a line a reply would fill the unread pipe and stop ping)
        ["ip", "netns", "exec", pod1.netns, "ping", "-q", "-i", "0.2", "-W", "1", target],
        stdout=subprocess.PIPE,
        text=True,
    )


def ping_totals(proc: subprocess.Popen) -> tuple[int, int]:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    found = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def soak(topology: Path, minutes: float, every: float) -> dict:
    result = build.up(str(topology))
    lab = result.lab
    verifies, failed, times = 0, [], []
    samples: list[tuple[float, dict]] = []
    started = time.monotonic()
    ping = None
    try:
        st = lookup.load_state(lab)
        ping = pinger(st)
        next_sample = started
        while time.monotonic() - started < minutes * 60:
            if time.monotonic() >= next_sample:
                samples.append((time.monotonic() - started, sample(lookup.load_state(lab))))
                next_sample += 60
            t = time.perf_counter()
            report = verifier.run(lab)
            times.append(time.perf_counter() - t)
            verifies += 1
            if not report.passed:
                failed.append({"at_s": round(time.monotonic() - started), "problems": [
                    r.problems for r in report.results if not r.passed]})  # fmt: skip
            shutil.rmtree(report.run_dir, ignore_errors=True)  # 180 runs: keep no pcaps
            time.sleep(max(0.0, every - (time.perf_counter() - t)))
        samples.append((time.monotonic() - started, sample(lookup.load_state(lab))))
        sent, received = ping_totals(ping)
        ping = None
    finally:
        if ping is not None:
            ping.kill()
        teardown.down(lab)
    # the first sample after the first minute (a shorter run: its first sample)
    after_first_minute = next((s for at, s in samples if at >= 60), samples[0][1])
    grew = growth(after_first_minute, samples[-1][1])
    worst = {key: max((g[key] for g in grew.values()), default=0.0) for key in ("anon_kb", "fds")}
    return {
        "lab": lab,
        "minutes": minutes,
        "verifies": verifies,
        "verify_failures": failed,
        "verify_median_s": sorted(times)[len(times) // 2] if times else None,
        "pings_sent": sent,
        "pings_received": received,
        "pings_lost_beyond_first": max(0, sent - received - 1),
        "worst_growth_after_first_minute": worst,
        "growth_by_process": grew,
        "samples": [{"at_s": round(at), "processes": s} for at, s in samples],
        "passed": not failed
        and sent - received <= 1
        and all(v <= GROWTH_LIMIT for v in worst.values()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--every", type=float, default=10, help="seconds between verifies")
    ap.add_argument("--topology", default=str(HERE.parent / "topologies" / "flannel-vxlan.yaml"))
    ap.add_argument("--name", default="", help="run the topology under this lab name")
    ap.add_argument("--json", default="", help="also write the summary to this file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        topology = Path(args.topology)
        if args.name:
            topology = renamed(topology, args.name, Path(tmp))
        summary = soak(topology, args.minutes, args.every)
    text = json.dumps(summary, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    brief = {k: v for k, v in summary.items() if k not in ("samples", "growth_by_process")}
    print(json.dumps(brief, indent=2))
    sys.exit(0 if summary["passed"] else 1)


if __name__ == "__main__":
    main()
