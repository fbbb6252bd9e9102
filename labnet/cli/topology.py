"""Tasks on topologies, no lab needed: plan, validate, gen, graph, labs, versions."""

from __future__ import annotations

import sys

from invoke import task

from labnet.cli import glue

TOPOLOGY_HELP = "topology file, or the name of a lab shipped with labnet"


@task(help={"topology": TOPOLOGY_HELP})
@glue.friendly
def plan(c, topology):
    """Print what `up` would create, per namespace, without touching anything."""
    from labnet import model
    from labnet import plan as planner
    from labnet.model import shipped
    from labnet.render import terminal

    topo = model.load(shipped.topology_path(topology))
    terminal.console.print(terminal.plan_tree(topo, planner.plan(topo)))


@task(help={"topology": TOPOLOGY_HELP})
@glue.friendly
def validate(c, topology):
    """Check a topology file (schema and semantics); exit 2 with file:line: field on error."""
    from labnet import model
    from labnet.model import shipped
    from labnet.render import terminal

    topo = model.load(shipped.topology_path(topology))
    terminal.console.print(
        f"{topology}: valid ({len(topo.nodes)} nodes, {len(topo.pods)} pods, "
        f"{topo.network_summary}; {topo.releases})"
    )


@task
@glue.friendly
def labs(c):
    """The labs shipped with labnet: what each teaches and the releases it runs."""
    from labnet import model
    from labnet.model import shipped
    from labnet.render import catalog, terminal

    rows = [(p, model.load(p)) for p in shipped.labs()]
    terminal.console.print(catalog.labs_table(rows))


@task
@glue.friendly
def versions(c):
    """The releases a lab can run (a topology's `versions:` block) and what each changes."""
    from labnet.render import catalog, terminal

    terminal.console.print(catalog.versions_table())


@task(
    help={
        "nodes": "how many nodes",
        "pods": "how many pods, spread over the nodes",
        "backend": "flannel backend: vxlan (flannel.1) or host-gw (a route per node)",
        "name": "lab name (default: gen-<N>n-<M>p)",
        "serve_all": "a server in every pod (default: only in the services' endpoints)",
    }
)
@glue.friendly
def gen(c, nodes=2, pods=4, backend="vxlan", name="", serve_all=False):
    """Write a valid topology of any size to stdout: inv gen --nodes 10 --pods 50 > lab.yaml"""
    import yaml

    from labnet.model import generate

    topo = generate.topology(nodes, pods, backend, name or None, serve_all)
    sys.stdout.write("# yaml-language-server: $schema=../labnet/model/topology.schema.json\n")
    sys.stdout.write(yaml.safe_dump(topo, sort_keys=False, default_flow_style=None, width=100))


@task(
    help={
        "target": "lab name or topology file",
        "out": "where to write the SVG (default: <lab>.svg here)",
        "path": "draw the path of a flow, FROM:TO (names or addresses), e.g. pod1:pod3",
    }
)
@glue.friendly
def graph(c, target, out="", path=""):
    """Draw the lab as an SVG: nodes, namespaces, bridges, flannel.1, etcd, hosts, a path."""
    from labnet.render import report, terminal

    name, svg = report.graph(target, path)
    written = report.write(svg, out or f"{name}.svg")
    terminal.console.print(f"wrote {written}")
