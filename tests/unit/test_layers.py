"""The stages of the design are sub-packages, and a lower stage never imports a higher one."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "labnet"
# lowest first: a module may import its own stage and the stages before it
STAGES = ["errors", "model", "plan", "kernel", "daemons", "lab", "probe", "render", "bench", "cli"]
MAX_LINES = 400


def _stage(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "labnet" or len(parts) < 2 or parts[1] not in STAGES:
        return None
    return parts[1]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(source: str, name: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, module) of every import in a module's source, those inside functions too;
    `from X import y` counts as X and as X.y (y may be a module)."""
    package = name if is_package else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return out


def _violations(name: str, source: str, is_package: bool = False) -> list[str]:
    own = _stage(name)
    if own is None:  # labnet/__init__.py and __main__.py: the program's entry
        return []
    return [
        f"{name}:{line} ({own}) imports {module}"
        for line, module in _imports(source, name, is_package)
        if (other := _stage(module)) and STAGES.index(other) > STAGES.index(own)
    ]


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_belongs_to_a_stage():
    top = {p.name for p in PACKAGE.iterdir() if p.suffix == ".py"}
    assert top == {"__init__.py", "__main__.py", "errors.py"}
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(STAGES[1:])


def test_no_stage_imports_a_higher_one():
    wrong = []
    for path in _modules():
        name = _module_name(path)
        wrong += _violations(name, path.read_text(), path.name == "__init__.py")
    assert not wrong, "\n".join(wrong)


def test_the_check_finds_relative_absolute_and_late_imports():
    source = (
        "from ..lab import build\n"
        "import labnet.render.terminal\n"
        "from . import objects\n"
        "def f():\n"
        "    from labnet.probe import verify\n"
    )
    found = _violations("labnet.plan.fake", source)
    assert [v.split(" imports ")[1] for v in found] == [
        "labnet.lab",
        "labnet.lab.build",
        "labnet.render.terminal",
        "labnet.probe",
        "labnet.probe.verify",
    ]
    assert _violations("labnet.cli.fake", source) == []


def test_no_module_is_over_400_lines():
    long = [
        f"{p.relative_to(ROOT)}: {n} lines"
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    ]
    assert not long, "\n".join(long)


def test_the_architecture_doc_names_every_stage_and_module():
    """docs/architecture.md's table has a row a stage, naming each of its modules."""
    rows = {}
    for line in (ROOT / "docs" / "architecture.md").read_text().splitlines():
        if line.startswith("| `labnet/"):
            folder = line.split("`")[1].removeprefix("labnet/").strip("/")
            rows[folder] = line
    assert set(rows) == set(STAGES[1:])
    missing = [
        f"{path.relative_to(PACKAGE)}"
        for path in _modules()
        if path.parent != PACKAGE
        and path.name != "__init__.py"
        and f"`{path.name}`" not in rows[path.relative_to(PACKAGE).parts[0]]
    ]
    assert not missing, missing
