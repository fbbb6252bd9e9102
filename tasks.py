"""labnet's command line: `./scripts/inv --list`. Thin: every task calls labnet/."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from invoke import task
from invoke.exceptions import Exit

from labnet import cli

REFERENCE = "topologies/flannel-vxlan.yaml"
HERE = os.path.dirname(os.path.abspath(__file__))


@task(help={"topology": "topology file, e.g. topologies/flannel-vxlan.yaml"})
@cli.friendly
def up(c, topology):
    """Build a lab from a topology file (namespaces, etcd, flannel agents, docker0, pods)."""
    from labnet import lab, render

    with cli.progress(f"up {topology}") as step:
        result = lab.up(topology, step)
    if result.already_up:
        render.console.print(f"lab [bold]{result.lab}[/bold] is already up; nothing changed")
    else:
        render.console.print(
            f"lab [bold]{result.lab}[/bold] is up in {result.seconds:.2f} s; "
            f"try: ./scripts/inv status {result.lab}"
        )


@task(
    positional=["target"],
    help={"target": "lab name or topology file", "all": "take down every lab that is up"},
)
@cli.friendly
def down(c, target=None, all=False):
    """Remove everything a lab created (processes, namespaces, files), and nothing else."""
    from labnet import lab, render
    from labnet.errors import InputError

    if all == bool(target):
        raise InputError("give a lab (or topology file), or --all", "usage: inv down LAB | --all")
    reports = lab.down_all() if all else [lab.down(target)]
    for r in reports:
        render.console.print(
            f"lab [bold]{r.lab}[/bold] is down: {len(r.processes)} processes "
            f"stopped, {len(r.namespaces)} namespaces removed"
        )
        if r.skipped:
            render.console.print(f"  left alone (not this lab's): {', '.join(r.skipped)}")
        for proc in r.left:
            render.console.print(
                f"  [yellow]not labnet's, left running:[/yellow] {proc} "
                "(it keeps that namespace alive until it exits)"
            )
    if all and not reports:
        render.console.print("no lab was up")


@task(positional=["lab"], help={"lab": "lab name (default: every lab that is up)"})
@cli.friendly
def status(c, lab=None):
    """Show a lab: namespaces and addresses, processes alive, flannel leases in etcd."""
    from labnet import lab as labs
    from labnet import render, state

    names = [lab] if lab else state.labs()
    if not names:
        render.console.print("no lab is up")
        return
    for name in names:
        s = labs.status(name)
        for table in render.status_tables(s, labs.addresses(s.state)):
            render.console.print(table)


@task(help={"name": "node or pod name", "lab": "lab name, when several labs are up"})
@cli.friendly
def exec(c, name, lab=""):
    """Run a command inside a node or pod: inv exec pod1 -- ping -c 3 172.16.57.15"""
    from labnet import etcd_server
    from labnet import lab as labs

    argv = cli.require_argv(cli.argv_after_dashes(c.remainder), "inv exec NAME -- COMMAND [ARGS]")
    place = labs.find(name, lab or None)
    _replace_with(labs.exec_argv(place, argv), etcd_server.tools_env())


@task(help={"name": "node or pod name", "lab": "lab name, when several labs are up"})
@cli.friendly
def shell(c, name, lab=""):
    """Open an interactive shell inside a node or pod (exit to leave)."""
    from labnet import etcd_server
    from labnet import lab as labs

    place = labs.find(name, lab or None)
    env = dict(etcd_server.tools_env(), PS1=f"[{place.lab}:{place.name}] \\w# ")
    _replace_with(labs.exec_argv(place, ["bash", "--norc", "-i"]), env)


@task(help={"topology": "topology file"})
@cli.friendly
def plan(c, topology):
    """Print what `up` would create, per namespace, without touching anything."""
    from labnet import model, render
    from labnet import plan as planner

    topo = model.load(topology)
    render.console.print(render.plan_tree(topo, planner.plan(topo)))


@task(help={"topology": "topology file"})
@cli.friendly
def validate(c, topology):
    """Check a topology file (schema and semantics); exit 2 with file:line: field on error."""
    from labnet import model, render

    topo = model.load(topology)
    render.console.print(
        f"{topology}: valid ({len(topo.nodes)} nodes, {len(topo.pods)} pods, "
        f"flannel {topo.flannel.network} {topo.flannel.summary})"
    )


@task(help={"name": "node name (its flannel agent) or etcd", "lab": "lab name, when several"})
@cli.friendly
def logs(c, name, lab=""):
    """Show the events of a node's flannel agent (or etcd's log), with timestamps."""
    from labnet import lab as labs
    from labnet import render

    place = labs.find(name, lab or None)
    path = labs.log_path(place)
    render.console.print(f"[dim]{path}[/dim]")
    render.output(
        path.read_text() if path.exists() else "(empty)",
        ("l3-miss", "neigh-written", "fdb-written", "fatal"),
    )


@task(help={"node": "node name", "lab": "lab name, when several labs are up"})
@cli.friendly
def rules(c, node, lab=""):
    """Show a node's kube-proxy chains as a tree, then `iptables -t nat -nL` as it is."""
    from labnet import iptables, render
    from labnet import lab as labs

    place = labs.find(node, lab or None)
    render.console.print(render.rules_tree(node, iptables.parse_save(iptables.save(place.netns))))
    render.heading(f"[{node}] iptables -t nat -nL")
    render.output(iptables.listing(place.netns), (r"KUBE-SVC-\w+ ", "statistic", "MARK or"))


@task(
    help={
        "source": "node, pod, host or pod/container to run curl in",
        "url": "the URL",
        "lab": "lab name, when several labs are up",
    }
)
@cli.friendly
def curl(c, source, url, lab=""):
    """curl a URL from inside a node, pod or host: inv curl pod1 http://192.168.3.22:8080/"""
    from labnet import lab as labs

    place = labs.find(source, lab or None)
    _replace_with(labs.exec_argv(place, ["curl", "-sS", "--max-time", "5", url]))


@task(
    help={
        "source": "node, pod or host to ping from",
        "target": "a name or an address",
        "count": "how many pings",
        "lab": "lab name, when several labs are up",
    }
)
@cli.friendly
def ping(c, source, target, count=3, lab=""):
    """ping a node, pod or host (by name or address) from another: inv ping pod1 pod3"""
    from labnet import lab as labs

    place = labs.find(source, lab or None)
    address = labs.address_of(labs.load_state(place.lab), target)
    _replace_with(
        labs.exec_argv(place, ["ping", "-c", str(count), "-i", "0.2", "-W", "2", address])
    )


@task(
    help={
        "target": "lab name or topology file (brought up first when it is down)",
        "junit": "also write the verdicts as JUnit XML to this file",
        "html": "also write a self-contained HTML report (diagram, hop tables, layers, pcaps)",
    }
)
@cli.friendly
def verify(c, target, junit="", html=""):
    """Run a lab's checks, capture every hop, and judge each one (exit 1 if any fails)."""
    from labnet import capture

    capture.preload_scapy()  # a second or more of imports, done while the lab is read
    from labnet import lab, render, state
    from labnet import verify as verifier
    from labnet.errors import InputError

    name = lab.resolve_lab(target)
    if not state.lab_dir(name).exists():
        if not target.endswith((".yaml", ".yml")):
            raise InputError(
                f"no lab named {name!r} is up", "give the topology file to bring it up"
            )
        with cli.progress(f"up {target}") as step:
            lab.up(target, step)
    with cli.progress(f"verify {name}") as step:
        report = verifier.run(name, progress=step)
    render.verify_summary(report, lab.short_names(name))
    if junit:
        verifier.junit(report, Path(junit))
    if html:
        from labnet import report as reports

        render.console.print(f"wrote {reports.write(reports.html(report, name), html)}")
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
@cli.friendly
def trace(c, source, target, port=0, proto="icmp", lab=""):
    """Follow one ad hoc flow hop by hop on a running lab: inv trace pod1 pod3"""
    from labnet import lab as labs
    from labnet import render
    from labnet import verify as verifier

    place = labs.find(source, lab or None)
    check = verifier.adhoc_check(source, target, proto, port or None)
    with cli.progress(f"trace {source} -> {target}") as step:
        report = verifier.run(place.lab, [check], progress=step)
    render.verify_summary(report, labs.short_names(place.lab))
    if not report.passed:
        raise Exit(code=1)


@task(
    help={
        "nodes": "how many nodes",
        "pods": "how many pods, spread over the nodes",
        "backend": "flannel backend: vxlan (flannel.1) or host-gw (a route per node)",
        "name": "lab name (default: gen-<N>n-<M>p)",
        "serve_all": "a server in every pod (default: only in the services' endpoints)",
    }
)
@cli.friendly
def gen(c, nodes=2, pods=4, backend="vxlan", name="", serve_all=False):
    """Write a valid topology of any size to stdout: inv gen --nodes 10 --pods 50 > lab.yaml"""
    import yaml

    from labnet import generate

    topo = generate.topology(nodes, pods, backend, name or None, serve_all)
    sys.stdout.write("# yaml-language-server: $schema=../labnet/schema/topology.schema.json\n")
    sys.stdout.write(yaml.safe_dump(topo, sort_keys=False, default_flow_style=None, width=100))


@task(help={"name": "etcd, flanneld-NODE or POD/CONTAINER", "lab": "lab name, when several"})
@cli.friendly
def restart(c, name, lab=""):
    """Start one of a lab's processes again, as after a crash (e.g. inv restart flanneld-master)."""
    from labnet import lab as labs
    from labnet import render, state

    names = [lab] if lab else state.labs()
    if len(names) != 1:
        from labnet.errors import InputError

        raise InputError("say which lab with --lab", f"labs up: {', '.join(names) or 'none'}")
    rec = labs.restart(names[0], name)
    render.console.print(f"{rec.name} started again in {rec.netns} (pid {rec.pid})")


@task(
    help={
        "target": "lab name or topology file",
        "out": "where to write the SVG (default: <lab>.svg here)",
        "path": "draw the path of a flow, FROM:TO (names or addresses), e.g. pod1:pod3",
    }
)
@cli.friendly
def graph(c, target, out="", path=""):
    """Draw the lab as an SVG: nodes, namespaces, bridges, flannel.1, etcd, hosts, a path."""
    from labnet import render, report

    name, svg = report.graph(target, path)
    written = report.write(svg, out or f"{name}.svg")
    render.console.print(f"wrote {written}")


@task(
    help={
        "topology": "topology file (the lab is brought up for the walk when it is down)",
        "no_pause": "run straight through (CI, recordings); exit 1 if an expected line is missing",
        "lang": "language of the explanations: en or zh",
        "file": "the walkthrough (default: <topology>.walk.yaml beside the topology)",
    }
)
@cli.friendly
def walk(c, topology, no_pause=False, lang="en", file=""):
    """A narrated walkthrough of the flow, step by step, on the live lab."""
    from labnet import lab, render, state
    from labnet import walk as walker

    wt = walker.load(Path(file) if file else walker.default_file(topology))
    name = lab.resolve_lab(topology)
    started_here = not state.lab_dir(name).exists()
    if started_here:
        with cli.progress(f"up {topology}") as step:
            lab.up(topology, step)
    try:
        missing = walker.walk(name, wt, lang, pause=not no_pause)
    finally:
        if started_here:
            lab.down(name)
    if missing:
        render.console.print(f"[bold red]{len(missing)} expected lines were not seen[/bold red]")
        raise Exit(code=1)
    render.console.print("[bold green]every expected line was seen in the live lab[/bold green]")


def _replace_with(argv: list[str], env: dict | None = None) -> None:
    """Become the command (its exit code is the task's), an argument vector, no shell."""
    sys.stdout.flush()
    os.execvpe(argv[0], argv, env if env is not None else os.environ)


@task
@cli.friendly
def demo(c):
    """Up the reference lab, ping pod1 -> pod3, show neighbour, FDB and etcd state, down."""
    from labnet import demo as reference
    from labnet import lab, render

    topology = os.path.join(HERE, REFERENCE)
    with cli.progress("up the reference lab") as step:
        result = lab.up(topology, step)
    try:
        reference.tour(result.lab)
    finally:
        report = lab.down(result.lab)
        render.console.print(
            f"lab {report.lab} is down ({len(report.namespaces)} namespaces removed)"
        )


@task(
    help={
        "runs": "runs per case (medians are reported)",
        "quick": "small sizes only (1x100, 2x10, 5x10): a few minutes",
        "sizes": "comma-separated NODESxPODS_PER_NODE, e.g. 2x10,10x10,50x10",
        "out": "directory for bench.json and bench.svg (default: bench/results)",
        "no_reference": "leave out the reference lab",
    }
)
@cli.friendly
def bench(c, runs=3, quick=False, sizes="", out="bench/results", no_reference=False):
    """Time and memory of labnet against ip -batch and Mininet, at growing lab sizes."""
    from labnet import benchmark, preflight, render

    preflight.check(services=True)
    chosen = benchmark.parse_sizes(sizes) if sizes else None
    chosen = chosen or (benchmark.QUICK_SIZES if quick else benchmark.SIZES)
    with cli.progress("bench") as step:
        result = benchmark.run(chosen, runs, Path(out), not no_reference, step)
    render.console.print(render.bench_table(result), width=max(render.console.width, 132))
    render.console.print(render.bench_fit(result))
    print(f"written: {out}/bench.json, {out}/bench.svg")


@task(help={"k": "only tests matching this pytest expression", "unit": "unit tests only (no root)"})
def test(c, k="", unit=False):
    """Lint, then run the whole test suite (unit tests, then lab tests on real namespaces)."""
    with c.cd(HERE):
        c.run("./scripts/bootstrap --test", pty=False)  # the browser the HTML report test uses
        c.run(f"{sys.executable} -m ruff check labnet tests tasks.py bench", pty=False)
        target = "tests/unit" if unit else "tests"
        select = f" -k {k!r}" if k else ""
        result = c.run(f"{sys.executable} -m pytest -q {target}{select}", warn=True, pty=False)
        if result.exited != 0:
            raise Exit(code=result.exited)
