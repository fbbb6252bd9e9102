"""Daemons forked through one short-lived forker: each inside its namespace, under its own
name, recorded by pid; the forker reaped, and gone with its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from labnet.daemons import processes
from labnet.kernel import netns
from tests.lab.conftest import until

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]


def _sleep() -> int:
    time.sleep(60)
    return 0


def _comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def test_children_run_in_their_namespaces_and_the_forker_is_reaped(root_required, tmp_path):
    names = [f"labnet-fork-{os.getpid()}-{i}" for i in range(3)]
    made, records = [], []
    try:
        for name in names:
            netns.create(name)
            made.append(name)
        children = [
            processes.Child(f"d{i}", "flannel", ns, tmp_path / f"d{i}.log", _sleep, [f"dmn{i}"])
            for i, ns in enumerate(names)
        ]
        forking = processes.fork_many(children)
        records = forking.finish()
        assert [(r.name, r.netns) for r in records] == [(c.name, c.ns) for c in children]
        for rec in records:
            assert processes.alive(rec)
            # a child's pid is reported at fork, before it enters its namespace and renames
            assert until(lambda r=rec: netns.pids_inside(r.netns) == [r.pid])
            assert until(lambda r=rec: _comm(r.pid) == r.argv[0])
        with pytest.raises(ChildProcessError):  # the forker was waited for, not left a zombie
            os.waitpid(forking.pid, os.WNOHANG)
    finally:
        processes.stop(records)
        for name in made:
            netns.delete(name)


def test_the_forker_dies_with_its_parent(root_required, tmp_path):
    """A crashed orchestrator leaves no forker behind to start daemons after a `down`."""
    ns = f"labnet-fork-{os.getpid()}-orphan"
    script = textwrap.dedent(f"""
        import os, signal, time
        from labnet.daemons import processes
        def slow():
            time.sleep(60)
            return 0
        children = [processes.Child(f"d{{i}}", "flannel", {ns!r}, {str(tmp_path)!r} + "/d.log",
                                    slow, ["dmn"]) for i in range(200)]
        forking = processes.fork_many(children)
        print(forking.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    netns.create(ns)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        forker = int(proc.stdout)
        time.sleep(0.5)
        assert processes.state_letter(forker) in (None, "Z")
        started = netns.pids_inside(ns)
        time.sleep(0.5)
        assert netns.pids_inside(ns) == started  # and no more are forked
        assert len(started) < 200
    finally:
        for pid in netns.pids_inside(ns):
            os.kill(pid, signal.SIGKILL)
        netns.delete(ns)
