"""Fault injection for the clean-up tests: `up` and `down` count their recorded steps (each
state-file write, each daemon started, each netlink batch or rule set sent, each process
stopped, each namespace deleted), and with LABNET_CRASH_AFTER=N the process kills itself
with SIGKILL right after its N-th step, as a crash or `kill -9` would. LABNET_STEP_LOG=FILE
writes one line per step, which is how the tests learn how many steps there are.

Only the process that armed it counts: children forked after `arm()` (the agents) never
crash by it. Without the variables, `step()` returns at once.
"""

from __future__ import annotations

import os
import signal

CRASH_AFTER = "LABNET_CRASH_AFTER"
STEP_LOG = "LABNET_STEP_LOG"

_armed = {"pid": 0, "count": 0, "crash_at": 0, "log": ""}


def arm() -> None:
    """Start counting in this process (called by `up` and `down`)."""
    crash_at = int(os.environ.get(CRASH_AFTER, "0") or 0)
    log = os.environ.get(STEP_LOG, "")
    _armed.update(pid=os.getpid() if crash_at or log else 0, count=0, crash_at=crash_at, log=log)


def step(what: str) -> None:
    """One recorded step is done."""
    if _armed["pid"] != os.getpid():
        return
    _armed["count"] += 1
    if _armed["log"]:
        with open(_armed["log"], "a") as f:
            f.write(f"{_armed['count']} {what}\n")
    if _armed["count"] == _armed["crash_at"]:
        os.kill(os.getpid(), signal.SIGKILL)
