"""Processes a lab starts inside its namespaces; stopping exactly those (PID + start time)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from labnet.daemons.forking import daemonize, fork
from labnet.daemons.state import LAB_MARK, ProcessRecord
from labnet.errors import LabFailure
from labnet.kernel import crashpoint, netns


def starttime(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat: with the pid, identifies one process for good."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(data.rsplit(")", 1)[1].split()[19])


def state_letter(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):  # gone between open and read
        return None


def is_ours(rec: ProcessRecord) -> bool:
    return starttime(rec.pid) == rec.starttime


def alive(rec: ProcessRecord) -> bool:
    """Running (not a zombie) and still the process we started."""
    return is_ours(rec) and state_letter(rec.pid) not in (None, "Z", "X")


def spawn(
    name: str,
    kind: str,
    ns: str,
    argv: list[str],
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> ProcessRecord:
    """Start an external program inside namespace `ns`: only its network namespace, with the
    host's mounts (as `nsenter --net`, without that extra exec)."""
    with open(log, "ab") as out:
        proc = netns.popen(
            ns,
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=cwd,
            close_fds=True,
        )
    crashpoint.step(f"started {name}")
    return ProcessRecord(name, kind, ns, proc.pid, starttime(proc.pid) or 0, argv)


@dataclass(frozen=True)
class Child:
    """A daemon to fork: `main()` runs inside namespace `ns`, output to `log`."""

    name: str
    kind: str
    ns: str
    log: Path
    main: Callable[[], int]
    argv: list[str]


PR_SET_PDEATHSIG = 1


class Forking:
    """Children being forked by one short-lived process of their own (fork_many)."""

    def __init__(self, children: list[Child]) -> None:
        self.children = children
        parent = os.getpid()
        read_fd, write_fd = os.pipe()
        self.pid = fork("forker", lambda: self._fork_each(parent, write_fd))
        os.close(write_fd)
        self._answers = os.fdopen(read_fd, "rb")

    def _fork_each(self, parent: int, write_fd: int) -> int:
        # a crashed parent: no more forks (its pipe also breaks at the next pid written)
        netns._libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            return 1
        os.closerange(3, write_fd)  # the parent's lock and sockets stay the parent's alone
        os.closerange(write_fd + 1, 65536)
        for c in self.children:

            def child(c: Child = c) -> int:
                daemonize(c.log, c.ns, c.argv[0])  # closes write_fd too
                return c.main()

            os.write(write_fd, f"{fork(c.name, child)}\n".encode())
        return 0

    def finish(self) -> list[ProcessRecord]:
        """Once every child is forked: their records."""
        with self._answers:
            pids = [int(line) for line in self._answers]
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        return [
            ProcessRecord(c.name, c.kind, c.ns, pid, starttime(pid) or 0, c.argv)
            for c, pid in zip(self.children, pids)  # noqa: B905 - a crashed forker: fewer pids
        ]


def fork_many(children: list[Child]) -> Forking:
    """Fork daemons that share this process's imported modules (pyroute2), so each is ready
    in milliseconds instead of the second an interpreter takes to import them, and its pages
    stay shared. One child of this process forks them all and exits: a fork costs the
    forking process milliseconds of CPU (copying its page tables, then its own pages as it
    writes them again), which the orchestrator, with pods to build, would pay fifty times.
    They are not waited for: each runs at once on the other core."""
    return Forking(children)


LAUNCHER_WAIT = 20.0  # seconds; an interpreter's start, on a loaded 2-core machine


def start_launcher(ns: str, sock: Path, log: Path, lab: str) -> ProcessRecord:
    """The lab's container launcher (labnet.daemons.launcher), a fresh interpreter in `ns`."""
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root, LAB_MARK: lab}
    # -S: the standard library only (no site-packages), so the interpreter starts fast
    argv = [sys.executable, "-S", "-m", "labnet.daemons.launcher", str(sock)]
    return spawn("launcher", "launcher", ns, argv, log, env=env)


class Launcher:
    """A connection to the launcher: one JSON line out, one back, per container."""

    def __init__(self, sock: Path, rec: ProcessRecord) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + LAUNCHER_WAIT
        while True:
            try:
                self.sock.connect(str(sock))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if not alive(rec) or time.monotonic() > deadline:
                    self.sock.close()
                    raise LabFailure(
                        "the container launcher did not start", f"see {sock.parent}/launcher.log"
                    ) from None
                time.sleep(0.005)
        self.stream = self.sock.makefile("rw")

    def launch(self, request: dict) -> int:
        self.stream.write(json.dumps(request) + "\n")
        self.stream.flush()
        answer = json.loads(self.stream.readline() or '{"error": "the launcher exited"}')
        if "error" in answer:
            raise LabFailure(f"{request['name']}: {answer['error']}")
        return answer["pid"]

    def close(self) -> None:
        self.stream.close()
        self.sock.close()


def _reap(pid: int) -> None:
    """Collect our own child so it does not linger as a zombie; others belong to init."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop(records: list[ProcessRecord], grace: float = 0.5) -> list[str]:
    """SIGTERM, then SIGKILL after `grace`, only processes that are still the ones recorded.
    The launcher goes last: it reaps the containers as they exit."""
    last = [r for r in records if r.kind == "launcher"]
    if last and len(last) < len(records):
        rest = [r for r in records if r.kind != "launcher"]
        return _stop(rest, grace) + _stop(last, grace)
    return _stop(records, grace)


def _stop(records: list[ProcessRecord], grace: float) -> list[str]:
    ours = [r for r in records if is_ours(r)]
    for r in ours:
        # etcd's graceful stop syncs data that the teardown deletes right after: not worth it
        sig = signal.SIGKILL if r.kind in ("etcd", "container") else signal.SIGTERM
        with contextlib.suppress(ProcessLookupError):
            os.kill(r.pid, sig)
        crashpoint.step(f"signalled {r.name}")
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        for r in ours:
            _reap(r.pid)
        if not any(alive(r) for r in ours):
            break
        time.sleep(0.005)
    for r in ours:
        if alive(r):
            with contextlib.suppress(ProcessLookupError):
                os.kill(r.pid, signal.SIGKILL)
    for r in ours:
        for _ in range(200):
            _reap(r.pid)
            if not alive(r):
                break
            time.sleep(0.005)
    return [r.name for r in ours]
