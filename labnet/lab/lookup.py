"""Finding a lab and what is in it by name: nodes, pods, hosts and pod/container, as `inv exec`,
`shell`, `logs`, `curl` and `ping` need them. Reads only the state file (and a topology's name)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from labnet import plan
from labnet.daemons import bird, processes, state
from labnet.errors import InputError, LabFailure


def resolve_lab(target: str) -> str:
    """A lab name, or a topology file whose `name` is the lab."""
    if target.endswith((".yaml", ".yml")) or os.path.sep in target:
        from labnet import model

        return model.load(target).name
    return target


def load_state(lab: str) -> state.LabState:
    st = state.load(lab)
    if st is None:
        raise InputError(f"no lab named {lab!r} is up", hint_labs())
    return st


def hint_labs() -> str:
    up = state.labs()
    return f"labs up: {', '.join(up)}" if up else "no lab is up"


def log_tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text().strip().splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


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
    """An argument vector, never a shell string: names and arguments are passed as they are.
    In a node running BIRD, its own directory is at /run/bird (labnet.daemons.bird)."""
    if place.pid is not None:
        return ["nsenter", "-t", str(place.pid), "-n", "-p", "-m", "-u", "--", *argv]
    inside = bird.exec_prefix(place.lab, place.name) if place.role == "node" else []
    return ["ip", "netns", "exec", place.netns, *inside, *argv]


def run_as_typed(place: Place, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    """argv inside `place` as `inv exec` runs it: etcdctl on the PATH, speaking the lab's
    etcd API; output captured."""
    from labnet.daemons import etcd

    return subprocess.run(
        exec_argv(place, argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=etcd.tools_env(load_state(place.lab).etcd_api),
    )


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
    if place.role == "node" and bird.directory(place.lab, place.name).is_dir():
        return bird.log(place.lab, place.name)
    if place.role == "node":
        return state.node_dir(place.lab, place.name) / "flanneld.log"
    if place.role == "container":
        return state.workload_log(place.lab, place.name)
    if place.role == "external":
        return state.workload_log(place.lab, f"{place.name}/server")
    raise InputError(
        f"{place.name} is a {place.role} and has no log",
        "logs: nodes (flanneld), etcd, pod/container, external hosts",
    )
