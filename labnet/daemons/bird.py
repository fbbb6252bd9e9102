"""BIRD 2 in a node, as calico-node runs it: the node's config (rendered by labnet.plan.bird,
as Calico's confd would), `bird -R -s <socket> -d -c <dir>/bird.cfg` in the node's
namespace, its log the node's.

Each node keeps its config and control socket in its own directory; `inv exec NODE` and
`inv shell NODE` show that directory at /run/bird (bind-mounted in the mount namespace
`ip netns exec` makes), so `birdc show protocols` works as typed, as on a node with its
own /run.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from labnet.daemons import processes, state
from labnet.plan import Daemon

RUN_BIRD = "/run/bird"  # where birdc looks for bird.ctl


def directory(lab: str, node: str) -> Path:
    return state.node_dir(lab, node) / "bird"


def log(lab: str, node: str) -> Path:
    return directory(lab, node) / "bird.log"


def node_of(d: Daemon) -> str:
    return d.name.removeprefix("bird-")


RUN_MARK = os.path.join(RUN_BIRD, ".labnet")  # /run/bird is labnet's: the last BIRD lab removes it


def prepare_run_dir() -> None:
    """/run/bird must exist for the bind mount; made, and marked as labnet's, where the
    machine has none (its own bird2 service makes it when it runs)."""
    try:
        os.makedirs(RUN_BIRD)
    except FileExistsError:
        return
    open(RUN_MARK, "w").close()


def remove_run_dir(lab: str) -> None:
    """At a BIRD lab's `down`: /run/bird goes when labnet made it and no other lab's BIRD
    needs it."""
    if os.path.exists(RUN_MARK) and not others_use_run_dir(lab):
        with contextlib.suppress(OSError):
            if os.listdir(RUN_BIRD) == [os.path.basename(RUN_MARK)]:
                os.unlink(RUN_MARK)
                os.rmdir(RUN_BIRD)


def start(lab: str, d: Daemon) -> state.ProcessRecord:
    """The node's BIRD, its config written first; not waited for (its sessions come up in
    seconds: Calico's connect delay is 2 s)."""
    where = directory(lab, node_of(d))
    where.mkdir(parents=True, exist_ok=True)
    for name, text in d.settings:  # bird.cfg, bird_aggr.cfg, bird_ipam.cfg
        (where / name).write_text(text)
    # calico-node's own command line, with the node's directory for /var/run/calico and
    # /etc/calico/confd/config
    argv = ["bird", "-R", "-s", str(where / "bird.ctl"), "-d", "-c", str(where / "bird.cfg")]
    env = os.environ | {state.LAB_MARK: lab}
    return processes.spawn(d.name, "bird", d.netns, argv, log(lab, node_of(d)), env=env)


def exec_prefix(lab: str, node: str) -> list[str]:
    """What runs a command in the node with its BIRD directory at /run/bird (none when the
    node runs no BIRD)."""
    where = directory(lab, node)
    if not where.is_dir():
        return []
    prepare_run_dir()  # gone with another lab while this one runs: made again
    script = 'mount --bind "$0" /run/bird && exec "$@"'
    return ["sh", "-c", script, str(where)]


def others_use_run_dir(lab: str) -> bool:
    """Another lab up has BIRD nodes: /run/bird stays for its `birdc`."""
    return any(p.parent.parent.parent.name != lab for p in state.STATE_ROOT.glob("*/nodes/*/bird"))
