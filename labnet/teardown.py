"""Undo exactly what a lab created, from its state file: processes first, then namespaces.

Processes go first: a process left inside a deleted namespace keeps it alive, invisibly.
A namespace is deleted only if it is recorded *and* carries this lab's ownership mark (or no
mark at all: a build killed between creating it and marking it).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

from . import netns, processes, state
from .errors import InputError
from .realize import Kernel, owner_of


@dataclass
class DownReport:
    lab: str
    processes: list[str] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # recorded but owned by someone else


def _ours(st: state.LabState, ns: str, kernel: Kernel) -> bool:
    """The inode recorded at creation proves it; without one, the mark on lo decides."""
    if ns in st.inodes:
        return netns.inode(ns) == st.inodes[ns]
    return owner_of(kernel, ns) in (st.lab, None)


def _remove_namespaces(st: state.LabState, report: DownReport) -> None:
    with Kernel() as kernel:
        present = [ns for ns in st.namespaces if netns.exists(ns)]
        mine = {ns: _ours(st, ns, kernel) for ns in present}
    for ns, ours in mine.items():
        if not ours:
            report.skipped.append(ns)
        elif netns.delete(ns):
            report.namespaces.append(ns)


def teardown(st: state.LabState) -> DownReport:
    """Remove what `st` records; the caller holds the lab's lock."""
    report = DownReport(st.lab)
    report.processes = processes.stop(st.processes)
    _remove_namespaces(st, report)
    shutil.rmtree(state.lab_dir(st.lab), ignore_errors=True)
    try:
        state.STATE_ROOT.rmdir()  # only when no other lab is left
    except OSError:
        pass
    return report


def down(lab: str) -> DownReport:
    if not state.lab_dir(lab).exists():
        raise InputError(f"no lab named {lab!r} is up", hint_labs())
    with state.locked(lab):
        st = state.load(lab)
        if st is None:
            st = state.LabState(lab, topology="")
        return teardown(st)


def hint_labs() -> str:
    up = state.labs()
    return f"labs up: {', '.join(up)}" if up else "no lab is up"
