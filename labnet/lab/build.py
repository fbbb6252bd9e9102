"""`up`: build a lab from its topology, in the order a real cluster comes up (etcd, the flannel
config, the agents' leases, then docker0 and the pods from subnet.env, then the rules; with
Calico: etcd, each node's BIRD, the pods' veths and routes, then the routes BGP brings)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path

from labnet import model, plan
from labnet.daemons import bird, etcd_client, processes, state
from labnet.errors import LabFailure
from labnet.kernel import crashpoint, netns, query
from labnet.kernel.realize import Kernel, RuleLoad, apply, create_namespace
from labnet.lab import preflight, start, teardown
from labnet.lab.lookup import log_tail
from labnet.lab.status import is_healthy
from labnet.model import FLANNEL_PREFIX, Topology

Progress = Callable[[str], None]
WAIT_AGENTS = start.WAIT_AGENTS


@dataclass
class UpResult:
    lab: str
    already_up: bool
    seconds: float
    state: state.LabState


def _quiet(_: str) -> None:
    pass


def up(topology_path: str, progress: Progress = _quiet) -> UpResult:
    crashpoint.arm()  # LABNET_CRASH_AFTER: the clean-up tests crash up at each step
    topo = model.load(topology_path)
    preflight.check(services=bool(topo.services), bird=topo.calico is not None)
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
    workloads = [d for d in lab_plan.daemons if d.kind in ("container", "server")]
    with Kernel() as kernel:
        progress("etcd on the underlay")
        rest = _underlay_first(kernel, topo, lab_plan, st)
        start.launcher(topo, st)  # its interpreter starts while etcd's does
        flannel = _Network(topo, lab_plan, st, start.etcd(topo, st), workloads, progress)
        progress(f"namespaces and underlay ({len(lab_plan.namespaces)} namespaces)")
        _create_namespaces(topo, rest, st)
        _resolv_confs(lab_plan, st)
        apply(kernel, lab_plan.base.split({ns.name for ns in rest})[0])
        try:
            _pinned_pods(kernel, topo, lab_plan, flannel, progress)
        finally:
            flannel.record()  # also when the build failed: teardown stops them
        built = _node_pods(kernel, topo, lab_plan, st, progress)
        pod_ips = {pod: ip for b in built for pod, ip in b.pods.items()}
        st.addresses = {**_host_addresses(topo), **pod_ips}
        owners = ["docker"] * bool(topo.versions.docker.rules and topo.flannel)
        owners += ["kube-proxy"] * bool(topo.services)
        progress(f"rules: {' and '.join(owners)}" if owners else "rules: none to load")
        loading = RuleLoad(
            [r for b in built for r in b.steps.rules] + plan.kube_proxy_rules(topo, pod_ips)
        )
        try:  # the iptables-restores run on the other core while the FDB is read back
            progress("waiting for " + ("BGP routes" if topo.calico else "FDB entries"))
            flannel.record_workloads()
            _wait_fdb(kernel, topo, st)
        finally:
            loading.wait()  # a failure above still leaves no iptables-restore behind
        _wait_listening(topo, workloads, st)
    st.status = "up"
    state.save(st)


def _resolv_confs(lab_plan: plan.LabPlan, st: state.LabState) -> None:
    """Each namespace's /etc/resolv.conf, recorded before it is written (down removes it)."""
    if not lab_plan.resolv:
        return
    for ns in lab_plan.resolv:
        st.files.extend(p for p in netns.etc_paths(ns, "resolv.conf") if p not in st.files)
    state.save(st)
    for ns, text in lab_plan.resolv.items():
        netns.write_etc(ns, "resolv.conf", text)


def _underlay_first(
    kernel: Kernel, topo: Topology, lab_plan: plan.LabPlan, st: state.LabState
) -> list[plan.Namespace]:
    """Every namespace recorded, then etcd's and the underlay's made and wired, so etcd can
    start; returns the namespaces still to make."""
    ul_ns = plan.netns_name(topo.name, "underlay")
    first = [ns for ns in lab_plan.namespaces if ns.role == "etcd" or ns.name == ul_ns]
    st.namespaces.extend(ns.name for ns in lab_plan.namespaces)
    st.roles = {ns.owner: ns.role for ns in lab_plan.namespaces}
    state.save(st)  # recorded before they exist: a crash mid-way is still undone
    _create_namespaces(topo, first, st)
    apply(kernel, lab_plan.base.split({ns.name for ns in first})[0])
    return [ns for ns in lab_plan.namespaces if ns not in first]


def _pinned_pods(
    kernel: Kernel, topo: Topology, lab_plan: plan.LabPlan, flannel: _Network, progress: Progress
) -> None:
    """docker0 and the pods of nodes whose subnet is pinned, in parts, starting flannel as
    soon as etcd answers: a small lab's pods are built while etcd is still starting."""
    pinned = [n for n in topo.nodes if lab_plan.nodes[n.name] is not None]
    if pinned:
        progress(
            "pods and their cali veths" if topo.calico else "docker0 and pods (pinned subnets)"
        )
    # Calico's node-side routes and sysctls name the pods' veths: a node's pods go in one part
    size = 1 << 16 if topo.calico else 16
    for part in [c for n in pinned for c in lab_plan.nodes[n.name].chunks(topo.name, size)]:
        if not flannel.started and flannel.etcd.ready():
            flannel.start(answered=True)
        apply(kernel, part)
    if not flannel.started:
        flannel.start()


class _Network:
    """Once etcd answers: flannel's config first, as in the article, then the agents (they
    lease while the pods are made), then the containers and servers. With Calico: each
    node's BIRD (the underlay is up), then the containers and servers."""

    def __init__(
        self,
        topo: Topology,
        lab_plan: plan.LabPlan,
        st: state.LabState,
        etcd_rec: state.ProcessRecord,
        workloads: list[plan.Daemon],
        progress: Progress,
    ) -> None:
        self.topo, self.lab_plan, self.st, self.progress = topo, lab_plan, st, progress
        self.etcd_rec = etcd_rec
        self.etcd = etcd_client.Etcd(state.lab_dir(topo.name))
        self.forking: list[processes.Forking] = []
        self.birds: list[state.ProcessRecord] = []
        # the workloads need only their namespace to listen; the launcher forks them meanwhile
        self.launching = start.Background(lambda: start.workloads(topo, workloads, st))

    @property
    def started(self) -> bool:
        return self.launching.ident is not None

    def start(self, answered: bool = False) -> None:
        """`answered`: etcd has just answered a probe, and is not asked again."""
        if self.topo.calico:
            self.start_birds()
            return
        self.progress("etcd ready: flannel config, agents, containers and servers")
        try:
            if not answered:
                self.etcd.wait_ready(10.0, alive=lambda: processes.alive(self.etcd_rec))
            key, value = f"{FLANNEL_PREFIX}/config", self.topo.flannel.config_json()
            if self.topo.etcd.api == "v2":
                self.etcd.put_v2(key, value)
            else:
                self.etcd.put(key, value)
        finally:
            self.etcd.close()  # no gRPC channel may be open across the agents' fork
        self.forking.append(start.agents(self.topo, self.lab_plan))
        self.launching.start()  # after the agents' fork: a fork copies only the calling thread

    def start_birds(self) -> None:
        self.progress("BIRD in each node, containers and servers")
        bird.prepare_run_dir()
        for d in (d for d in self.lab_plan.daemons if d.kind == "bird"):
            self.birds.append(bird.start(self.topo.name, d))
            crashpoint.step(f"started {d.name}")
        self.launching.start()

    def record(self) -> None:
        """The agents' records, once they are all forked."""
        self.etcd.close()
        self.st.processes.extend(self.birds)
        for forking in self.forking:
            self.st.processes.extend(forking.finish())
        state.save(self.st)

    def record_workloads(self) -> None:
        self.st.processes.extend(self.launching.finish())
        state.save(self.st)


def _host_addresses(topo: Topology) -> dict[str, str]:
    out = {
        m: str(a) for m, a in zip(topo.etcd.member_names, topo.etcd.member_addresses, strict=True)
    }
    out |= {n.name: str(n.address) for n in topo.nodes}
    if topo.external:
        out["gateway"] = str(topo.external.gateway)
        out |= {h.name: str(h.address) for h in topo.external.hosts}
    return out


def _wait_listening(topo: Topology, daemons: list[plan.Daemon], st: state.LabState) -> None:
    """Each built-in server logs `listening` once per socket it has bound."""
    recs = {p.name: p for p in st.processes}
    deadline = time.monotonic() + WAIT_AGENTS
    pending = {d.name: len(d.setting("serve").split()) for d in daemons}
    while pending:
        for name, want in list(pending.items()):
            log = state.workload_log(topo.name, name)
            text = log.read_text() if log.exists() else ""
            if text.count(" listening ") >= want:
                del pending[name]
            elif not processes.alive(recs[name]):
                raise LabFailure(f"{name} exited: {log_tail(log)}")
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
    other = start.Background(lambda: _create_each(topo, namespaces[1::2], st) or [])
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


def read_subnet_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        if key:
            out[key] = value
    return out


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
                    f"flannel agent of {node.name} exited: {log_tail(ndir / 'flanneld.log')}"
                )
        if time.monotonic() > deadline:
            late = [n.name for n in topo.nodes if n.name not in envs]
            raise LabFailure(
                f"no lease after {WAIT_AGENTS:.0f} s for: {', '.join(late)}",
                "see the agent's log: inv logs NODE",
            )
        time.sleep(0.005)
    return envs


def _node_pods(
    kernel: Kernel, topo: Topology, lab_plan: plan.LabPlan, st: state.LabState, progress: Progress
) -> list[plan.NodePods]:
    """flannel: docker0 and the pods of each node, as subnet.env says; Calico: the blocks are
    pinned, and the pods were built with the nodes."""
    if topo.calico:
        mtu = topo.flannel_mtu
        return [_record_node(topo, n, lab_plan.nodes[n.name], mtu, st) for n in topo.nodes]
    progress("waiting for leases (subnet.env)")
    envs = _wait_subnet_env(topo, st)
    return [_docker_and_pods(kernel, topo, lab_plan, n, envs[n.name], st) for n in topo.nodes]


def _record_node(
    topo: Topology, node: model.Node, node_pods: plan.NodePods, mtu: int, st: state.LabState
) -> plan.NodePods:
    st.nodes[node.name] = {  # what status, exec and the tests read
        "netns": plan.netns_name(topo.name, node.name),
        "subnet": node_pods.subnet,
        "public_ip": str(node.address),
        "pods": node_pods.pods,
        "mtu": mtu,
    }
    return node_pods


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
    return _record_node(topo, node, node_pods, int(env["FLANNEL_MTU"]), st)


def _remote_entries(kernel: Kernel, topo: Topology, node: model.Node) -> int:
    """vxlan: FDB entries on flannel.1 (a remote VTEP each); host-gw and Calico: routes via
    another node's address; udp: entries of the agent's own table, which only its log shows."""
    ns = plan.netns_name(topo.name, node.name)
    backend = topo.flannel.backend if topo.flannel else "bgp"
    if backend == "udp":
        log = state.node_dir(topo.name, node.name) / "flanneld.log"
        return log.read_text().count(" udp-route-added ") if log.exists() else 0
    if backend == "vxlan":
        entries = query.fdb_entries(ns, kernel.index(ns, topo.flannel.device))
        return sum(1 for _, dst in entries if dst)
    others = {str(n.address) for n in topo.nodes if n is not node}
    return sum(1 for _, plen, via in query.routes(ns) if via in others and plen)


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
            backend = topo.flannel.backend if topo.flannel else "bgp"
            what = {"vxlan": "FDB entries", "udp": "udp proxy entries"}.get(
                backend, "routes to other nodes (from BGP)"
            )
            late = ", ".join(n.name for n in pending)
            raise LabFailure(
                f"{what} missing after {WAIT_AGENTS:.0f} s on: {late}",
                "see the agent's log: inv logs NODE",
            )
        if pending:
            time.sleep(0.005)
