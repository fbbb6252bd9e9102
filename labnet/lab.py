"""The lab facade: up, down, status and finding a node or pod by name. tasks.py calls this."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from . import etcd_server, model, netlink, netns, plan, preflight, processes, state, teardown
from .errors import InputError, LabFailure
from .model import FLANNEL_PREFIX, Topology
from .realize import Kernel, RuleLoad, apply, create_namespace

Progress = Callable[[str], None]
WAIT_AGENTS = 20.0  # seconds; a slow machine under load still leases in well under this


@dataclass
class UpResult:
    lab: str
    already_up: bool
    seconds: float
    state: state.LabState


def _quiet(_: str) -> None:
    pass


def resolve_lab(target: str) -> str:
    """A lab name, or a topology file whose `name` is the lab."""
    if target.endswith((".yaml", ".yml")) or os.path.sep in target:
        return model.load(target).name
    return target


def is_healthy(st: state.LabState) -> bool:
    return (
        st.status == "up"
        and all(netns.exists(ns) for ns in st.namespaces)
        and all(processes.alive(p) for p in st.processes)
    )


# ---------------------------------------------------------------- up


def up(topology_path: str, progress: Progress = _quiet) -> UpResult:
    topo = model.load(topology_path)
    preflight.check(services=bool(topo.services))
    started = time.perf_counter()
    with state.locked(topo.name):
        existing = state.load(topo.name)
        if existing and is_healthy(existing):
            return UpResult(topo.name, True, 0.0, existing)
        if existing:
            progress("the lab is half built or unhealthy: removing it to rebuild")
            teardown.teardown(existing)
            state.lab_dir(topo.name).mkdir(parents=True, exist_ok=True)
        st = state.LabState(topo.name, str(Path(topology_path).resolve()))
        try:
            _build(topo, st, progress)
        except BaseException:
            if os.environ.get("LABNET_KEEP_FAILED"):  # to inspect it; `inv down LAB` after
                st.status = "failed"
                state.save(st)
                raise
            progress("build failed: removing what was created")
            teardown.teardown(st)
            raise
    return UpResult(topo.name, False, time.perf_counter() - started, st)


def _build(topo: Topology, st: state.LabState, progress: Progress) -> None:
    """Build in an order that lets etcd, the agents and the containers start early.

    etcd's Go process, the agents and the workloads run on the other core while this one
    makes the pods' namespaces and (for pinned subnets) docker0 and the pods' links;
    everything is then checked against what the agents wrote to subnet.env, as docker
    would read it.
    """
    lab_plan = plan.plan(topo)
    etcd_ns, ul_ns = plan.netns_name(topo.name, "etcd"), plan.netns_name(topo.name, "underlay")
    first_ns = [ns for ns in lab_plan.namespaces if ns.role == "etcd" or ns.name == ul_ns]
    workloads = [d for d in lab_plan.daemons if d.kind in ("container", "server")]
    # they need only their namespace to listen; the launcher forks them meanwhile
    launching = _Background(lambda: _start_workloads(topo, workloads, st))
    with Kernel() as kernel:
        progress("etcd on the underlay")
        st.namespaces.extend(ns.name for ns in lab_plan.namespaces)
        st.roles = {ns.owner: ns.role for ns in lab_plan.namespaces}
        state.save(st)  # recorded before they exist: a crash mid-way is still undone
        _create_namespaces(topo, first_ns, st)
        first, rest = lab_plan.base.split({ns.name for ns in first_ns})
        apply(kernel, first)
        _start_launcher(topo, st)  # its interpreter starts while etcd's does
        etcd = _start_etcd(topo, st)
        gateway = etcd_server.Gateway(etcd_ns, str(topo.etcd.address))
        agents: list[processes.Forking] = []

        def start_flannel() -> None:
            """Once etcd answers: the config first, as in the article, then the agents."""
            progress("etcd ready: flannel config, agents, containers and servers")
            _write_flannel_config(topo, gateway, etcd)
            agents.append(_start_agents(topo, lab_plan))  # they lease while the pods are made
            launching.start()  # after the agents' fork: a fork copies only the calling thread

        progress(f"namespaces and underlay ({len(lab_plan.namespaces)} namespaces)")
        _create_namespaces(topo, [n for n in lab_plan.namespaces if n not in first_ns], st)
        apply(kernel, rest)
        pinned = [n for n in topo.nodes if lab_plan.nodes[n.name] is not None]
        if pinned:
            progress("docker0 and pods (pinned subnets)")
        try:
            parts = [c for n in pinned for c in lab_plan.nodes[n.name].chunks(topo.name, 16)]
            for part in parts:  # a small lab's pods are built while etcd is still starting
                if not launching.ident and gateway.ready():
                    start_flannel()
                apply(kernel, part)
            if not launching.ident:
                start_flannel()
        finally:
            gateway.close()
            for forking in agents:  # recorded also when the build failed: teardown stops them
                st.processes.extend(forking.finish())
            state.save(st)
        progress("waiting for leases (subnet.env)")
        envs = _wait_subnet_env(topo, st)
        built = [_docker_and_pods(kernel, topo, lab_plan, n, envs[n.name], st) for n in topo.nodes]
        pod_ips = {pod: ip for b in built for pod, ip in b.pods.items()}
        st.addresses = {**_host_addresses(topo), **pod_ips}
        progress("iptables: docker" + (" and kube-proxy" if topo.services else ""))
        loading = RuleLoad(
            [r for b in built for r in b.steps.rules] + plan.kube_proxy_rules(topo, pod_ips)
        )
        try:  # the iptables-restores run on the other core while the FDB is read back
            progress("waiting for FDB entries and listeners")
            st.processes.extend(launching.finish())
            state.save(st)
            _wait_fdb(kernel, topo, st)
        finally:
            loading.wait()  # a failure above still leaves no iptables-restore behind
        _wait_listening(topo, workloads, st)
    st.status = "up"
    state.save(st)


def _write_flannel_config(
    topo: Topology, gateway: etcd_server.Gateway, etcd: state.ProcessRecord
) -> None:
    gateway.wait_ready(10.0, alive=lambda: processes.alive(etcd))
    if topo.etcd.api == "v2":
        gateway.put_v2(f"{FLANNEL_PREFIX}/config", topo.flannel.config_json())
    else:
        gateway.put(f"{FLANNEL_PREFIX}/config", topo.flannel.config_json())


def _host_addresses(topo: Topology) -> dict[str, str]:
    out = {
        m: str(a) for m, a in zip(topo.etcd.member_names, topo.etcd.member_addresses, strict=True)
    }
    out |= {n.name: str(n.address) for n in topo.nodes}
    if topo.external:
        out["gateway"] = str(topo.external.gateway)
        out |= {h.name: str(h.address) for h in topo.external.hosts}
    return out


def workload_log(lab: str, name: str) -> Path:
    return state.lab_dir(lab) / "workloads" / (name.replace("/", "_") + ".log")


def launcher_socket(lab: str) -> Path:
    return state.lab_dir(lab) / "launcher.sock"


def _start_launcher(topo: Topology, st: state.LabState) -> state.ProcessRecord:
    ns = plan.netns_name(topo.name, "underlay")
    log = state.lab_dir(topo.name) / "launcher.log"
    rec = processes.start_launcher(ns, launcher_socket(topo.name), log)
    st.processes.append(rec)
    state.save(st)
    return rec


def _start_workloads(
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
        rec = _start_launcher(topo, st)
    client = processes.Launcher(launcher_socket(topo.name), rec)
    started = []
    try:
        for d in daemons:
            pid = client.launch(_launch_request(topo, d))
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
        "netns": d.netns,
        "hostname": d.setting("hostname"),
        "serve": d.setting("serve").split(),
        "command": json.loads(d.setting("command")),
        "log": str(workload_log(topo.name, d.name)),
        "container": d.kind == "container",
    }


class _Background(threading.Thread):
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


def _wait_listening(topo: Topology, daemons: list[plan.Daemon], st: state.LabState) -> None:
    """Each built-in server logs `listening` once per socket it has bound."""
    recs = {p.name: p for p in st.processes}
    deadline = time.monotonic() + WAIT_AGENTS
    pending = {d.name: len(d.setting("serve").split()) for d in daemons}
    while pending:
        for name, want in list(pending.items()):
            log = workload_log(topo.name, name)
            text = log.read_text() if log.exists() else ""
            if text.count(" listening ") >= want:
                del pending[name]
            elif not processes.alive(recs[name]):
                raise LabFailure(f"{name} exited: {_log_tail(log)}")
        if pending and time.monotonic() > deadline:
            raise LabFailure(f"not listening after {WAIT_AGENTS:.0f} s: {', '.join(pending)}")
        if pending:
            time.sleep(0.005)


def _create_namespaces(
    topo: Topology, namespaces: list[plan.Namespace], st: state.LabState
) -> None:
    """In two threads: the kernel spends about 5 ms of CPU setting a namespace up, and two
    set-ups run side by side (552 namespaces on 2 cores: 4.7 s in one thread, 3.0 s in two;
    more threads were slower)."""
    try:
        netns.reserve([ns.name for ns in namespaces])
    except FileExistsError as exc:
        taken = os.path.basename(exc.filename2 or exc.filename)
        st.namespaces.remove(taken)  # not ours: teardown must leave it
        state.save(st)
        raise LabFailure(
            f"namespace {taken} already exists and is not this lab's",
            "another tool or lab uses that name; rename the lab",
        ) from None
    other = _Background(lambda: _create_each(topo, namespaces[1::2], st) or [])
    other.start()
    try:
        _create_each(topo, namespaces[0::2], st)
    finally:
        other.join()
    other.finish()  # its error, when this thread had none


def _create_each(topo: Topology, namespaces: list[plan.Namespace], st: state.LabState) -> None:
    for ns in namespaces:
        create_namespace(ns, topo.name, reserved=True)
        st.inodes[ns.name] = netns.inode(ns.name)


def _start_etcd(topo: Topology, st: state.LabState, only: str | None = None) -> state.ProcessRecord:
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
            exe, name if cluster else topo.name, address, data, cluster, not topo.etcd.binary
        )
        ns, log = plan.netns_name(topo.name, name), lab_dir / f"{name}.log"
        rec = processes.spawn(name, "etcd", ns, argv, log, env=os.environ | etcd_server.GO_ENV)
        st.processes.append(rec)
        started.append(rec)
    st.etcd = f"http://{topo.etcd.address}:{etcd_server.CLIENT_PORT}"
    st.etcd_api = topo.etcd.api
    state.save(st)
    return started[0]


def _start_agents(
    topo: Topology, lab_plan: plan.LabPlan, only: str | None = None
) -> processes.Forking:
    """The flannel agents, forked (not waited for); their records come from finish()."""
    from .agent import flannel  # imported here, once: forked agents share its pages

    agents = [d for d in lab_plan.daemons if d.kind == "flannel" and only in (None, d.name)]
    if agents:  # 50 x 10: 75 -> 49 ms of CPU an agent until its first FDB entry
        flannel.warm_up(agents[0].netns)
    children = [_agent(topo, d, flannel) for d in agents]
    # frozen, the parent's objects are never walked (and so copied) by a child's collector:
    # at 50 nodes this halved the agents' PSS (914 -> 474 MB) and their CPU (25 -> 10 s)
    gc.freeze()
    try:
        return processes.fork_many(children)
    finally:
        gc.unfreeze()


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
    """Start a lab's daemon again (etcd, flanneld-NODE, POD/CONTAINER), as after a crash."""
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
            _start_etcd(topo, st, only=name)
        elif daemon.kind == "flannel":
            st.processes.extend(_start_agents(topo, lab_plan, only=name).finish())
        else:
            st.processes.extend(_start_workloads(topo, [daemon], st))
        state.save(st)
        return next(p for p in st.processes if p.name == name)


def read_subnet_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        if key:
            out[key] = value
    return out


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text().strip().splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _wait_subnet_env(topo: Topology, st: state.LabState) -> dict[str, dict[str, str]]:
    agents = {p.name: p for p in st.processes if p.kind == "flannel"}
    envs: dict[str, dict[str, str]] = {}
    deadline = time.monotonic() + WAIT_AGENTS
    while len(envs) < len(topo.nodes):
        for node in topo.nodes:
            ndir = state.node_dir(topo.name, node.name)
            if node.name not in envs and (ndir / "subnet.env").exists():
                envs[node.name] = read_subnet_env(ndir / "subnet.env")
            elif node.name not in envs and not processes.alive(agents[f"flanneld-{node.name}"]):
                raise LabFailure(
                    f"flannel agent of {node.name} exited: {_log_tail(ndir / 'flanneld.log')}"
                )
        if time.monotonic() > deadline:
            late = [n.name for n in topo.nodes if n.name not in envs]
            raise LabFailure(
                f"no lease after {WAIT_AGENTS:.0f} s for: {', '.join(late)}",
                "see the agent's log: inv logs NODE",
            )
        time.sleep(0.005)
    return envs


def _docker_and_pods(
    kernel: Kernel,
    topo: Topology,
    lab_plan: plan.LabPlan,
    node: model.Node,
    env: dict[str, str],
    st: state.LabState,
) -> plan.NodePods:
    """What docker does with --bip=$FLANNEL_SUBNET --mtu=$FLANNEL_MTU."""
    subnet = IPv4Network(env["FLANNEL_SUBNET"], strict=False)
    node_pods = plan.plan_node_pods(topo, node, subnet, int(env["FLANNEL_MTU"]))
    planned = lab_plan.nodes[node.name]
    if planned is None:
        apply(kernel, node_pods.steps)
    elif planned != node_pods:  # built ahead from the pinned subnet: it must be what flannel says
        raise LabFailure(
            f"{node.name}: subnet.env says {env['FLANNEL_SUBNET']} mtu {env['FLANNEL_MTU']}, "
            f"docker0 was built for {planned.subnet} mtu {topo.flannel_mtu}"
        )
    st.nodes[node.name] = {  # what status, exec and the tests read
        "netns": plan.netns_name(topo.name, node.name),
        "subnet": node_pods.subnet,
        "public_ip": str(node.address),
        "pods": node_pods.pods,
        "mtu": int(env["FLANNEL_MTU"]),
    }
    return node_pods


def _remote_entries(kernel: Kernel, topo: Topology, node: model.Node) -> int:
    """vxlan: FDB entries on flannel.1 (a remote VTEP each); host-gw: routes via another
    node's address."""
    ns = plan.netns_name(topo.name, node.name)
    if topo.flannel.vxlan:
        entries = netlink.fdb_entries(ns, kernel.index(ns, topo.flannel.device))
        return sum(1 for _, dst in entries if dst)
    others = {str(n.address) for n in topo.nodes if n is not node}
    return sum(1 for _, plen, via in netlink.routes(ns) if via in others and plen)


def _wait_fdb(kernel: Kernel, topo: Topology, st: state.LabState) -> None:
    """Every agent has an FDB entry (host-gw: a route) for every other node: a cold ping
    then gets 3 of 3."""
    want = len(topo.nodes) - 1
    deadline = time.monotonic() + WAIT_AGENTS
    pending = list(topo.nodes)
    while pending:
        for node in list(pending):
            if _remote_entries(kernel, topo, node) >= want:
                pending.remove(node)
        if pending and time.monotonic() > deadline:
            what = "FDB entries" if topo.flannel.vxlan else "routes to other nodes"
            late = ", ".join(n.name for n in pending)
            raise LabFailure(
                f"{what} missing after {WAIT_AGENTS:.0f} s on: {late}",
                "see the agent's log: inv logs NODE",
            )
        if pending:
            time.sleep(0.005)


# ---------------------------------------------------------------- down, status, names


def down(target: str) -> teardown.DownReport:
    preflight.require_root()
    return teardown.down(resolve_lab(target))


def down_all() -> list[teardown.DownReport]:
    preflight.require_root()
    return [teardown.down(lab) for lab in teardown.all_labs()]


def load_state(lab: str) -> state.LabState:
    st = state.load(lab)
    if st is None:
        raise InputError(f"no lab named {lab!r} is up", teardown.hint_labs())
    return st


@dataclass(frozen=True)
class Place:
    lab: str
    name: str
    netns: str
    role: str  # node | pod | etcd | underlay | gateway | external | container
    pid: int | None = None  # a container's PID 1: exec enters its PID, mount, UTS namespaces


def places(st: state.LabState) -> list[Place]:
    return [
        Place(st.lab, name, plan.netns_name(st.lab, name), role) for name, role in st.roles.items()
    ]


def _container(st: state.LabState, name: str) -> Place | None:
    rec = next((p for p in st.processes if p.kind == "container" and p.name == name), None)
    if rec is None:
        return None
    pid = rec.pid if processes.alive(rec) else None
    if pid is None:
        raise LabFailure(f"container {name} is not running", "see: inv status")
    return Place(st.lab, name, rec.netns, "container", pid)


def find(name: str, lab: str | None = None) -> Place:
    """A node, pod, host or container (pod/container) by name; --lab picks among labs."""
    labs = [lab] if lab else state.labs()
    if not labs:
        raise InputError(
            "no lab is up", "start one: ./scripts/inv up topologies/flannel-vxlan.yaml"
        )
    hits = []
    for lab_name in labs:
        st = load_state(lab_name)
        hits += [p for p in places(st) if p.name == name]
        if "/" in name and (c := _container(st, name)):
            hits.append(c)
    if not hits:
        raise InputError(
            f"nothing named {name!r} in {', '.join(labs)}",
            "names are nodes, pods, hosts and pod/container: see inv status",
        )
    if len(hits) > 1:
        raise InputError(
            f"{name!r} exists in several labs: {', '.join(h.lab for h in hits)}",
            "pick one with --lab LAB",
        )
    return hits[0]


def exec_argv(place: Place, argv: list[str]) -> list[str]:
    """An argument vector, never a shell string: names and arguments are passed as they are."""
    if place.pid is not None:
        return ["nsenter", "-t", str(place.pid), "-n", "-p", "-m", "-u", "--", *argv]
    return ["ip", "netns", "exec", place.netns, *argv]


def flannel_macs(st: state.LabState) -> dict[str, str]:
    """node -> its flannel.1 MAC, read inside the node (its sysfs is the node's own)."""
    out = {}
    for node, facts in st.nodes.items():
        proc = subprocess.run(
            ["ip", "netns", "exec", facts["netns"], "cat", "/sys/class/net/flannel.1/address"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        out[node] = proc.stdout.strip() if proc.returncode == 0 else "?"
    return out


def short_names(lab_name: str) -> dict[str, str]:
    """netns -> the name it stands for (master, pod1, ...), for tables people read."""
    st = load_state(lab_name)
    return {plan.netns_name(lab_name, n): n for n in st.roles}


def address_of(st: state.LabState, name: str) -> str:
    """A name's lab address (pods, nodes, hosts); an address is returned as it is."""
    if name in st.addresses:
        return st.addresses[name]
    try:
        return str(IPv4Address(name))
    except ValueError:
        raise InputError(
            f"{name!r} is neither a name with an address nor an IPv4 address",
            f"names: {', '.join(st.addresses)}",
        ) from None


def log_path(place: Place) -> Path:
    if place.role == "etcd":
        return state.lab_dir(place.lab) / f"{place.name}.log"
    if place.role == "node":
        return state.node_dir(place.lab, place.name) / "flanneld.log"
    if place.role == "container":
        return workload_log(place.lab, place.name)
    if place.role == "external":
        return workload_log(place.lab, f"{place.name}/server")
    raise InputError(
        f"{place.name} is a {place.role} and has no log",
        "logs: nodes (flanneld), etcd, pod/container, external hosts",
    )


@dataclass
class Status:
    state: state.LabState
    alive: dict[str, bool]
    leases: dict[str, dict]  # key -> {value, ttl}
    namespaces_present: dict[str, bool]


def status(lab: str) -> Status:
    preflight.require_root()
    st = load_state(lab)
    alive = {p.name: processes.alive(p) for p in st.processes}
    present = {ns: netns.exists(ns) for ns in st.namespaces}
    leases: dict[str, dict] = {}
    etcd_rec = next((p for p in st.processes if p.kind == "etcd"), None)
    if etcd_rec and alive.get(etcd_rec.name):
        host = st.etcd.removeprefix("http://").split(":")[0]
        gw = etcd_server.Gateway(etcd_rec.netns, host)
        try:
            if st.etcd_api == "v2":
                leases = gw.leases_v2(f"{FLANNEL_PREFIX}/subnets")
            for key, kv in (
                {} if st.etcd_api == "v2" else gw.get_prefix(f"{FLANNEL_PREFIX}/subnets/")
            ).items():
                leases[key] = {
                    "value": kv["value"],
                    "ttl": gw.ttl(kv["lease"]) if kv["lease"] else None,
                }
        except (OSError, LabFailure):
            pass
        finally:
            gw.close()
    return Status(st, alive, leases, present)


def addresses(st: state.LabState) -> dict[str, list[str]]:
    """netns -> ["eth0 10.46.181.145/24", ...] read from the kernel (lo left out)."""
    out: dict[str, list[str]] = {}
    for ns in st.namespaces:
        if not netns.exists(ns):
            continue
        names = netlink.links(ns)
        out[ns] = [
            f"{names.get(index)} {addr}/{plen}"
            for index, addr, plen in netlink.all_addresses(ns)
            if names.get(index) != "lo"
        ]
    return out
