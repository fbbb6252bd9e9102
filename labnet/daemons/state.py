"""Per-lab state: the directory under /run/labnet/<lab>, the state file and the lab lock.

The state file records every namespace and process the lab created, written *before* each
is created, so teardown can undo exactly that, also after a crash mid-build.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from labnet.errors import InputError, LabFailure
from labnet.kernel import crashpoint

STATE_ROOT = Path(os.environ.get("LABNET_STATE_ROOT", "/run/labnet"))


@dataclass
class ProcessRecord:
    name: str
    kind: str
    netns: str
    pid: int
    starttime: int  # from /proc/<pid>/stat: a pid alone may be reused
    argv: list[str] = field(default_factory=list)


@dataclass
class LabState:
    lab: str
    topology: str
    status: str = "building"  # building | up | failed
    created: float = field(default_factory=time.time)
    namespaces: list[str] = field(default_factory=list)
    processes: list[ProcessRecord] = field(default_factory=list)
    nodes: dict[str, dict] = field(default_factory=dict)  # node -> subnet, pods, netns
    inodes: dict[str, int] = field(default_factory=dict)  # netns -> nsfs inode: proof it is ours
    roles: dict[str, str] = field(default_factory=dict)  # name -> node | pod | etcd | ...
    addresses: dict[str, str] = field(default_factory=dict)  # name -> its lab address
    etcd_api: str = "v3"
    files: list[str] = field(default_factory=list)  # /etc/netns/... files and dirs made
    etcd: str = ""  # client URL, e.g. http://10.46.181.10:2379 (reached inside the lab only)

    @classmethod
    def from_dict(cls, data: dict) -> LabState:
        procs = [ProcessRecord(**p) for p in data.pop("processes", [])]
        return cls(processes=procs, **data)


# in the environment of every process a lab starts (etcd, the launcher, each container and
# server): `down` knows them by it in the lab's namespaces, even when `up` died before it
# recorded them, whatever their name
LAB_MARK = "LABNET_LAB"


def lab_dir(lab: str) -> Path:
    return STATE_ROOT / lab


def state_file(lab: str) -> Path:
    return lab_dir(lab) / "state.json"


def node_dir(lab: str, node: str) -> Path:
    """Per node: subnet.env (flannel's /run/flannel/subnet.env) and the agent's log."""
    return lab_dir(lab) / "nodes" / node


def workload_log(lab: str, name: str) -> Path:
    """A container's or external server's output (`inv logs pod3/app`)."""
    return lab_dir(lab) / "workloads" / (name.replace("/", "_") + ".log")


def launcher_socket(lab: str) -> Path:
    return lab_dir(lab) / "launcher.sock"


def save(state: LabState) -> None:
    path = state_file(state.lab)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(_as_dict(state)))  # C encoder: json.dump with indent is pure Python
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    crashpoint.step(f"state of {state.lab} written")


def _as_dict(state: LabState) -> dict:
    """Like dataclasses.asdict, without its deep copy of every list and dict (a save is made
    several times an up, and a 50-node lab's state holds thousands of entries)."""
    return vars(state) | {"processes": [vars(p) for p in state.processes]}


def load(lab: str) -> LabState | None:
    try:
        with open(state_file(lab)) as f:
            return LabState.from_dict(json.load(f))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, TypeError, KeyError) as exc:
        raise LabFailure(
            f"state file of lab {lab!r} is damaged: {exc}", f"inspect {state_file(lab)}"
        ) from None


def lab_dirs() -> list[str]:
    """Every lab directory, also those whose state file is damaged or missing."""
    if not STATE_ROOT.is_dir():
        return []
    return sorted(p.name for p in STATE_ROOT.iterdir() if p.is_dir())


def labs() -> list[str]:
    """Labs that have a state directory."""
    if not STATE_ROOT.is_dir():
        return []
    return sorted(p.name for p in STATE_ROOT.iterdir() if (p / "state.json").exists())


@contextlib.contextmanager
def locked(lab: str) -> Iterator[None]:
    """One `up` or `down` of a lab at a time; a second one is told so, not queued."""
    d = lab_dir(lab)
    d.mkdir(parents=True, exist_ok=True, mode=0o755)
    fd = os.open(d / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                f"lab {lab!r} is busy: another labnet command is working on it",
                "wait for it to finish, then try again",
            ) from None
        yield
    finally:
        os.close(fd)
