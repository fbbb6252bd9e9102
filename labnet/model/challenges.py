"""Challenges: break-fix exercises on a shipped lab (`challenges/*.yaml`), read and checked
against their schema (challenge.schema.json beside this module) and against their lab: the
lab exists, and each check a challenge names is one of the lab's. Pure: reads files only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labnet.errors import InputError

from . import schema, shipped, source
from .text import joined


@dataclass(frozen=True)
class Command:
    """`inv exec WHERE -- ARGV`, or `stop`/`restart` one of the lab's processes (WHERE)."""

    where: str  # a node, pod or host of the lab; for stop and restart, a process's name
    argv: tuple[str, ...]  # may hold the lab's values: {ip.pod3}, {mac.minion}, ...
    action: str = "exec"  # exec | stop | restart

    def typed(self, lab: str = "") -> str:
        """What a learner types for it (in lab `lab`, when several are up)."""
        import shlex

        opt = f" --lab {lab}" if lab else ""
        if self.action == "exec":
            return f"inv exec{opt} {self.where} -- {shlex.join(self.argv)}"
        if self.action == "stop":
            return f"{self.where} stopped (by its recorded PID)"
        return f"inv {self.action}{opt} {self.where}"


@dataclass(frozen=True)
class Challenge:
    name: str
    path: Path
    title: dict[str, str]
    lab: str  # a shipped lab's name
    story: dict[str, str]
    fault: tuple[Command, ...]
    checks: tuple[str, ...]  # names of the lab's checks
    hints: tuple[dict[str, str], ...]
    fix: tuple[Command, ...]
    explanation: dict[str, str]

    def hint(self, i: int, lang: str) -> str:
        """Hint i (from 1) in `lang`."""
        h = self.hints[i - 1]
        return joined(h.get(lang) or h["en"])

    def text(self, field: str, lang: str) -> str:
        value = getattr(self, field)
        return joined(value.get(lang) or value.get("en", ""))


def directory() -> Path:
    """challenges/ in the repository (labnet/challenges/ in an installed package)."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "challenges"
    return installed if installed.is_dir() else package.parent / "challenges"


def names() -> list[str]:
    return sorted(p.stem for p in directory().glob("*.yaml"))


def catalogue() -> list[Challenge]:
    return [load(n) for n in names()]


def _commands(raw: list[dict]) -> tuple[Command, ...]:
    out = []
    for c in raw:
        action = next((a for a in ("stop", "restart") if a in c), "exec")
        where = c["in"] if action == "exec" else c[action]
        out.append(Command(where, tuple(c.get("command", ())), action))
    return tuple(out)


def load(name: str) -> Challenge:
    """A challenge by name (or a file path), checked against its schema and its lab."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else directory() / f"{name}.yaml"
    if not path.exists():
        raise InputError(f"no challenge named {name!r}", f"challenges: {', '.join(names())}")
    data, loc = source.read_yaml(path)
    schema.check(data, loc, "challenge")
    lab = shipped.topology_path(data["lab"])
    if not lab.exists():
        raise loc.error(("lab",), f"no lab named {data['lab']!r}", "see: inv labs")
    from labnet import model  # the lab's topology, for the names of its checks

    known = [c.name for c in model.load(lab).checks]
    for i, check in enumerate(data["checks"]):
        if check not in known:
            raise loc.error(
                ("checks", i),
                f"lab {data['lab']} has no check named {check!r}",
                f"its checks: {'; '.join(known)}",
            )
    return Challenge(
        path.stem,
        path,
        data["title"],
        data["lab"],
        data["story"],
        _commands(data["fault"]),
        tuple(data["checks"]),
        tuple(data.get("hints", [])),
        _commands(data["fix"]),
        data.get("explanation", {}),
    )
