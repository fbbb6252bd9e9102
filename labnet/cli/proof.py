"""Tasks that prove what a lab does: verify, trace, walk."""

from __future__ import annotations

from pathlib import Path

from invoke import task
from invoke.exceptions import Exit

from labnet.cli import glue


@task(
    help={
        "target": "lab name or topology file (brought up first when it is down)",
        "junit": "also write the verdicts as JUnit XML to this file",
        "html": "also write a self-contained HTML report (diagram, hop tables, layers, pcaps)",
    }
)
@glue.friendly
def verify(c, target, junit="", html=""):
    """Run a lab's checks, capture every hop, and judge each one (exit 1 if any fails)."""
    from labnet.probe import capture

    capture.preload_scapy()  # scapy's imports run while the lab is read
    from labnet.daemons import state
    from labnet.errors import InputError
    from labnet.lab import build, lookup
    from labnet.probe import verify as verifier
    from labnet.render import terminal

    name = lookup.resolve_lab(target)
    if not state.lab_dir(name).exists():
        if not target.endswith((".yaml", ".yml")):
            raise InputError(
                f"no lab named {name!r} is up", "give the topology file to bring it up"
            )
        with glue.progress(f"up {target}") as step:
            build.up(target, step)
    with glue.progress(f"verify {name}") as step:
        report = verifier.run(name, progress=step)
    terminal.verify_summary(report, lookup.short_names(name))
    if junit:
        verifier.junit(report, Path(junit))
    if html:
        from labnet.render import report as reports

        terminal.console.print(f"wrote {reports.write(reports.html(report, name), html)}")
    if not report.passed:
        raise Exit(code=1)


@task(
    help={
        "source": "node, pod or host the flow starts from",
        "target": "name, address or namespace/service",
        "port": "port for tcp, http and udp",
        "proto": "icmp (default), tcp, http or udp",
        "lab": "lab name, when several labs are up",
    }
)
@glue.friendly
def trace(c, source, target, port=0, proto="icmp", lab=""):
    """Follow one ad hoc flow hop by hop on a running lab: inv trace pod1 pod3"""
    from labnet.lab import lookup
    from labnet.probe import verify as verifier
    from labnet.render import terminal

    place = lookup.find(source, lab or None)
    check = verifier.adhoc_check(source, target, proto, port or None)
    with glue.progress(f"trace {source} -> {target}") as step:
        report = verifier.run(place.lab, [check], progress=step)
    terminal.verify_summary(report, lookup.short_names(place.lab))
    if not report.passed:
        raise Exit(code=1)


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
