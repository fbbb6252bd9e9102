"""BIRD 2 in a node, as calico-node runs it: the node's config (rendered by labnet.plan.bird,
as Calico's confd would), `bird -R -s <socket> -d -c <dir>/bird.cfg` in the node's
namespace, its log the node's.

Each node keeps its config and control socket in its own directory; `inv exec NODE` and
`inv shell NODE` show that directory at /run/bird (bind-mounted in the mount namespace
`ip netns exec` makes), so `birdc show protocols` works as typed, as on a node with its
own /run.
"""

from __future__ import annotations

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


def prepare_run_dir(st: state.LabState) -> None:
    """/run/bird must exist for the bind mount; made (and recorded, so `down` removes it
    when empty and no other lab uses it) where the machine has none."""
    if not os.path.isdir(RUN_BIRD):
        st.files.append(RUN_BIRD)
        state.save(st)
        os.makedirs(RUN_BIRD, exist_ok=True)


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
    if not where.is_dir() or not os.path.isdir(RUN_BIRD):
        return []
    script = 'mount --bind "$0" /run/bird && exec "$@"'
    return ["sh", "-c", script, str(where)]


def others_use_run_dir(lab: str) -> bool:
    """Another lab up has BIRD nodes: /run/bird stays for its `birdc`."""
    return any(p.parent.parent.parent.name != lab for p in state.STATE_ROOT.glob("*/nodes/*/bird"))
