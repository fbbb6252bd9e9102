"""Every challenge, as a learner meets it: `inv challenge start` breaks its lab; `inv challenge
check` fails (exit 1) naming the first hop where the packet was not seen, and never the
fault; the reference fix typed through `inv exec` (or `inv restart`) makes the check pass;
broken again, `inv challenge give-up` shows the fault and leaves a working lab.

Each challenge runs in a copy of its lab named after it (ch-<name>), taken down after."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from labnet.lab import challenge, lookup
from labnet.model import challenges, shipped
from tests.conftest import ROOT

pytestmark = pytest.mark.lab
INV = [str(ROOT / "scripts" / "inv")]


def inv(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*INV, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def _check_until_solved(lab: str, seconds: float = 20.0) -> subprocess.CompletedProcess:
    """BGP sessions come back seconds after they are enabled: a learner checks again."""
    deadline = time.monotonic() + seconds
    while True:
        proc = inv("challenge", "check", "--lab", lab)
        if proc.returncode == 0 or time.monotonic() > deadline:
            return proc
        time.sleep(1)


def _typed_fix(lab: str, ch: challenges.Challenge) -> None:
    for c in challenge.filled(lab, ch.fix):
        if c.action == "restart":
            proc = inv("restart", c.where, "--lab", lab)
        else:
            proc = inv("exec", "--lab", lab, c.where, "--", *c.argv)
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture
def started(root_required, request):
    name = request.param
    lab = f"ch-{name}"[:24]
    if lookup.state.lab_dir(lab).exists():
        from labnet.lab import teardown

        teardown.down(lab)
    try:
        source = shipped.topology_path(challenges.load(name).lab)
        ch, lab = challenge.start(name, challenge.copy_topology(source, lab))
        yield ch, lab
    finally:
        from labnet.lab import teardown

        if lookup.state.lab_dir(lab).exists():
            teardown.down(lab)


@pytest.mark.parametrize("started", challenges.names(), indirect=True)
def test_a_challenge_fails_until_fixed_and_give_up_restores_it(started):
    ch, lab = started
    broken = inv("challenge", "check", "--lab", lab)
    out = broken.stdout + broken.stderr
    assert broken.returncode == 1, out
    assert "first hop where the packet was not seen:" in out and "not solved" in out
    fault = challenge.filled(lab, ch.fault)
    for c in fault:  # the learner is told where, never what
        assert " ".join(c.argv) not in out if c.argv else c.where not in out
    assert "why:" not in out
    _typed_fix(lab, ch)
    fixed = _check_until_solved(lab)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert f"solved: {ch.name}" in fixed.stdout
    assert challenge.progress(lab).solved is not None
    challenge.apply_fault(ch, lab)  # broken again: the learner gives up
    gave_up = inv("challenge", "give-up", "--lab", lab)
    assert gave_up.returncode == 0, gave_up.stdout + gave_up.stderr
    first = fault[0]
    shown = first.typed() if first.action != "exec" else " ".join(first.argv)
    assert shown.split()[-1] in gave_up.stdout, gave_up.stdout  # the fault, told at last
    assert not re.search(r"\{(ip|mac|ns|subnet|cali)\.", gave_up.stdout)  # the lab's values
    assert _check_until_solved(lab).returncode == 0
