"""Which of two labnet checkouts builds a lab faster: ups and downs of one topology,
alternated between them (A B, B A, A B, ...), each on an idle machine and in a fresh
interpreter, timed in-process (labnet.lab.build.up with time.perf_counter).

Run as root, from the repository:
    .venv/bin/python bench/ab_up.py A_DIR B_DIR --gen 50x10 [-n 5]
    .venv/bin/python bench/ab_up.py A_DIR B_DIR topologies/flannel-vxlan.yaml -n 10
A_DIR and B_DIR are checkouts (e.g. `git worktree add /tmp/before HEAD~1`). Every up is
followed by a down of its lab, also when it failed; a lab of that name must not exist.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labnet.bench.run import settle  # noqa: E402
from labnet.daemons import state  # noqa: E402

DRIVER = """
import json, sys, time
from labnet.lab import build, teardown
t = time.perf_counter()
try:
    name = build.up(sys.argv[1]).lab
    up = time.perf_counter() - t
finally:
    from labnet.lab import lookup
    t = time.perf_counter()
    teardown.down(lookup.resolve_lab(sys.argv[1]))
print(json.dumps({"up": up, "down": time.perf_counter() - t}))
"""


def run_once(checkout: str, topology: str) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-P", "-c", DRIVER, topology],
        env={**os.environ, "PYTHONPATH": checkout},
        cwd="/",
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{checkout}: {proc.stderr.strip()[-600:]}")
    return json.loads(proc.stdout.splitlines()[-1])


def generated(spec: str, workdir: Path) -> str:
    import yaml

    from labnet.model import generate

    nodes, per_node = (int(x) for x in spec.lower().split("x"))
    name = f"ab-{nodes}n-{nodes * per_node}p"
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(generate.topology(nodes, nodes * per_node, name=name)))
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("topology", nargs="?")
    ap.add_argument("--gen", help="NODESxPODS_PER_NODE, e.g. 50x10, instead of a topology")
    ap.add_argument("-n", "--runs", type=int, default=5, help="ups per checkout")
    args = ap.parse_args()
    if bool(args.topology) == bool(args.gen):
        ap.error("give a topology file or --gen NxP")
    from labnet import model

    with tempfile.TemporaryDirectory(prefix="labnet-ab-") as tmp:
        path = generated(args.gen, Path(tmp)) if args.gen else args.topology
        topology = str(Path(path).resolve())
        if state.lab_dir(model.load(topology).name).exists():
            raise SystemExit("a lab of that name is up: take it down first")
        ups: dict[str, list[float]] = {"A": [], "B": []}
        for i in range(args.runs):
            for key in ("A", "B") if i % 2 == 0 else ("B", "A"):
                settle()
                r = run_once(args.a if key == "A" else args.b, topology)
                ups[key].append(r["up"])
                print(f"  {key}  up {r['up']:.3f} s  down {r['down']:.3f} s", flush=True)
    for key, label in (("A", args.a), ("B", args.b)):
        v = ups[key]
        print(f"{key} {label}: median up {statistics.median(v):.3f} s ({min(v):.3f}-{max(v):.3f})")
    print(f"B / A: {statistics.median(ups['B']) / statistics.median(ups['A']):.3f}")


if __name__ == "__main__":
    main()
