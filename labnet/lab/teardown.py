"""Undo exactly what a lab created, from its state file: processes first, then namespaces.

Processes go first: a process left inside a deleted namespace keeps it alive, invisibly.
A namespace is deleted only if it is recorded *and* carries this lab's ownership mark (or no
mark at all: a build killed between creating it and marking it). A build killed between
starting a daemon and recording it leaves a daemon the state file does not name: such
processes are found inside the lab's own namespaces, by the names labnet gives its daemons.
Labs whose state file is damaged or gone are found by the mark on their namespaces' lo.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

from labnet.daemons import bird, processes, state
from labnet.errors import InputError, LabFailure
from labnet.kernel import crashpoint, netns
from labnet.kernel.realize import owner_of
from labnet.lab import lookup, preflight

# the process names (comm) of what labnet starts inside a lab: etcd and its own forks
LAB_DAEMONS = ("etcd", "flanneld", "labnet-launcher", "labnet-serve")


@dataclass
class DownReport:
    lab: str
    processes: list[str] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # recorded but owned by someone else
    left: list[str] = field(default_factory=list)  # not labnet's, running in the lab: untouched


def _ours(st: state.LabState, ns: str) -> bool:
    """The inode recorded at creation proves it; without one, the mark on lo decides."""
    if ns in st.inodes:
        return netns.inode(ns) == st.inodes[ns]
    return owner_of(ns) in (st.lab, None)


def _remove_namespaces(st: state.LabState, report: DownReport) -> None:
    present = [ns for ns in st.namespaces if netns.exists(ns)]
    mine = {ns: _ours(st, ns) for ns in present}
    for ns, ours in mine.items():
        if not ours:
            report.skipped.append(ns)
        elif netns.delete(ns):
            report.namespaces.append(ns)


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _marked(pid: int, lab: str) -> bool:
    """Started by the lab: etcd, the launcher and every container carry its mark."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f"{state.LAB_MARK}={lab}".encode() in f.read().split(b"\0")
    except OSError:
        return False


def _strays(st: state.LabState, report: DownReport) -> list[state.ProcessRecord]:
    """labnet's daemons inside the lab's namespaces that the state file does not name."""
    recorded = {p.pid for p in st.processes}
    found = []
    mine = [ns for ns in st.namespaces if netns.exists(ns) and _ours(st, ns)]
    for ns, pids in netns.pids_by_namespace(mine).items():
        for pid in pids:
            if pid in recorded or processes.state_letter(pid) in (None, "Z"):
                continue
            comm = _comm(pid)
            if comm in LAB_DAEMONS or _marked(pid, st.lab):
                found.append(
                    state.ProcessRecord(
                        f"{comm} (unrecorded)", comm, ns, pid, processes.starttime(pid) or 0
                    )
                )
            else:
                report.left.append(f"{pid} {comm} in {ns}")
    return found


def _etc_entries(namespaces: list[str]) -> list[str]:
    """Without a state file, each namespace proven the lab's takes its /etc/netns entry
    (the directory only once empty)."""
    return [
        p
        for ns in namespaces
        for p in (f"{netns.ETC_NETNS}/{ns}", f"{netns.ETC_NETNS}/{ns}/resolv.conf")
    ]


def teardown(st: state.LabState) -> DownReport:
    """Remove what `st` records; the caller holds the lab's lock."""
    report = DownReport(st.lab)
    report.processes = processes.stop(st.processes)
    report.processes += processes.stop(_strays(st, report))
    _remove_namespaces(st, report)
    netns.remove_etc(st.files if st.topology else _etc_entries(report.namespaces))
    crashpoint.step("resolv.conf files removed")
    shutil.rmtree(state.lab_dir(st.lab), ignore_errors=True)
    bird.remove_run_dir(st.lab)  # once this lab's BIRD directories are gone too
    crashpoint.step("lab directory removed")
    try:
        state.STATE_ROOT.rmdir()  # only when no lab (and no schema digest) is left
    except OSError:
        pass
    return report


def marked_namespaces(lab: str | None = None) -> dict[str, list[str]]:
    """lab -> namespaces carrying its ownership mark, whatever the state files say. Reading a
    mark is a netlink request (2 s for the 552 namespaces of a 50-node lab), so for one lab
    only names it could have given (`LAB-...`) are read."""
    out: dict[str, list[str]] = {}
    for ns in netns.list_names():
        if lab is not None and not ns.startswith(f"{lab}-"):
            continue
        owner = owner_of(ns)
        if owner and lab in (None, owner):
            out.setdefault(owner, []).append(ns)
    return out


def down(target: str) -> DownReport:
    """`inv down LAB|TOPOLOGY`: remove everything the lab created, and nothing else."""
    preflight.require_root()
    crashpoint.arm()
    return _down(lookup.resolve_lab(target))


def down_all() -> list[DownReport]:
    """`inv down --all`: every lab with a state directory or namespaces carrying a lab's mark."""
    preflight.require_root()
    crashpoint.arm()
    return [_down(lab) for lab in all_labs()]


def _down(lab: str) -> DownReport:
    """Undo a lab from its state file; without a readable one, from the marks on its
    namespaces (each namespace is recorded before it is made: a readable file names all)."""
    has_dir = state.lab_dir(lab).exists()
    marked = {} if has_dir else marked_namespaces(lab)
    if not has_dir and not marked:
        raise InputError(f"no lab named {lab!r} is up", lookup.hint_labs())
    with state.locked(lab):
        st = _readable_state(lab)
        if st is None:  # the marks, read once: above when there was no lab directory
            st = state.LabState(lab, topology="")
            st.namespaces = (marked or marked_namespaces(lab)).get(lab, [])
        return teardown(st)


def _readable_state(lab: str) -> state.LabState | None:
    try:
        return state.load(lab)
    except LabFailure:  # damaged: what carries the lab's mark is still found
        return None


def all_labs() -> list[str]:
    """Labs with a state directory, and labs known only by the marks on their namespaces."""
    return sorted(set(state.lab_dirs()) | set(marked_namespaces()))
