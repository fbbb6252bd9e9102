"""Tasks that bring labs up and down: up, down, status, restart, demo."""

from __future__ import annotations

from invoke import task

from labnet.cli import glue


@task(help={"topology": "topology file, or the name of a lab shipped with labnet"})
@glue.friendly
def up(c, topology):
    """Build a lab from a topology file (namespaces, etcd, flannel agents, docker0, pods)."""
    from labnet.lab import build
    from labnet.model import shipped
    from labnet.render import terminal

    path = shipped.topology_path(topology)
    with glue.progress(f"up {topology}") as step:
        result = build.up(str(path), step)
    if result.already_up:
        terminal.console.print(f"lab [bold]{result.lab}[/bold] is already up; nothing changed")
    else:
        terminal.console.print(
            f"lab [bold]{result.lab}[/bold] is up in {result.seconds:.2f} s; "
            f"try: inv status {result.lab}"
        )


@task(
    positional=["target"],
    help={"target": "lab name or topology file", "all": "take down every lab that is up"},
)
@glue.friendly
def down(c, target=None, all=False):
    """Remove everything a lab created (processes, namespaces, files), and nothing else."""
    from labnet.errors import InputError
    from labnet.lab import teardown
    from labnet.render import terminal

    if all == bool(target):
        raise InputError("give a lab (or topology file), or --all", "usage: inv down LAB | --all")
    reports = teardown.down_all() if all else [teardown.down(target)]
    for r in reports:
        terminal.console.print(
            f"lab [bold]{r.lab}[/bold] is down: {len(r.processes)} processes "
            f"stopped, {len(r.namespaces)} namespaces removed"
        )
        if r.skipped:
            terminal.console.print(f"  left alone (not this lab's): {', '.join(r.skipped)}")
        for proc in r.left:
            terminal.console.print(
                f"  [yellow]not labnet's, left running:[/yellow] {proc} "
                "(it keeps that namespace alive until it exits)"
            )
    if all and not reports:
        terminal.console.print("no lab was up")


@task(positional=["lab"], help={"lab": "lab name (default: every lab that is up)"})
@glue.friendly
def status(c, lab=None):
    """Show a lab: namespaces and addresses, processes alive, flannel leases in etcd."""
    from labnet.daemons import state
    from labnet.lab import status as lab_status
    from labnet.render import terminal

    names = [lab] if lab else state.labs()
    if not names:
        terminal.console.print("no lab is up")
        return
    for name in names:
        s = lab_status.status(name)
        for table in terminal.status_tables(s, lab_status.addresses(s.state)):
            terminal.console.print(table)


@task(
    help={
        "name": "etcd, flanneld-NODE, bird-NODE or POD/CONTAINER",
        "lab": "lab name, when several",
    }
)
@glue.friendly
def restart(c, name, lab=""):
    """Start one of a lab's processes again, as after a crash (e.g. inv restart flanneld-master)."""
    from labnet.daemons import state
    from labnet.errors import InputError
    from labnet.lab import start
    from labnet.render import terminal

    names = [lab] if lab else state.labs()
    if len(names) != 1:
        raise InputError("say which lab with --lab", f"labs up: {', '.join(names) or 'none'}")
    rec = start.restart(names[0], name)
    terminal.console.print(f"{rec.name} started again in {rec.netns} (pid {rec.pid})")


@task
@glue.friendly
def demo(c):
    """Up the reference lab, ping pod1 -> pod3, show neighbour, FDB and etcd state, down."""
    from labnet.lab import build, teardown
    from labnet.model import shipped
    from labnet.render import demo as reference
    from labnet.render import terminal

    with glue.progress("up the reference lab") as step:
        result = build.up(str(shipped.topology_path(shipped.REFERENCE)), step)
    try:
        reference.tour(result.lab)
    finally:
        report = teardown.down(result.lab)
        terminal.console.print(
            f"lab {report.lab} is down ({len(report.namespaces)} namespaces removed)"
        )
