"""`inv status`: a lab's namespaces and addresses, its processes, and flannel's leases in etcd."""

from __future__ import annotations

from dataclasses import dataclass

from labnet.daemons import etcd as etcd_server
from labnet.daemons import processes, state
from labnet.errors import LabFailure
from labnet.kernel import netlink, netns
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
