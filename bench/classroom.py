"""A class on one machine: N copies of a lab (the reference lab by default), one a learner, as
`inv class up` makes them; how long they take to come up and to go, and how much memory
they hold together (PSS of every process in their namespaces: a page shared by k processes
counts 1/k in each, so the sum is what the class really takes).

Run as root, from the repository, with no other lab up:
    .venv/bin/python bench/classroom.py [--learners 30] [--target flannel-vxlan] [--runs 3]

Each run: the machine is left to settle, every copy comes up (`inv class up`), the copies'
processes are summed, one ping crosses the nodes in every copy, and every copy goes down
(`inv class down`). Prints the figures of each run and their medians; writes
bench/results/classroom.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from labnet.bench.run import lab_pids, pss_kb, settle  # noqa: E402
from labnet.daemons import state  # noqa: E402
from labnet.lab import classroom, lookup  # noqa: E402


def one_run(target: str, learners: int) -> dict[str, float]:
    settle()
    t = time.perf_counter()
    try:
        labs = classroom.up(target, learners)
        up = time.perf_counter() - t
        pids = set().union(*(lab_pids(lookup.load_state(lab)) for lab in labs))
        pss_mb = sum(pss_kb(pid) for pid in pids) / 1024
        lost = sum(_ping_fails(lab) for lab in labs)
    finally:
        t = time.perf_counter()
        classroom.down()  # every copy, also those of a run that failed half way
        down = time.perf_counter() - t
    return {
        "up_s": up,
        "down_s": down,
        "pss_mb": pss_mb,
        "processes": len(pids),
        "labs": len(labs),
        "pings_lost": lost,
    }


def _ping_fails(lab: str) -> int:
    """One ping from pod1 to pod3 (on the other node): 1 when it is lost."""
    st = lookup.load_state(lab)
    argv = ["ip", "netns", "exec", f"{lab}-pod1", "ping", "-c", "1", "-W", "2"]
    proc = subprocess.run([*argv, st.addresses["pod3"]], capture_output=True, timeout=10)
    return int(proc.returncode != 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--learners", type=int, default=30)
    ap.add_argument("--target", default="flannel-vxlan")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if state.labs():
        raise SystemExit(f"labs are up ({', '.join(state.labs())}): take them down first")
    runs = [one_run(args.target, args.learners) for _ in range(args.runs)]
    for i, r in enumerate(runs, 1):
        print(
            f"run {i}: {r['labs']} labs up in {r['up_s']:.2f} s, down in {r['down_s']:.2f} s, "
            f"{r['pss_mb']:.0f} MB PSS in {r['processes']} processes, "
            f"{r['pings_lost']} pings lost"
        )
    median = {k: statistics.median(r[k] for r in runs) for k in ("up_s", "down_s", "pss_mb")}
    print(
        f"median: up {median['up_s']:.2f} s, down {median['down_s']:.2f} s, "
        f"{median['pss_mb']:.0f} MB"
    )
    (HERE / "results").mkdir(exist_ok=True)
    out = {"target": args.target, "learners": args.learners, "runs": runs, "median": median}
    (HERE / "results" / "classroom.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
