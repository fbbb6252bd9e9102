"""A class: one copy of a lab (or of a challenge's lab, its fault applied) per learner on one
machine, `<lab>-01`, `<lab>-02`, ... Each copy is a lab of its own: its own namespaces, the
same addresses inside, nothing shared but the machine. A copy's `class.json` (in its lab
directory) says which class and learner it belongs to."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from labnet import model
from labnet.daemons import state
from labnet.errors import InputError
from labnet.lab import build, challenge, teardown
from labnet.lab.status import is_healthy
from labnet.model import challenges, shipped

MEMBER = "class.json"
MAX_LEARNERS = 99


@dataclass(frozen=True)
class Member:
    lab: str
    klass: str  # the class: the lab's own name
    learner: int
    target: str  # the topology or challenge the class was started with


def _base(target: str) -> tuple[str, str | None]:
    """(the lab's name, the challenge's name or None) for a topology or a challenge."""
    if target in challenges.names():
        return challenges.load(target).lab, target
    path = shipped.topology_path(target)
    if not path.exists():
        raise InputError(
            f"{target!r} is neither a lab nor a challenge",
            "labs: inv labs; challenges: inv challenge list",
        )
    return model.load(path).name, None


def lab_name(base: str, learner: int) -> str:
    name = f"{base}-{learner:02d}"
    if len(name) > 24:
        raise InputError(f"lab name {name!r} is longer than 24 characters", "rename the lab")
    return name


def up(target: str, learners: int, progress: Callable[[str], None] = lambda _s: None) -> list[str]:
    """Every learner's copy, one after another; returns their lab names."""
    if not 1 <= learners <= MAX_LEARNERS:
        raise InputError(f"--learners {learners}: between 1 and {MAX_LEARNERS}")
    base, challenge_name = _base(target)
    made = []
    for i in range(1, learners + 1):
        lab = lab_name(base, i)
        progress(f"{lab} ({i}/{learners})")
        if challenge_name:
            challenge.start(challenge_name, lab)
        else:
            build.up(str(challenge.copy_topology(shipped.topology_path(target), lab)))
        member = {"klass": base, "learner": i, "target": target}
        (state.lab_dir(lab) / MEMBER).write_text(json.dumps(member) + "\n")
        made.append(lab)
    return made


def _member(lab: str) -> Member | None:
    try:
        data = json.loads((state.lab_dir(lab) / MEMBER).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return Member(lab, data["klass"], data["learner"], data["target"])


def members(klass: str | None = None) -> list[Member]:
    found = [m for lab in state.lab_dirs() if (m := _member(lab))]
    return sorted((m for m in found if klass in (None, m.klass)), key=lambda m: m.lab)


@dataclass(frozen=True)
class Row:
    member: Member
    up: bool
    challenge: str
    solved: float | None
    hints: int


def status(klass: str | None = None) -> list[Row]:
    rows = []
    for m in members(klass):
        st = state.load(m.lab)
        p = challenge.progress(m.lab)
        rows.append(
            Row(
                m,
                bool(st and is_healthy(st)),
                p.name if p else "-",
                p.solved if p else None,
                p.hints_shown if p else 0,
            )
        )
    return rows


def down(klass: str | None = None) -> list[teardown.DownReport]:
    """Every copy of the class (of every class, without one)."""
    return [teardown.down(m.lab) for m in members(klass)]
