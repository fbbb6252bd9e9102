"""Tasks that prove what a lab does: verify, trace, walk."""

from __future__ import annotations

import os
from pathlib import Path

from invoke import task
from invoke.exceptions import Exit

from labnet.cli import glue

RUNS = "labnet-runs"  # where runs go by default, in the current directory
OUT_HELP = f"the run directory for pcaps and reports (default: ./{RUNS}/<lab>-<time>/)"
JUNIT_HELP = "also write the verdicts as JUnit XML (a bare name goes into the run directory)"
HTML_HELP = "also write a self-contained HTML report (a bare name goes into the run directory)"


class RunDir:
    """Where one verify or trace keeps its pcaps and reports: a directory of the user's that
    `down` leaves alone. Under sudo, what the run wrote is handed to the user who ran sudo."""

    def __init__(self, lab: str, out: str):
        import time

        from labnet.errors import InputError

        if out:
            self.path = Path(out)
            if self.path.exists() and not self.path.is_dir():
                raise InputError(f"--out {out}: not a directory", "give a directory's path")
        else:
            stem = Path(RUNS) / f"{lab}-{time.strftime('%Y%m%d-%H%M%S')}"
            self.path, n = stem, 1
            while self.path.exists():  # two runs in one second
                n += 1
                self.path = stem.with_name(f"{stem.name}-{n}")
        # the directories this run makes, and what the run directory held before
        self.made = [d for d in (self.path, *self.path.parents) if not d.exists()]
        self.before = set() if self.path in self.made else {e.name for e in self.path.iterdir()}
        self.outside: list[Path] = []  # reports written where the user said, outside it

    def place(self, name: str) -> Path:
        """A bare file name goes into the run directory; a path is taken as it is."""
        if os.sep in name:
            self.outside.append(Path(name))
            return Path(name)
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path / name

    def hand_over(self) -> None:
        """chown to SUDO_UID/SUDO_GID: the directories this run made, what it wrote in the run
        directory, and its reports outside it. Nothing that was there before is touched."""
        uid, gid = os.environ.get("SUDO_UID", ""), os.environ.get("SUDO_GID", "")
        if os.geteuid() != 0 or not (uid.isdigit() and gid.isdigit()):
            return
        owner = int(uid), int(gid)
        for d in self.made:
            if d.is_dir():
                os.lchown(d, *owner)
        if self.path.is_dir():
            for entry in self.path.iterdir():
                if entry.name not in self.before:
                    _chown_tree(entry, owner)
        for f in self.outside:
            if f.exists():
                os.lchown(f, *owner)


def _chown_tree(top: Path, owner: tuple[int, int]) -> None:
    os.lchown(top, *owner)
    if top.is_dir() and not top.is_symlink():
        for root, dirs, files in os.walk(top):
            for name in dirs + files:
                os.lchown(os.path.join(root, name), *owner)


def _keep_the_challenge(lab: str, report) -> None:
    """While a challenge runs in the lab, verify and trace name the failing hop but not the
    cause: the learner reads it in the kernel."""
    from labnet.lab import challenge

    p = challenge.progress(lab)
    if p is None or p.gave_up or p.solved is not None:
        return
    for r in report.results:
        if r.explanation:
            r.explanation = "not shown while a challenge runs here: the kernel will tell"


def _prove(lab: str, checks, title: str, out: str, junit: str, html: str) -> None:
    """Run checks into a run directory, print the verdicts, write the reports asked for, and
    end with the run directory's path (exit 1 if a check fails)."""
    from rich.text import Text

    from labnet.lab import lookup
    from labnet.probe import verify as verifier
    from labnet.render import terminal

    run = RunDir(lab, out)
    try:
        with glue.progress(title) as step:
            report = verifier.run(lab, checks, progress=step, run_dir=run.path)
        _keep_the_challenge(lab, report)
        terminal.verify_summary(report, lookup.short_names(lab))
        if junit:
            xml = run.place(junit)
            verifier.junit(report, xml)
            terminal.console.print(Text(f"wrote {xml}"), soft_wrap=True)
        if html:
            from labnet.render import report as reports

            page = run.place(html)
            reports.write(reports.html(report, lab, page), page)
            terminal.console.print(Text(f"wrote {page}"), soft_wrap=True)
    finally:
        run.hand_over()
    terminal.console.print(Text(f"run directory: {run.path}", style="bold"), soft_wrap=True)
    if not report.passed:
        raise Exit(code=1)


@task(
    help={
        "target": "lab name or topology file (brought up first when it is down)",
        "junit": JUNIT_HELP,
        "html": HTML_HELP,
        "out": OUT_HELP,
    }
)
@glue.friendly
def verify(c, target, junit="", html="", out=""):
    """Run a lab's checks, capture every hop, and judge each one (exit 1 if any fails)."""
    from labnet.probe import capture

    capture.preload_scapy()  # scapy's imports run while the lab is read
    from labnet.daemons import state
    from labnet.errors import InputError
    from labnet.lab import build, lookup

    name = lookup.resolve_lab(target)
    if not state.lab_dir(name).exists():
        if not target.endswith((".yaml", ".yml")):
            raise InputError(
                f"no lab named {name!r} is up", "give the topology file to bring it up"
            )
        with glue.progress(f"up {target}") as step:
            build.up(target, step)
    _prove(name, None, f"verify {name}", out, junit, html)


@task(
    help={
        "source": "node, pod or host the flow starts from",
        "target": "name, address or namespace/service",
        "port": "port for tcp, http and udp",
        "proto": "icmp (default), tcp, http or udp",
        "size": "icmp: the IP packet's size, sent with don't-fragment (finds a path's MTU)",
        "lab": "lab name, when several labs are up",
        "junit": JUNIT_HELP,
        "html": HTML_HELP,
        "out": OUT_HELP,
    }
)
@glue.friendly
def trace(c, source, target, port=0, proto="icmp", size=0, lab="", junit="", html="", out=""):
    """Follow one ad hoc flow hop by hop on a running lab: inv trace pod1 pod3"""
    from labnet.lab import lookup
    from labnet.probe import verify as verifier

    place = lookup.find(source, lab or None)
    check = verifier.adhoc_check(source, target, proto, port or None, size or None)
    _prove(place.lab, [check], f"trace {source} -> {target}", out, junit, html)


@task(
    help={
        "topology": "topology file (the lab is brought up for the walk when it is down)",
        "no_pause": "run straight through (CI, recordings); exit 1 if an expected line is missing",
        "lang": "language of the explanations: en or zh",
        "file": "the walkthrough (default: <topology>.walk.yaml beside the topology)",
    }
)
@glue.friendly
def walk(c, topology, no_pause=False, lang="en", file=""):
    """A narrated walkthrough of the flow, step by step, on the live lab."""
    from labnet.daemons import state
    from labnet.lab import build, lookup, teardown
    from labnet.model import shipped
    from labnet.render import terminal
    from labnet.render import walk as walker

    path = str(shipped.topology_path(topology))
    wt = walker.load(Path(file) if file else walker.default_file(path))
    name = lookup.resolve_lab(path)
    started_here = not state.lab_dir(name).exists()
    if started_here:
        with glue.progress(f"up {topology}") as step:
            build.up(path, step)
    try:
        missing = walker.walk(name, wt, lang, pause=not no_pause)
    finally:
        if started_here:
            teardown.down(name)
    if missing:
        terminal.console.print(f"[bold red]{len(missing)} expected lines were not seen[/bold red]")
        raise Exit(code=1)
    terminal.console.print("[bold green]every expected line was seen in the live lab[/bold green]")
