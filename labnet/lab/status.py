"""`inv status`: a lab's namespaces and addresses, its processes, and flannel's leases in etcd."""

from __future__ import annotations

from dataclasses import dataclass

from labnet.daemons import etcd_client, processes, state
from labnet.kernel import netns, query
from labnet.lab import preflight
from labnet.lab.lookup import load_state
from labnet.model import FLANNEL_PREFIX


def is_healthy(st: state.LabState) -> bool:
    return (
        st.status == "up"
        and all(netns.exists(ns) for ns in st.namespaces)
        and all(processes.alive(p) for p in st.processes)
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
    return Status(st, alive, _leases(st, alive), present)


def _leases(st: state.LabState, alive: dict[str, bool]) -> dict[str, dict]:
    """flannel's leases (key -> value and TTL) from the first etcd member that answers."""
    for rec in (p for p in st.processes if p.kind == "etcd" and alive.get(p.name)):
        with etcd_client.Etcd(state.lab_dir(st.lab), rec.name) as etcd:
            try:
                if st.etcd_api == "v2":
                    return etcd.leases_v2(f"{FLANNEL_PREFIX}/subnets")
                return etcd.leases(f"{FLANNEL_PREFIX}/subnets/")
            except etcd_client.ERRORS:
                continue
    return {}


def addresses(st: state.LabState) -> dict[str, list[str]]:
    """netns -> ["eth0 10.46.181.145/24", ...] read from the kernel (lo left out)."""
    out: dict[str, list[str]] = {}
    for ns in st.namespaces:
        if not netns.exists(ns):
            continue
        names = query.links(ns)
        out[ns] = [
            f"{names.get(index)} {addr}/{plen}"
            for index, addr, plen in query.all_addresses(ns)
            if names.get(index) != "lo"
        ]
    return out
