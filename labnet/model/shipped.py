"""The labs shipped with labnet (`topologies/` in the repository, `labnet/topologies/` in an
installed package), so `up`, `plan` and `walk` also take a shipped lab's name."""

from __future__ import annotations

from pathlib import Path

REFERENCE = "flannel-vxlan"  # the lab of the article, what `inv demo` runs


def directory() -> Path:
    package = Path(__file__).resolve().parents[1]
    installed = package / "topologies"
    return installed if installed.is_dir() else package.parent / "topologies"


def labs() -> list[Path]:
    """The shipped topologies (not their walkthroughs), by file name."""
    paths = (p for p in directory().glob("*.yaml") if not p.name.endswith(".walk.yaml"))
    return sorted(paths, key=lambda p: p.stem)


def topology_path(target: str | Path) -> Path:
    """A topology file as given; else the shipped lab of that name, when there is one (the
    path as given otherwise, so the error names what the user typed)."""
    path = Path(target)
    if path.exists() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path
    shipped = directory() / f"{target}.yaml"
    return shipped if shipped.exists() else path
