"""What `inv bench` compares labnet with: the same objects made by `ip -batch`, and Mininet.

The ip -batch baseline is the kernel's own speed for a lab's plumbing, as a shell script
would make it: one `ip -batch` for every namespace, then per namespace one `ip -n NS -batch`
for its bridges and veths (the peer created directly in its namespace), then one per
namespace for addresses, routes and links up. No daemons, no iptables, no sysctls: those are
labnet's own work on top. Taking it down is one `ip -batch` of `netns del`.

Everything happens inside namespaces named `<lab>-...` that this module creates and deletes by
the exact names it created: the root namespace only gains and loses the /run/netns mounts.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass

from labnet.errors import LabFailure
from labnet.kernel import netns
from labnet.plan import LabPlan, Steps


@dataclass
class Batches:
    """ip -batch scripts: one to create the namespaces, then per namespace, in order."""

    namespaces: list[str]
    links: dict[str, list[str]]  # netns -> bridge and veth commands
    config: dict[str, list[str]]  # netns -> lo up, peers up, addresses, routes


def _steps(lab_plan: LabPlan) -> Steps:
    """The base plus every node's docker0 and pods (pinned subnets only)."""
    out = Steps(**{k: list(v) for k, v in vars(lab_plan.base).items()})
    for name, node in lab_plan.nodes.items():
        if node is None:
            raise LabFailure(f"{name} has no pinned subnet", "the baseline needs known subnets")
        for part in ("bridges", "veths", "addresses", "routes"):
            getattr(out, part).extend(getattr(node.steps, part))
    return out


def batches(lab_plan: LabPlan) -> Batches:
    """The plan's namespaces, bridges, veths, ports, addresses and routes as ip commands."""
    steps = _steps(lab_plan)
    names = [ns.name for ns in lab_plan.namespaces]
    links: dict[str, list[str]] = {}
    config: dict[str, list[str]] = {n: ["link set lo up"] for n in names}
    for b in steps.bridges:
        links.setdefault(b.netns, []).append(f"link add {b.ifname} mtu {b.mtu} up type bridge")
    for v in steps.veths:
        master = f" master {v.master}" if v.master else ""
        links.setdefault(v.netns, []).append(
            f"link add {v.ifname} mtu {v.mtu}{master} up type veth"
            f" peer name {v.peer_ifname} mtu {v.mtu} netns {v.peer_netns}"
        )
        config[v.peer_netns].append(f"link set {v.peer_ifname} up")
    for a in steps.addresses:
        config[a.netns].append(f"addr add {a.cidr} dev {a.ifname}")
    for r in steps.routes:
        config[r.netns].append(f"route add {r.dst} via {r.gateway} dev {r.ifname}")
    return Batches(names, links, config)


def _ip_batch(commands: list[str], netns: str | None = None) -> None:
    argv = ["ip", *(["-n", netns] if netns else []), "-batch", "-"]
    proc = subprocess.run(argv, input="\n".join(commands) + "\n", capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabFailure(f"ip -batch in {netns or 'the root namespace'}: {proc.stderr.strip()}")


def ip_batch_up(b: Batches) -> None:
    _ip_batch([f"netns add {n}" for n in b.namespaces])
    for ns, commands in b.links.items():
        _ip_batch(commands, ns)
    for ns, commands in b.config.items():
        _ip_batch(commands, ns)


def ip_batch_down(b: Batches) -> None:
    _ip_batch([f"netns del {n}" for n in b.namespaces])


def ip_batch_run(lab_plan: LabPlan) -> dict[str, float]:
    """Seconds for up and down of the plan's plumbing made by ip -batch."""
    b = batches(lab_plan)
    t = time.perf_counter()
    try:
        ip_batch_up(b)
        up = time.perf_counter() - t
    finally:
        t = time.perf_counter()
        ip_batch_down(b)
    return {"up": up, "down": time.perf_counter() - t}


# ---------------------------------------------------------------- Mininet

MININET_ARGV = ["--switch", "lxbr", "--controller", "none", "--test", "none"]
MININET_NETNS = "labnet-bench-mininet"
MININET_MAX_HOSTS = 100  # bigger labs are compared with ip -batch only: mn takes minutes

# Run as `python3 -c` with mn's own interpreter. Mininet's start-up raises host-wide limits
# (kernel.pty.max) and its clean-up, on any error, kills processes by name pattern and
# deletes /tmp/*.log: both are disabled here. What it starts stays in its own PID namespace
# (the kernel kills it all when mn exits) and its own network namespace.
MININET_RUNNER = """
import runpy, sys
import mininet.clean, mininet.net
mininet.net.fixLimits = lambda: None
mininet.clean.cleanup = mininet.clean.Cleanup.cleanup = lambda *a: None
mn, sys.argv = sys.argv[1], ["mn", *sys.argv[2:]]
runpy.run_path(mn, run_name="__main__")
"""


def mininet_available() -> bool:
    return shutil.which("mn") is not None and shutil.which("brctl") is not None


def _shebang(program: str) -> str:
    """The interpreter a script names on its first line (mn runs under its own Python)."""
    with open(program) as f:
        return f.readline().removeprefix("#!").strip() or "python3"


def _mininet_argv(hosts: int, mn: str, interpreter: str) -> list[str]:
    return [
        *("ip", "netns", "exec", MININET_NETNS),
        *("unshare", "--pid", "--fork", "--mount-proc", "--kill-child"),
        *(interpreter, "-c", MININET_RUNNER, mn, *MININET_ARGV, "--topo", f"single,{hosts}"),
    ]


def mininet_run(hosts: int) -> dict[str, float]:
    """`mn --topo single,N --switch lxbr --controller none --test none`: it builds the hosts
    and the switch, runs no test and takes everything down again before it exits.

    Mininet puts its switches in the namespace it runs in; it runs in one of its own here,
    so the root namespace never sees its bridge or ports."""
    mn = shutil.which("mn") or "mn"
    argv = _mininet_argv(hosts, mn, _shebang(mn))
    netns.create(MININET_NETNS)
    try:
        t = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True)
        took = time.perf_counter() - t
    finally:
        netns.delete(MININET_NETNS)
    if proc.returncode != 0 or "Done" not in proc.stderr:
        raise LabFailure(f"mn failed: {proc.stderr.strip()[-300:]}")
    return {"up_down": took}
