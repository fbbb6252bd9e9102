"""Forking into a lab namespace, shared by the orchestrator (agents) and the launcher
(containers). Standard library only: the launcher imports it and must start fast."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable

from labnet.kernel import netns

PR_SET_NAME = 15


def set_comm(comm: str) -> None:
    """The name `ps` and `top` show for this process (15 bytes at most)."""
    netns._libc.prctl(PR_SET_NAME, comm.encode()[:15], 0, 0, 0)


def daemonize(log: str | os.PathLike, ns: str, comm: str, keep_fd: int | None = None) -> None:
    """In a fresh fork: its own session, stdin from /dev/null, stdout and stderr to `log`, no
    inherited descriptor but `keep_fd` (if any), inside namespace `ns`, named `comm`."""
    os.setsid()
    out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    if keep_fd is None:
        os.closerange(3, 65536)
    else:
        os.closerange(3, keep_fd)
        os.closerange(keep_fd + 1, 65536)
    # fresh stream objects: a parent thread may have held the old ones' locks at fork
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    netns.enter_for_good(ns)
    set_comm(comm)


def fork(name: str, child: Callable[[], int]) -> int:
    """Fork a child that runs `child()` and exits with its code; returns its pid at once."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = child()
        except BaseException as exc:  # noqa: BLE001 - a child must never return to the parent's code
            with contextlib.suppress(Exception):
                os.write(2, f"{name}: {exc!r}\n".encode())
        finally:
            os._exit(code)
    return pid


def fork_reporting(name: str, child: Callable[[int], int]) -> tuple[int, bytes]:
    """Fork a child that runs `child(report_fd)` and exits with its code. Returns the pid and
    what was written to the report pipe before every holder closed it."""
    read_fd, write_fd = os.pipe()

    def run() -> int:
        os.close(read_fd)
        return child(write_fd)

    pid = fork(name, run)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as r:
        return pid, r.read()
