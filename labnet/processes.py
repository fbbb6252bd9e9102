"""Processes a lab starts inside its namespaces; stopping exactly those (PID + start time)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
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


PR_SET_NAME = 15


def set_comm(comm: str) -> None:
    """The name `ps` and `top` show for this process (15 bytes at most)."""
    netns._libc.prctl(PR_SET_NAME, comm.encode()[:15], 0, 0, 0)


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
            set_comm(argv[0])
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


CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWPID = 0x00020000, 0x04000000, 0x20000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x8, 0x4000, 1 << 18
PR_SET_PDEATHSIG = 1


def _container_pid1(hostname: str, run: Callable[[], int] | None, command: list[str]) -> int:
    """PID 1 of a container: its own /proc (so `ps` shows only its processes) and hostname."""
    libc = netns._libc
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the container dies with its keeper
    netns._check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "private /")
    netns._check(
        libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None),
        "mount /proc",
    )
    socket.sethostname(hostname)
    set_comm("labnet-serve")
    if command and run is None:
        os.execvp(command[0], command)
    if command:  # a command beside the server: it runs as a child of the server
        subprocess.Popen(command, stdin=subprocess.DEVNULL)
    return run() if run else 0


def _container_keeper(hostname: str, run: Callable[[], int] | None, command: list[str]) -> int:
    """Runs in the pod's network namespace; makes new PID, mount and UTS namespaces, forks the
    container's PID 1 into them and stays as its keeper: SIGTERM here stops the container."""
    netns._check(netns._libc.unshare(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS), "unshare")
    child = os.fork()
    if child == 0:
        code = 1
        try:
            code = _container_pid1(hostname, run, command)
        except BaseException as exc:  # noqa: BLE001 - report, never return into the keeper
            os.write(2, f"container: {exc!r}\n".encode())
        finally:
            os._exit(code)

    def stop(_signum, _frame) -> None:
        os.kill(child, signal.SIGKILL)  # PID 1 of a namespace ignores SIGTERM without a handler

    signal.signal(signal.SIGTERM, stop)
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status) & 0xFF


def fork_container(
    name: str, ns: str, hostname: str, log: Path, run: Callable[[], int] | None, command: list[str]
) -> ProcessRecord:
    """A container of a pod: the pod's network namespace, its own PID, mount and UTS ones."""
    return fork_into(
        name,
        "container",
        ns,
        log,
        lambda: _container_keeper(hostname, run, command),
        ["labnet-pod", name],
    )


def container_pid1(rec: ProcessRecord) -> int | None:
    """The container's PID 1 (seen from the host), the child of its keeper."""
    try:
        with open(f"/proc/{rec.pid}/task/{rec.pid}/children") as f:
            children = f.read().split()
    except FileNotFoundError:
        return None
    return int(children[0]) if children else None


def _reap(pid: int) -> None:
    """Collect our own child so it does not linger as a zombie; others belong to init."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop(records: list[ProcessRecord], grace: float = 0.5) -> list[str]:
    """SIGTERM, then SIGKILL after `grace`, only processes that are still the ones recorded."""
    ours = [r for r in records if is_ours(r)]
    for r in ours:
        # etcd's graceful stop syncs data that the teardown deletes right after: not worth it
        sig = signal.SIGKILL if r.kind == "etcd" else signal.SIGTERM
        with contextlib.suppress(ProcessLookupError):
            os.kill(r.pid, sig)
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
