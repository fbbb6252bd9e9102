"""Tasks for labnet's own development: bench, test."""

from __future__ import annotations

import sys
from pathlib import Path

from invoke import task
from invoke.exceptions import Exit

from labnet.cli import glue

CHECKOUT = Path(__file__).resolve().parents[2]  # the repository, when run from a checkout


@task(
    help={
        "runs": "runs per case (medians are reported)",
        "quick": "small sizes only (1x100, 2x10, 5x10): a few minutes",
        "sizes": "comma-separated NODESxPODS_PER_NODE, e.g. 2x10,10x10,50x10",
        "out": "directory for bench.json and bench.svg (default: bench/results)",
        "no_reference": "leave out the reference lab",
    }
)
@glue.friendly
def bench(c, runs=3, quick=False, sizes="", out="bench/results", no_reference=False):
    """Time and memory of labnet against ip -batch and Mininet, at growing lab sizes."""
    from labnet.bench import run, table
    from labnet.lab import preflight
    from labnet.render import terminal

    preflight.check(services=True)
    chosen = run.parse_sizes(sizes) if sizes else None
    chosen = chosen or (run.QUICK_SIZES if quick else run.SIZES)
    with glue.progress("bench") as step:
        result = run.run(chosen, runs, Path(out), not no_reference, step)
    terminal.console.print(table.bench_table(result), width=max(terminal.console.width, 132))
    terminal.console.print(table.bench_fit(result))
    print(f"written: {out}/bench.json, {out}/bench.svg")


@task(help={"k": "only tests matching this pytest expression", "unit": "unit tests only (no root)"})
@glue.friendly
def test(c, k="", unit=False):
    """Lint, then run the whole test suite (unit tests, then lab tests on real namespaces)."""
    from labnet.errors import InputError

    if not (CHECKOUT / "tests").is_dir():
        raise InputError("the tests live in labnet's repository", "run this from a checkout")
    with c.cd(str(CHECKOUT)):
        c.run("./scripts/bootstrap --test", pty=False)  # what the tests need beyond labs
        c.run(f"{sys.executable} -m ruff check labnet tests tasks.py bench", pty=False)
        c.run(f"{sys.executable} -m ruff format --check labnet tests tasks.py bench", pty=False)
        target = "tests/unit" if unit else "tests"
        select = f" -k {k!r}" if k else ""
        result = c.run(f"{sys.executable} -m pytest -q {target}{select}", warn=True, pty=False)
        if result.exited != 0:
            raise Exit(code=result.exited)
