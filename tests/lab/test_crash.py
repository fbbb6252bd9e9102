"""Crashes at every step: `up` (and `down`) killed with SIGKILL right after each of their
recorded steps (LABNET_CRASH_AFTER, labnet.kernel.crashpoint), then `down` must leave
nothing (namespace, process, mount, file), the root namespace must be unchanged, and the
next `up` must work."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from labnet.daemons import processes, state
from labnet.errors import InputError
from labnet.kernel import crashpoint, netns
from labnet.lab import build, teardown
from tests.conftest import ROOT
from tests.lab import rootns

pytestmark = pytest.mark.lab
LABS = {  # lab name -> shipped topology it is a copy of
    "crash-min": "flannel-vxlan-minimal.yaml",
    "crash-ref": "flannel-vxlan.yaml",
}
SAMPLE = 30  # crash points at least, evenly spread, where a lab has more steps


def topology(tmp_path: Path, lab: str) -> Path:
    lines = (ROOT / "topologies" / LABS[lab]).read_text().splitlines()
    text = "\n".join(f"name: {lab}" if line.startswith("name: ") else line for line in lines)
    path = tmp_path / f"{lab}.yaml"
    path.write_text(text + "\n")
    return path


def cli(*args: str, env: dict[str, str]) -> int:
    return subprocess.run(
        [sys.executable, "-m", "labnet", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    ).returncode


def count_steps(tmp_path: Path, *args: str) -> list[str]:
    log = tmp_path / f"steps-{uuid.uuid4().hex}.log"
    assert cli(*args, env={crashpoint.STEP_LOG: str(log)}) == 0
    return log.read_text().splitlines()


def spread(count: int) -> list[int]:
    """Every step, or SAMPLE of them evenly spread (first and last included)."""
    if count <= SAMPLE:
        return list(range(1, count + 1))
    return sorted({1 + round(i * (count - 1) / (SAMPLE - 1)) for i in range(SAMPLE)})


def down_if_any(lab: str) -> None:
    try:
        teardown.down(lab)
    except InputError:  # crashed before it made anything
        pass


def leftovers(lab: str, marker: bytes = b"") -> list[str]:
    """What of the lab is still there: namespaces, their mounts, its directory, its
    /etc/netns entries, and processes started by the crashed run (they carry `marker`)."""
    left = [f"namespace {n}" for n in netns.list_names() if n.startswith(f"{lab}-")]
    with open("/proc/self/mountinfo") as f:
        left += [f"mount {line.split()[4]}" for line in f if f"/netns/{lab}-" in line]
    if state.lab_dir(lab).exists():
        left.append(f"directory {state.lab_dir(lab)}")
    left += [f"file {p}" for p in glob.glob(f"{netns.ETC_NETNS}/{lab}-*")]
    if marker:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    environ = f.read()
            except OSError:
                continue
            if marker in environ and processes.state_letter(int(pid)) not in (None, "Z"):
                left.append(f"process {pid}")
    return left


def next_up_works(path: Path, lab: str) -> None:
    result = build.up(str(path))
    try:
        assert not result.already_up and result.state.status == "up"
    finally:
        teardown.down(lab)


@pytest.fixture
def root_unchanged():
    before = rootns.snapshot()
    yield lambda: rootns.snapshot() == before


@pytest.mark.parametrize("lab", list(LABS))
def test_up_crashed_at_every_step(root_required, tmp_path, root_unchanged, lab):
    path = topology(tmp_path, lab)
    steps = count_steps(tmp_path, "up", str(path))
    teardown.down(lab)
    crashed = 0
    for at in spread(len(steps)):
        marker = f"LABNET_CRASH_TRIAL={uuid.uuid4().hex}"
        env = {crashpoint.CRASH_AFTER: str(at), marker.split("=")[0]: marker.split("=")[1]}
        crashed += cli("up", str(path), env=env) == -9
        down_if_any(lab)
        assert leftovers(lab, marker.encode()) == [], (at, steps[at - 1])
        assert root_unchanged(), (at, steps[at - 1])
        next_up_works(path, lab)
    assert crashed >= len(spread(len(steps))) - 2  # steps may differ by one or two a run


@pytest.mark.parametrize("lab", list(LABS))
def test_down_crashed_at_every_step_then_down_again(root_required, tmp_path, root_unchanged, lab):
    path = topology(tmp_path, lab)
    build.up(str(path))
    steps = count_steps(tmp_path, "down", lab)
    for at in spread(len(steps)):
        up = build.up(str(path))
        records = list(up.state.processes)
        assert cli("down", lab, env={crashpoint.CRASH_AFTER: str(at)}) == -9, steps[at - 1]
        down_if_any(lab)
        assert leftovers(lab) == [], (at, steps[at - 1])
        assert not [r.name for r in records if processes.alive(r)], (at, steps[at - 1])
        assert root_unchanged(), (at, steps[at - 1])
