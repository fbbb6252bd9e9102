"""A challenge in a lab: start it (build the lab, apply the fault without a word), check it
(the challenge's checks through verify), give hints one at a time, or give up (the fault and
the reference fix shown, the fix applied).

What a learner can read without effort says nothing of the fault: the lab's state file and
logs are the lab's as always, the fault's commands run with their output discarded, and the
challenge's own record (`challenge.json` in the lab's directory) holds its name, the hints
shown and when it was solved. The learner has to look at the kernel, as on a real node.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from labnet import model
from labnet.daemons import state
from labnet.errors import InputError, LabFailure
from labnet.lab import build, lookup
from labnet.lab import start as lab_start
from labnet.lab.values import fill, values
from labnet.model import challenges, shipped
from labnet.model.challenges import Challenge, Command

RECORD = "challenge.json"


@dataclass
class Progress:
    name: str
    lab: str
    started: float
    hints_shown: int = 0
    solved: float | None = None  # when its checks first passed
    gave_up: bool = False


def _record(lab: str) -> Path:
    return state.lab_dir(lab) / RECORD


def progress(lab: str) -> Progress | None:
    try:
        return Progress(**json.loads(_record(lab).read_text()))
    except FileNotFoundError:
        return None


def _save(p: Progress) -> None:
    _record(p.lab).write_text(json.dumps(asdict(p)) + "\n")


def copy_topology(topology: Path, lab: str) -> Path:
    """The topology under another lab name, kept in that lab's directory (a learner's copy
    of a lab: `down` removes it with the lab)."""
    text = re.sub(r"^name: .*$", f"name: {lab}", topology.read_text(), count=1, flags=re.M)
    path = state.lab_dir(lab) / "topology.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def start(
    name: str, topology: Path | None = None, progress_cb=lambda _s: None
) -> tuple[Challenge, str]:
    """Build the challenge's lab (from `topology`, a learner's copy, when given), apply its
    fault and record it. Returns the challenge and the lab's name. A fault that cannot be
    applied takes the lab down again."""
    ch = challenges.load(name)
    topology = topology or shipped.topology_path(ch.lab)
    target = model.load(topology).name
    if state.load(target) is not None:  # a challenge starts from a lab as shipped
        raise InputError(f"lab {target} is already up", f"take it down first: inv down {target}")
    result = build.up(str(topology), progress_cb)
    try:
        apply_fault(ch, result.lab)
    except BaseException:
        from labnet.lab import teardown

        teardown.down(result.lab)
        raise
    _save(Progress(ch.name, result.lab, time.time()))
    return ch, result.lab


def filled(lab: str, commands: tuple[Command, ...]) -> tuple[Command, ...]:
    """The commands with the lab's own values in them ({ip.pod3}, {mac.minion}, ...)."""
    v = values(lab)
    return tuple(replace(c, argv=tuple(fill(a, v) for a in c.argv)) for c in commands)


def run(lab: str, commands: tuple[Command, ...], quiet: bool) -> None:
    """Each command (filled) inside the lab, as `inv exec` runs it, its output discarded. A
    command that fails stops the run (LabFailure), saying which one unless quiet."""
    for c in commands:
        if c.action != "exec":
            _process(lab, c)
            continue
        proc = lookup.run_as_typed(lookup.find(c.where, lab), list(c.argv), timeout=30)
        if proc.returncode != 0:
            what = "a step of the challenge's fault" if quiet else " ".join(c.argv)
            raise LabFailure(f"{what} failed in {c.where} (exit {proc.returncode})")


def _process(lab: str, c: Command) -> None:
    """Stop one of the lab's processes by its recorded PID, or start it again."""
    from labnet.daemons import processes

    if c.action == "restart":
        lab_start.restart(lab, c.where)
        return
    st = lookup.load_state(lab)
    recs = [p for p in st.processes if p.name == c.where]
    if not recs:
        raise LabFailure(f"lab {lab} runs nothing called {c.where!r}")
    processes.stop(recs)
    return f"{c.where} stopped\n"


def apply_fault(ch: Challenge, lab: str) -> None:
    run(lab, filled(lab, ch.fault), quiet=True)


def current(lab: str | None) -> tuple[Challenge, Progress]:
    """The challenge running in `lab`, or in the one lab that runs one."""
    if lab is None:
        running = [name for name in state.labs() if progress(name) is not None]
        if not running:
            raise InputError("no challenge is running", "start one: inv challenge start NAME")
        if len(running) > 1:
            raise InputError(f"challenges run in {', '.join(running)}", "pick one with --lab LAB")
        lab = running[0]
    p = progress(lab)
    if p is None:
        raise InputError(f"lab {lab} runs no challenge", "start one: inv challenge start NAME")
    return challenges.load(p.name), p


def checks(lab: str | None) -> tuple[Challenge, Progress, list[model.Check]]:
    """The challenge's checks, for verify (labnet.probe.verify.run)."""
    ch, p = current(lab)
    topo = model.load(lookup.load_state(p.lab).topology)
    return ch, p, [c for c in topo.checks if c.name in ch.checks]


def passed(p: Progress) -> None:
    """Its checks passed: the first time is when it was solved (unless the learner gave up)."""
    if p.solved is None and not p.gave_up:
        p.solved = time.time()
        _save(p)


def hint(lab: str | None) -> tuple[Challenge, Progress, int]:
    """The next hint's index (hints already shown are shown again with it)."""
    ch, p = current(lab)
    if not ch.hints:
        raise InputError(f"{ch.name} has no hints", "inv challenge give-up shows the fix")
    p.hints_shown = min(p.hints_shown + 1, len(ch.hints))
    _save(p)
    return ch, p, p.hints_shown


@dataclass(frozen=True)
class GaveUp:
    """What give-up shows: the fault and the fix with the lab's values, the fix's steps
    that failed (already done by the learner)."""

    challenge: Challenge
    progress: Progress
    fault: tuple[Command, ...]
    fix: tuple[Command, ...]
    failed: list[str]


def give_up(lab: str | None) -> GaveUp:
    """Apply the reference fix, each step on its own: a step the learner already did (a
    route already there) fails and the others still run."""
    ch, p = current(lab)
    p.gave_up = True
    _save(p)
    fault, fix = filled(p.lab, ch.fault), filled(p.lab, ch.fix)
    failed = []
    for step in fix:
        try:
            run(p.lab, (step,), quiet=False)
        except LabFailure as exc:
            failed.append(exc.message)
    return GaveUp(ch, p, fault, fix, failed)
