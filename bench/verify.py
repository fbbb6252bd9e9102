"""Benchmark: a full `verify` of a running lab (all its checks, every hop captured and judged).

Run as root:  .venv/bin/python bench/verify.py [--runs 5] [--topology FILE]
The lab is brought up once (not counted) and taken down at the end. In-process; scapy's
import is part of the first run only, like the first `inv verify` of a shell.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from labnet.lab import build, teardown  # noqa: E402
from labnet.probe import verify as verifier  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--topology", default=str(HERE.parent / "topologies" / "flannel-vxlan.yaml"))
    args = ap.parse_args()
    result = build.up(args.topology)
    try:
        times, checks = [], 0
        for _ in range(args.runs):
            t = time.perf_counter()
            report = verifier.run(result.lab)
            times.append(time.perf_counter() - t)
            assert report.passed, [r.problems for r in report.results if not r.passed]
            checks = len(report.results)
    finally:
        teardown.down(result.lab)
    summary = {
        "median": statistics.median(times),
        "min": min(times),
        "max": max(times),
        "first": times[0],
        "checks": checks,
        "runs": args.runs,
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / f"verify-{Path(args.topology).stem}.json").write_text(
        json.dumps(summary, indent=1)
    )
    print(
        f"verify {result.lab}: {checks} checks, median {summary['median']:.2f} s, "
        f"min {summary['min']:.2f} s, max {summary['max']:.2f} s, first run {times[0]:.2f} s"
    )


if __name__ == "__main__":
    main()
