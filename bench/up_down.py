"""Benchmark: reference lab up (until every agent holds a lease and pod1 answers pod3) and down.

Run as root:  .venv/bin/python bench/up_down.py [--runs 7] [--topology FILE]
Measured in-process (the interpreter's own start and imports are reported separately, as
`import`): the figures are what labnet itself costs. Results go to bench/results/*.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

t0 = time.perf_counter()
from labnet.lab import build, lookup, teardown  # noqa: E402

IMPORT_S = time.perf_counter() - t0


def first_answer(lab_name: str, src: str, dst_ip: str, timeout: float = 5.0) -> float:
    """Seconds until one ping from `src` to `dst_ip` is answered."""
    place = lookup.find(src, lab_name)
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        argv = lookup.exec_argv(place, ["ping", "-c", "1", "-W", "1", dst_ip])
        if subprocess.run(argv, capture_output=True).returncode == 0:
            return time.perf_counter() - started
    raise RuntimeError(f"{src} got no answer from {dst_ip}")


def one_run(topology: str) -> dict[str, float]:
    t = time.perf_counter()
    result = build.up(topology)
    built = time.perf_counter() - t
    try:
        pod3 = result.state.nodes["minion"]["pods"]["pod3"]
        answered = first_answer(result.lab, "pod1", pod3)
    finally:
        t = time.perf_counter()
        teardown.down(result.lab)
        down = time.perf_counter() - t
    return {"up": built, "up_until_ping": built + answered, "down": down}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--topology", default=str(HERE.parent / "topologies" / "flannel-vxlan.yaml"))
    args = ap.parse_args()
    runs = [one_run(args.topology) for _ in range(args.runs)]
    summary = {
        k: {
            "median": statistics.median(r[k] for r in runs),
            "min": min(r[k] for r in runs),
            "max": max(r[k] for r in runs),
        }
        for k in runs[0]
    }
    out = {
        "machine": {
            "cpus": __import__("os").cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
        },
        "import_s": IMPORT_S,
        "runs": runs,
        "summary": summary,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    (HERE / "results").mkdir(exist_ok=True)
    name = Path(args.topology).stem
    (HERE / "results" / f"up_down-{name}.json").write_text(json.dumps(out, indent=1))
    print(f"import labnet: {IMPORT_S:.2f} s (once per command, not counted below)")
    print(f"{'figure':<16}{'median':>9}{'min':>9}{'max':>9}   ({args.runs} runs)")
    for k, v in summary.items():
        print(f"{k:<16}{v['median']:>8.3f}s{v['min']:>8.3f}s{v['max']:>8.3f}s")


if __name__ == "__main__":
    main()
