"""Starting a lab's processes, and starting one again (`inv restart`): the embedded etcd, the
flannel agents (forked, sharing the orchestrator's imported modules) and the containers and
servers (forked by the lab's launcher)."""

from __future__ import annotations

import gc
import json
import os
import threading
from collections.abc import Callable

from labnet import model, plan
from labnet.daemons import bird, processes, state
from labnet.daemons import etcd as etcd_server
from labnet.errors import InputError
from labnet.kernel import crashpoint
from labnet.lab import preflight
from labnet.lab.lookup import load_state
from labnet.model import Topology

WAIT_AGENTS = 20.0  # seconds; a slow machine under load still leases in well under this


def launcher(topo: Topology, st: state.LabState) -> state.ProcessRecord:
    ns = plan.netns_name(topo.name, "underlay")
    log = state.lab_dir(topo.name) / "launcher.log"
    rec = processes.start_launcher(ns, state.launcher_socket(topo.name), log, topo.name)
    st.processes.append(rec)
    state.save(st)
    return rec


def workloads(
    topo: Topology, daemons: list[plan.Daemon], st: state.LabState
) -> list[state.ProcessRecord]:
    """Containers of pods and servers of external hosts, started by the lab's launcher.
    Returns their records (the caller records them: this may run in a thread)."""
    (state.lab_dir(topo.name) / "workloads").mkdir(exist_ok=True)
    if not daemons:
        return []
    rec = next((p for p in st.processes if p.kind == "launcher" and processes.alive(p)), None)
    if rec is None:  # a restart after the launcher was stopped
        st.processes = [p for p in st.processes if p.kind != "launcher"]
        rec = launcher(topo, st)
    client = processes.Launcher(state.launcher_socket(topo.name), rec)
    started = []
    try:
        for d in daemons:
            pid = client.launch(_launch_request(topo, d))
            crashpoint.step(f"started {d.name}")
            argv = ["labnet-serve", d.name]
            started.append(
                state.ProcessRecord(
                    d.name, d.kind, d.netns, pid, processes.starttime(pid) or 0, argv
                )
            )
    finally:
        client.close()
    return started


def _launch_request(topo: Topology, d: plan.Daemon) -> dict:
    return {
        "name": d.name,
        "lab": topo.name,
        "netns": d.netns,
        "hostname": d.setting("hostname"),
        "serve": d.setting("serve").split(),
        "command": json.loads(d.setting("command")),
        "log": str(state.workload_log(topo.name, d.name)),
        "container": d.kind == "container",
    }


class Background(threading.Thread):
    """Work that overlaps the build (the launcher forks while netlink and etcd work)."""

    def __init__(self, work: Callable[[], list]) -> None:
        super().__init__(daemon=True)
        self.work, self.result, self.error = work, [], None

    def run(self) -> None:
        try:
            self.result = self.work()
        except BaseException as exc:  # noqa: BLE001 - handed to the build thread by finish()
            self.error = exc

    def finish(self) -> list:
        self.join()
        if self.error is not None:
            raise self.error
        return self.result


def etcd(topo: Topology, st: state.LabState, only: str | None = None) -> state.ProcessRecord:
    """The embedded etcd: one member, or each member of a cluster. Returns the first."""
    lab_dir = state.lab_dir(topo.name)
    exe = etcd_server.binary(topo.etcd.binary)
    members = dict(zip(topo.etcd.member_names, map(str, topo.etcd.member_addresses), strict=True))
    started = []
    for name, address in members.items():
        if only not in (None, name):
            continue
        data = lab_dir / ("etcd" if name == "etcd" else f"{name}.data")
        cluster = members if len(members) > 1 else None
        argv = etcd_server.argv(
            exe, name if cluster else topo.name, address, data, cluster, not topo.etcd.binary, name
        )
        ns, log = plan.netns_name(topo.name, name), lab_dir / f"{name}.log"
        env = os.environ | etcd_server.GO_ENV | {state.LAB_MARK: topo.name}
        rec = processes.spawn(name, "etcd", ns, argv, log, env=env, cwd=lab_dir)
        st.processes.append(rec)
        started.append(rec)
    st.etcd = f"http://{topo.etcd.address}:{etcd_server.CLIENT_PORT}"
    st.etcd_api = topo.etcd.api
    state.save(st)
    return started[0]


def agents(topo: Topology, lab_plan: plan.LabPlan, only: str | None = None) -> processes.Forking:
    """The flannel agents, forked (not waited for); their records come from finish()."""
    from labnet.daemons.flannel import agent as flannel  # once: forked agents share its pages

    chosen = [d for d in lab_plan.daemons if d.kind == "flannel" and only in (None, d.name)]
    if chosen:
        flannel.warm_up(chosen[0].netns)
    children = [_agent(topo, d, flannel) for d in chosen]
    # frozen, the parent's objects are never walked by a child's collector, and so never
    # copied: the agents keep sharing the parent's pages
    gc.freeze()
    try:
        forking = processes.fork_many(children)
    finally:
        gc.unfreeze()
    crashpoint.step(f"{len(children)} agents forked")
    return forking


def _agent(topo: Topology, d: plan.Daemon, flannel) -> processes.Child:
    node = d.netns[len(topo.name) + 1 :]
    ndir = state.node_dir(topo.name, node)
    ndir.mkdir(parents=True, exist_ok=True)
    endpoints = [u.removeprefix("http://") for u in d.setting("etcd").split(",")]
    host, port = endpoints[0].split(":")
    pinned = d.setting("subnet")
    cfg = flannel.AgentConfig(
        node,
        host,
        int(port),
        d.setting("iface"),
        d.setting("public_ip"),
        None if pinned == "lease" else pinned,
        d.setting("mode", "miss"),  # host-gw has none; its agent reads the backend in etcd
        str(ndir),
        d.setting("ipmasq") == "true",
        d.setting("etcd_api"),
        lease_ttl=topo.flannel.lease_ttl,
        more_endpoints=tuple(endpoints[1:]),
        release=d.setting("release"),
    )
    return processes.Child(
        d.name,
        "flannel",
        d.netns,
        ndir / "flanneld.log",
        lambda: flannel.main(cfg),
        ["flanneld", node],
    )


def restart(lab_name: str, name: str) -> state.ProcessRecord:
    """Start a lab's daemon again (etcd, flanneld-NODE, bird-NODE, POD/CONTAINER), as after a
    crash."""
    preflight.require_root()
    with state.locked(lab_name):
        st = load_state(lab_name)
        topo = model.load(st.topology)
        lab_plan = plan.plan(topo)
        daemon = next((d for d in lab_plan.daemons if d.name == name), None)
        if daemon is None:
            raise InputError(
                f"lab {lab_name!r} runs nothing called {name!r}",
                f"processes: {', '.join(d.name for d in lab_plan.daemons)}",
            )
        old = [p for p in st.processes if p.name == name]
        processes.stop(old)
        st.processes = [p for p in st.processes if p.name != name]
        if daemon.kind == "etcd":
            etcd(topo, st, only=name)
        elif daemon.kind == "flannel":
            st.processes.extend(agents(topo, lab_plan, only=name).finish())
        elif daemon.kind == "bird":
            st.processes.append(bird.start(topo.name, daemon))
        else:
            st.processes.extend(workloads(topo, [daemon], st))
        state.save(st)
        return next(p for p in st.processes if p.name == name)
