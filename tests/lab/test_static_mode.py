"""Today's flannel (v0.9+): /32 address, per-lease onlink route, permanent neighbour, FDB.

Subnets are not pinned here: the agents lease them like flannel, and docker0 and the pods are
planned from what they leased. Ends by deleting a lease: its entries must disappear.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from labnet.daemons import state
from tests.lab.conftest import etcd, fresh_lab, sh

pytestmark = pytest.mark.lab
LAB = "flannel-static"


STATIC = f"""
name: {LAB}
flannel: {{network: 172.16.0.0/16, backend: {{mode: static}}}}
nodes: [{{name: master}}, {{name: minion}}]
pods: [{{name: pod1, node: master}}, {{name: pod3, node: minion}}]
"""


@pytest.fixture(scope="module")
def static_lab(root_required, tmp_path_factory):
    path = tmp_path_factory.mktemp(LAB) / f"{LAB}.yaml"
    path.write_text(STATIC)
    with fresh_lab(path) as result:
        yield result


def node(st: state.LabState, name: str) -> dict:
    return st.nodes[name]


def test_leased_subnets_follow_flannel_config(static_lab):
    st = static_lab.state
    subnets = {node(st, n)["subnet"] for n in ("master", "minion")}
    assert len(subnets) == 2
    for s in subnets:
        assert re.fullmatch(r"172\.16\.\d+\.0/24", s) and s != "172.16.0.0/24"  # SubnetMin skips .0
    pod3 = node(st, "minion")["pods"]["pod3"]
    assert pod3 == node(st, "minion")["subnet"].replace(".0/24", ".2")  # docker's first address


def test_static_entries_and_ping(static_lab):
    st = static_lab.state
    minion = node(st, "minion")
    gw = minion["subnet"].split("/")[0]
    addr = sh(LAB, "master", "ip", "-o", "-4", "addr", "show", "dev", "flannel.1")
    assert f"{node(st, 'master')['subnet'].split('/')[0]}/32" in addr
    routes = sh(LAB, "master", "ip", "route")
    assert f"{minion['subnet']} via {gw} dev flannel.1 onlink" in routes
    assert "172.16.0.0/16" not in routes  # no network-wide route in the static era
    mac = re.search(
        r"link/ether (\S+)", sh(LAB, "minion", "ip", "link", "show", "flannel.1")
    ).group(1)
    assert f"{gw} dev flannel.1 lladdr {mac} PERMANENT" in sh(LAB, "master", "ip", "neigh")
    assert f"{mac} dst {minion['public_ip']} self permanent" in sh(
        LAB, "master", "bridge", "fdb", "show", "dev", "flannel.1"
    )
    assert "0" == sh(LAB, "master", "cat", "/proc/sys/net/ipv4/neigh/flannel.1/app_solicit").strip()
    out = sh(LAB, "pod1", "ping", "-c", "3", "-i", "0.2", "-W", "2", minion["pods"]["pod3"])
    assert " 0% packet loss" in out


def test_a_lease_that_disappears_takes_its_entries_with_it(static_lab):
    st = static_lab.state
    minion = node(st, "minion")
    key = "/coreos.com/network/subnets/" + minion["subnet"].replace("/", "-")
    with etcd(LAB) as store:
        mac = json.loads(store.get(key))["BackendData"]["VtepMAC"]
        assert store.delete(key)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        fdb = sh(LAB, "master", "bridge", "fdb", "show", "dev", "flannel.1")
        routes = sh(LAB, "master", "ip", "route")
        neigh = sh(LAB, "master", "ip", "neigh", "show", "dev", "flannel.1")
        if mac not in fdb and minion["subnet"] not in routes and mac not in neigh:
            break
        time.sleep(0.05)
    assert mac not in fdb and mac not in neigh
    assert minion["subnet"] not in routes
    log = (state.node_dir(LAB, "master") / "flanneld.log").read_text()
    assert "lease-gone" in log and "fdb-removed" in log
