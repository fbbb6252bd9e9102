"""Processes a lab starts inside its namespaces; stopping exactly those (PID + start time)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import netns
from .state import ProcessRecord


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
    except FileNotFoundError:
        return None


def is_ours(rec: ProcessRecord) -> bool:
    return starttime(rec.pid) == rec.starttime


def alive(rec: ProcessRecord) -> bool:
    """Running (not a zombie) and still the process we started."""
    return is_ours(rec) and state_letter(rec.pid) not in (None, "Z", "X")


def spawn(
    name: str, kind: str, ns: str, argv: list[str], log: Path, env: dict[str, str] | None = None
) -> ProcessRecord:
    """Start an external program inside namespace `ns` (ip netns exec execs it: same PID)."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            close_fds=True,
        )
    return ProcessRecord(name, kind, ns, proc.pid, starttime(proc.pid) or 0, argv)


def fork_into(
    name: str, kind: str, ns: str, log: Path, main: Callable[[], int], argv: list[str]
) -> ProcessRecord:
    """Fork a child that enters `ns` in its main thread and runs `main`.

    The child shares the parent's already imported modules (etcd3, pyroute2), so an agent
    is ready in milliseconds instead of the second an interpreter takes to import them, and
    its pages stay shared. The parent must not have started gRPC before forking.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            os.close(read_fd)
            os.setsid()
            out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.closerange(3, write_fd)
            os.closerange(write_fd + 1, 65536)
            # fresh stream objects: a parent thread may have held the old ones' locks at fork
            sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
            netns.enter_for_good(ns)
            os.write(write_fd, b"ok")
            os.close(write_fd)
            code = main()
        except BaseException as exc:  # noqa: BLE001 - a child must never return to the parent's code
            with contextlib.suppress(Exception):
                os.write(2, f"{name}: {exc!r}\n".encode())
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as r:
        r.read()
    return ProcessRecord(name, kind, ns, pid, starttime(pid) or 0, argv)


def _reap(pid: int) -> None:
    """Collect our own child so it does not linger as a zombie; others belong to init."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop(records: list[ProcessRecord], grace: float = 0.5) -> list[str]:
    """SIGTERM, then SIGKILL after `grace`, only processes that are still the ones recorded."""
    ours = [r for r in records if is_ours(r)]
    for r in ours:
        with contextlib.suppress(ProcessLookupError):
            os.kill(r.pid, signal.SIGTERM)
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
