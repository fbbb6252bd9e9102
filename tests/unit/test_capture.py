"""capture.start without root: stand-ins for tcpdump show that one which never listens is
stopped by its PID and its Capture says why, and that a failed start leaves nothing running."""

from __future__ import annotations

import subprocess
import sys

import pytest

from labnet.probe import capture

LISTENS = (
    "import sys, time; print('listening on eth0', file=sys.stderr, flush=True); time.sleep(60)"
)
SILENT = "import time; time.sleep(60)"
FAILS = "import sys; print('tcpdump: eth9: No such device exists', file=sys.stderr); sys.exit(1)"


@pytest.fixture
def started(monkeypatch):
    """Each place runs the stand-in named by its interface; every process started is kept."""
    procs: list[subprocess.Popen] = []
    programs = {"listens": LISTENS, "silent": SILENT, "fails": FAILS}

    def popen(ns, argv, **kwargs):
        if argv[argv.index("-i") + 1] == "broken":
            raise OSError("namespace vanished")
        proc = subprocess.Popen(
            [sys.executable, "-c", programs[argv[argv.index("-i") + 1]]], **kwargs
        )
        procs.append(proc)
        return proc

    monkeypatch.setattr(capture.netns, "popen", popen)
    yield procs
    for proc in procs:  # a failing test still leaves nothing running
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_tcpdump_past_its_deadline_is_stopped_and_named(started, tmp_path):
    caps = capture.start([("ns-a", "listens"), ("ns-b", "silent")], tmp_path, timeout=0.5)
    listening, silent = caps
    assert listening.proc is not None and not listening.error
    assert silent.proc is None
    assert silent.error == "tcpdump did not start listening within 0.5 s"
    assert started[1].poll() is not None  # stopped, and reaped
    assert not silent.pcap.exists()
    capture.stop(caps)
    assert all(p.poll() is not None for p in started)


def test_a_tiny_deadline_leaves_no_process(started, tmp_path):
    caps = capture.start([("ns-a", "silent"), ("ns-b", "silent")], tmp_path, timeout=0.001)
    assert [c.proc for c in caps] == [None, None]
    assert all("did not start listening" in c.error for c in caps)
    assert all(p.poll() is not None for p in started)


def test_tcpdump_that_exits_says_why(started, tmp_path):
    (cap,) = capture.start([("ns-a", "fails")], tmp_path, timeout=5)
    assert cap.proc is None
    assert cap.error == "tcpdump: eth9: No such device exists"


def test_a_failed_start_stops_the_captures_already_started(started, tmp_path):
    with pytest.raises(OSError, match="namespace vanished"):
        capture.start([("ns-a", "listens"), ("ns-b", "broken")], tmp_path, timeout=5)
    assert len(started) == 1 and started[0].poll() is not None
