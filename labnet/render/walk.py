"""`inv walk`: a narrated walkthrough of a lab, step by step, from a data file.

A walkthrough is YAML a teacher writes without Python: steps with a title and an
explanation (each in one or more languages), and the commands a learner would type, each run
in a node, pod or host of the live lab, with the lines its output must contain. Expected
lines may use the lab's own values: {ip.pod3}, {mac.minion} (flannel.1's MAC), {ns.master},
{etcd} (etcd's client URL), {subnet.minion}.
"""

from __future__ import annotations

import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import yaml

from labnet.daemons import state
from labnet.errors import InputError
from labnet.lab import lookup
from labnet.lab.values import fill, values
from labnet.model.text import joined
from labnet.render import terminal

LANGS = ("en", "zh")


@dataclass
class Command:
    where: str
    argv: list[str]
    expect: list[str]
    events: str | None = None  # a node whose agent events to show while the command runs
    trace: str | None = None  # instead of argv: follow a ping from `where` to this, hop by hop
    size: int | None = None  # the traced ping's packet size (with don't-fragment)
    restart: str | None = None  # instead of argv: `inv restart` this process of the lab
    until: float = 0.0  # run again for up to this many seconds until `expect` is all seen


@dataclass
class Step:
    title: dict[str, str]
    text: dict[str, str]
    commands: list[Command] = field(default_factory=list)


@dataclass
class Walkthrough:
    title: dict[str, str]
    steps: list[Step]


def _texts(value: object, where: str) -> dict[str, str]:
    if isinstance(value, str):
        return {"en": value}
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return {lang: joined(text) for lang, text in value.items()}
    raise InputError(f"{where}: expected a text or a mapping of language to text")


def load(path: Path) -> Walkthrough:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such walkthrough") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise InputError(f"{path}: a walkthrough needs `steps:`", "see topologies/*.walk.yaml")
    steps = []
    for i, raw in enumerate(data["steps"]):
        where = f"{path}: steps[{i}]"
        if not isinstance(raw, dict) or "title" not in raw:
            raise InputError(f"{where}: each step needs a title")
        commands = []
        for j, c in enumerate(raw.get("run", [])):
            if isinstance(c, dict) and "in" in c and "restart" in c:
                commands.append(Command(str(c["in"]), [], [], restart=str(c["restart"])))
                continue
            if isinstance(c, dict) and "in" in c and "trace" in c:
                expect = [str(e) for e in c.get("expect", [])]
                size = int(c["size"]) if "size" in c else None
                commands.append(Command(str(c["in"]), [], expect, None, str(c["trace"]), size))
                continue
            if not isinstance(c, dict) or "in" not in c or "command" not in c:
                raise InputError(
                    f"{where}.run[{j}]: each command needs `in` and `command` (or `in` and "
                    "`trace`, or `in` and `restart`)"
                )
            argv = c["command"] if isinstance(c["command"], list) else shlex.split(c["command"])
            commands.append(
                Command(
                    str(c["in"]),
                    [str(a) for a in argv],
                    [str(e) for e in c.get("expect", [])],
                    c.get("events"),
                    until=float(c.get("until", 0)),
                )
            )
        steps.append(
            Step(_texts(raw["title"], where), _texts(raw.get("text", ""), where), commands)
        )
    return Walkthrough(_texts(data.get("title", path.stem), str(path)), steps)


def default_file(topology: str) -> Path:
    p = Path(topology)
    return p.with_name(p.name.removesuffix(".yaml").removesuffix(".yml") + ".walk.yaml")


# ---------------------------------------------------------------- running it


def _events_since(lab_name: str, node: str, offset: int) -> list[str]:
    path = state.node_dir(lab_name, node) / "flanneld.log"
    text = path.read_text() if path.exists() else ""
    return text[offset:].splitlines()


def _log_size(lab_name: str, node: str) -> int:
    path = state.node_dir(lab_name, node) / "flanneld.log"
    return len(path.read_text()) if path.exists() else 0


def run_command(lab_name: str, cmd: Command, v: SimpleNamespace) -> list[str]:
    """Run one command as a learner would type it; returns the expected lines not found."""
    if cmd.trace:
        return _trace(lab_name, cmd)
    if cmd.restart:
        return _restart(lab_name, cmd)
    place = lookup.find(cmd.where, lab_name)
    argv = [fill(a, v) for a in cmd.argv]
    typed = ["ip", "netns", "exec", place.netns, *argv]
    if lookup.exec_argv(place, argv) != typed:  # a container, or a node running BIRD (birdc
        # finds it at /run/bird): what works as typed is inv exec
        typed = ["./scripts/inv", "exec", "--lab", lab_name, cmd.where, "--", *argv]
    terminal.command(cmd.where, typed)
    before = _log_size(lab_name, cmd.events) if cmd.events else 0
    expected = [fill(e, v) for e in cmd.expect]
    deadline = time.monotonic() + cmd.until
    while True:
        proc = lookup.run_as_typed(place, argv)
        out = proc.stdout + proc.stderr
        if all(e in out for e in expected) or time.monotonic() >= deadline:
            break
        time.sleep(0.2)  # `until`: what the command shows is still on its way (BGP)
    terminal.output(out, [_escape(e) for e in expected])
    if cmd.events:
        time.sleep(0.05)
        events = _events_since(lab_name, cmd.events, before)
        terminal.console.print(f"  [dim]{cmd.events}'s flannel agent meanwhile:[/dim]")
        terminal.output(
            "\n".join(events) or "(no events)",
            ("l3-miss", "lease-lookup", "neigh-written", "fdb-written"),
        )
    missing = [e for e in expected if e not in out]
    for e in missing:
        terminal.console.print(f"  [bold red]expected and not seen:[/bold red] {e}")
    return missing


def _restart(lab_name: str, cmd: Command) -> list[str]:
    """`inv restart NAME`, as the learner types it."""
    from labnet.lab import start

    terminal.console.print(
        f"[bold magenta]\\[{cmd.where}][/bold magenta] [dim]$[/dim] "
        f"[bold]./scripts/inv restart {cmd.restart}[/bold]"
    )
    rec = start.restart(lab_name, cmd.restart)
    terminal.console.print(f"{rec.name} started again in {rec.netns} (pid {rec.pid})")
    return []


def _trace(lab_name: str, cmd: Command) -> list[str]:
    """A ping followed through every hop, captured and judged: `inv trace` inside the walk.
    With `expect`, the trace is a lesson in loss: its verdict must hold those lines (the
    first failing hop, the cause); without, every hop must be seen."""
    from labnet.probe import verify

    size = f" --size {cmd.size}" if cmd.size else ""
    terminal.console.print(
        f"[bold magenta]\\[{cmd.where}][/bold magenta] [dim]$[/dim] "
        f"[bold]./scripts/inv trace {cmd.where} {cmd.trace}{size}[/bold]"
    )
    check = verify.adhoc_check(cmd.where, cmd.trace, "icmp", None, cmd.size)
    report = verify.run(lab_name, [check])
    names = lookup.short_names(lab_name)
    with terminal.console.capture() as shown:
        terminal.verify_summary(report, names)
    from rich.text import Text

    text = Text.from_ansi(shown.get())
    terminal.console.print(text, end="")
    if cmd.expect:
        flat = " ".join(text.plain.split())
        return [e for e in cmd.expect if " ".join(e.split()) not in flat]
    return [] if report.passed else [f"every hop of {cmd.where} -> {cmd.trace} seen"]


def _escape(text: str) -> str:

    return re.escape(text)


def walk(lab_name: str, wt: Walkthrough, lang: str = "en", pause: bool = True) -> list[str]:
    """Every step in order; returns every expected line that was missing."""
    if lang not in LANGS:
        raise InputError(f"unknown language {lang!r}", f"use one of: {', '.join(LANGS)}")
    v = values(lab_name)
    missing: list[str] = []
    terminal.heading(wt.title.get(lang, wt.title.get("en", "")))
    for n, step in enumerate(wt.steps, 1):
        terminal.heading(f"{n}/{len(wt.steps)}  {step.title.get(lang) or step.title.get('en')}")
        text = step.text.get(lang) or step.text.get("en", "")
        if text:
            terminal.console.print(text.strip(), soft_wrap=True)
        for cmd in step.commands:
            missing += run_command(lab_name, cmd, v)
        if pause and sys.stdin.isatty():
            input("  [Enter] ")
    return missing
