"""`down` leaves nothing of the lab, and the root namespace is exactly as before `up`."""

from __future__ import annotations

import os

import pytest

from labnet import model, plan
from labnet.daemons import processes, state
from labnet.kernel import netns
from labnet.lab import teardown
from tests.conftest import run_inv
from tests.lab import rootns
from tests.lab.conftest import delete_key, fresh_lab, sh, stop_agent, variant

pytestmark = pytest.mark.lab
LAB = "flannel-clean"


def test_down_leaves_nothing_and_root_namespace_unchanged(root_required, tmp_path_factory):
    path = variant(tmp_path_factory, LAB, {})
    if state.lab_dir(LAB).exists():
        teardown.down(LAB)
    before = rootns.snapshot()
    namespaces_before = set(netns.list_names())
    proc = run_inv("up", str(path))
    try:
        assert proc.returncode == 0, proc.stderr
        st = state.load(LAB)
        assert " 0% packet loss" in sh(LAB, "pod1", "ping", "-c", "2", "-i", "0.2", "172.16.57.15")
        recorded = list(st.processes)
        daemons = plan.plan(model.load(path)).daemons  # etcd, agents, containers, servers
        assert len(recorded) == len(daemons) + 1  # and the launcher of containers and servers
        assert all(processes.alive(p) for p in recorded)
        # nothing the lab runs listens in the root namespace
        assert rootns.snapshot()["listening"] == before["listening"]
    finally:
        down = run_inv("down", LAB)
    assert down.returncode == 0, down.stderr
    assert "lab flannel-clean is down" in down.stdout

    assert set(netns.list_names()) == namespaces_before
    assert not any(processes.alive(p) for p in recorded)
    assert not state.lab_dir(LAB).exists()
    with open("/proc/self/mountinfo") as f:
        assert f"/run/netns/{LAB}-" not in f.read()
    for ns in st.namespaces:
        assert not os.path.exists(netns.path(ns))
    assert rootns.diff(before, rootns.snapshot()) == []


def test_down_of_unknown_lab_is_a_clear_error(root_required):
    proc = run_inv("down", "no-such-lab")
    assert proc.returncode == 2
    assert proc.stderr.startswith("labnet: error: no lab named 'no-such-lab' is up")
    assert "Traceback" not in proc.stderr + proc.stdout


def test_miss_mode_lease_removal_clears_neighbour_and_fdb(root_required, tmp_path_factory):
    """A lease that disappears from etcd takes the remote node's entries with it."""
    import time

    path = variant(tmp_path_factory, "flannel-expire", {})
    with fresh_lab(path) as result:
        name = result.lab
        assert " 0% packet loss" in sh(name, "pod1", "ping", "-c", "1", "172.16.57.15")
        assert "172.16.57.15" in sh(name, "master", "ip", "neigh", "show", "dev", "flannel.1")
        stop_agent(name, "flanneld-minion")  # a running v0.6 agent would take its lease again
        assert delete_key(name, "/coreos.com/network/subnets/172.16.57.0-24")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            neigh = sh(name, "master", "ip", "neigh", "show", "dev", "flannel.1")
            fdb = sh(name, "master", "bridge", "fdb", "show", "dev", "flannel.1")
            if "172.16.57.15" not in neigh and "10.46.181.146" not in fdb:
                break
            time.sleep(0.05)
        assert "172.16.57.15" not in neigh
        assert "dst 10.46.181.146" not in fdb
