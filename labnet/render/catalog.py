"""Tables of what labnet offers, no lab needed: the shipped labs (`inv labs`) and the
releases a lab can run (`inv versions`)."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from labnet.model import Topology


def labs_table(rows: list[tuple[Path, Topology]]) -> Table:
    """`inv labs`: one line a shipped lab; `inv up NAME` takes the first column."""
    table = Table(title="Labs shipped with labnet (inv up NAME, inv walk NAME)")
    for col in ("name", "what it teaches", "releases", "walkthrough"):
        table.add_column(col, overflow="fold")
    for path, topo in rows:
        walk = path.with_name(f"{path.stem}.walk.yaml").exists()
        table.add_row(path.stem, topo.description, topo.releases, "yes" if walk else "-")
    return table


def versions_table() -> Table:
    """`inv versions`: every supported release, the sets a lab is pinned to, what changes."""
    from labnet.model import versions as v

    table = Table(title="Releases a lab can run (topology: versions:)", show_lines=True)
    for col in ("component", "version", "follows", "what a lab shows"):
        table.add_column(col, overflow="fold")
    for component, known in v.KNOWN.items():
        for r in known.values():
            sets = [
                name
                for name, s in (("article", v.ARTICLE), ("today", v.TODAY))
                if s[component] == r.version
            ]
            mark = f" ({', '.join(sets)})" if sets else ""
            table.add_row(component, r.version + mark, f"{r.tag} {r.date}", r.changes)
    table.caption = (
        "article: the reference lab's set (etcd v2); today: the default of new topologies "
        "and inv gen (etcd v3). The etcd API follows flannel (v3 from v0.18); etcd.api "
        "overrides it."
    )
    return table
