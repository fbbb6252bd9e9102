"""Command-line latency: the wall time of everyday commands through ./scripts/inv, as a user
waits for them (the bootstrap's check, Python's start and imports, the task itself), with
the reference lab up.

Run as root, from the repository:  .venv/bin/python bench/latency.py [--runs 11]
The reference lab is brought up first (and taken down after) unless it is already up.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labnet.daemons import state  # noqa: E402

LAB = "flannel-vxlan"
# (command, the most a user should wait for it, in seconds)
COMMANDS = [
    ("exec pod1 -- true", 0.20),
    ("logs master", 0.30),
    ("rules master", 0.30),
    ("status", 0.50),
    ("--list", None),
    ("validate topologies/flannel-vxlan.yaml", None),
]


def timed(command: str) -> float:
    started = time.perf_counter()
    proc = subprocess.run(
        [str(ROOT / "scripts" / "inv"), *command.split()], cwd=ROOT, capture_output=True
    )
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"inv {command}: {proc.stderr.decode().strip()[-400:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=11, help="runs per command (the median counts)")
    args = ap.parse_args()
    started_here = not state.lab_dir(LAB).exists()
    if started_here:
        timed(f"up topologies/{LAB}.yaml")
    try:
        rows = []
        for command, target in COMMANDS:
            timed(command)  # once first: the page cache holds what the command reads
            times = [timed(command) for _ in range(args.runs)]
            rows.append((command, statistics.median(times), min(times), max(times), target))
    finally:
        if started_here:
            timed(f"down {LAB}")
    print(f"| `./scripts/inv ...` | median (s) | fastest-slowest | target | {args.runs} runs |")
    print("|---|---|---|---|---|")
    for command, median, low, high, target in rows:
        verdict = "-" if target is None else ("met" if median <= target else "**missed**")
        limit = "-" if target is None else f"{target:.2f}"
        print(f"| `{command}` | {median:.3f} | {low:.3f}-{high:.3f} | {limit} | {verdict} |")


if __name__ == "__main__":
    main()
