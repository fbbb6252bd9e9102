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
from labnet.kernel import netns
from labnet.lab import build, challenge, teardown
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


def base_of(lab: str) -> str:
    """The class a copy belongs to: its name without `-NN`."""
    return lab.rsplit("-", 1)[0]


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
    if members(base):
        raise InputError(
            f"class {base} is up", f"take it down first: inv class down --klass {base}"
        )
    source = shipped.topology_path(
        challenges.load(challenge_name).lab if challenge_name else target
    )
    made = []
    for i in range(1, learners + 1):
        lab = lab_name(base, i)
        progress(f"{lab} ({i}/{learners})")
        topology = challenge.copy_topology(source, lab)
        member = {"klass": base, "learner": i, "target": target}  # before the build: down finds it
        (state.lab_dir(lab) / MEMBER).write_text(json.dumps(member) + "\n")
        if challenge_name:
            challenge.start(challenge_name, topology)
        else:
            build.up(str(topology))
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
    up: bool  # built, and not taken down (a challenge may have stopped one of its processes)
    challenge: str
    solved: float | None
    hints: int
    gave_up: bool = False


def status(klass: str | None = None) -> list[Row]:
    rows = []
    for m in members(klass):
        st = state.load(m.lab)
        p = challenge.progress(m.lab)
        up = bool(st and st.status == "up" and all(netns.exists(n) for n in st.namespaces))
        rows.append(
            Row(
                m,
                up,
                p.name if p else "-",
                p.solved if p else None,
                p.hints_shown if p else 0,
                bool(p and p.gave_up),
            )
        )
    return rows


def down(klass: str | None = None) -> list[teardown.DownReport]:
    """Every copy of the class (of every class, without one)."""
    return [teardown.down(m.lab) for m in members(klass)]
