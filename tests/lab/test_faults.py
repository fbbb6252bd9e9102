"""Faults: a killed agent, a killed etcd, leases that expire."""

from __future__ import annotations

import time

import pytest

from labnet.daemons import processes, state
from labnet.lab import start
from tests.conftest import ROOT, run_inv
from tests.lab.conftest import delete_key, etcd, fresh_lab, lease_keys, sh

pytestmark = pytest.mark.lab
MINIMAL = (ROOT / "topologies" / "flannel-vxlan-minimal.yaml").read_text()


def topology(tmp_path_factory, name: str, *changes: tuple[str, str]):
    text = MINIMAL.replace("name: flannel-minimal", f"name: {name}")
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path_factory.mktemp(name) / f"{name}.yaml"
    path.write_text(text)
    return path


def proc(lab_name: str, name: str) -> state.ProcessRecord:
    return next(p for p in state.load(lab_name).processes if p.name == name)


def wait_for(predicate, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_killed_agent_leaves_flows_working_and_keeps_its_subnet(root_required, tmp_path_factory):
    name = "fault-agent"
    path = topology(
        tmp_path_factory,
        name,  # subnets leased, not pinned: reuse is visible
        (", subnet: 172.16.99.0/24}", "}"),
        (", subnet: 172.16.57.0/24}", "}"),
        (", address: 172.16.99.8}", "}"),
        (", address: 172.16.57.15,", ","),
    )
    with fresh_lab(path) as result:
        pod3 = result.state.nodes["minion"]["pods"]["pod3"]
        subnet = result.state.nodes["master"]["subnet"]
        assert " 0% packet loss" in sh(name, "pod1", "ping", "-c", "1", pod3)
        processes.stop([proc(name, "flanneld-master")])
        assert " 0% packet loss" in sh(name, "pod1", "ping", "-c", "2", "-i", "0.2", pod3)
        out = run_inv("restart", "flanneld-master", "--lab", name)
        assert out.returncode == 0, out.stderr
        log = state.node_dir(name, "master") / "flanneld.log"
        assert wait_for(lambda: "how=reused" in log.read_text())
        assert f"subnet={subnet}" in log.read_text().split("how=reused")[0].splitlines()[-1]
        env = (state.node_dir(name, "master") / "subnet.env").read_text()
        assert f"FLANNEL_SUBNET={subnet.replace('.0/24', '.1/24')}" in env
        assert " 0% packet loss" in sh(name, "pod1", "ping", "-c", "1", pod3)
        assert log.read_text().count("device-created") == 1  # its flannel.1 was kept


def test_restarted_agent_replaces_a_device_of_another_vni(root_required, tmp_path_factory):
    name = "fault-vni"
    with fresh_lab(topology(tmp_path_factory, name)) as result:
        pod3 = result.state.nodes["minion"]["pods"]["pod3"]
        processes.stop([proc(name, "flanneld-master")])
        sh(name, "master", "ip", "link", "del", "flannel.1")
        sh(name, "master", "ip", "link", "add", "flannel.1", "type", "vxlan", "id", "9")
        assert start.restart(name, "flanneld-master")
        log = state.node_dir(name, "master") / "flanneld.log"
        assert wait_for(lambda: "device-removed" in log.read_text())
        assert wait_for(lambda: "fdb-written" in log.read_text().split("device-removed")[1])
        assert "vxlan id 1 " in sh(name, "master", "ip", "-d", "link", "show", "flannel.1")
        assert " 0% packet loss" in sh(name, "pod1", "ping", "-c", "1", pod3)


def test_killed_etcd_keeps_entries_and_agents_recover(root_required, tmp_path_factory):
    name = "fault-etcd"
    with fresh_lab(topology(tmp_path_factory, name)):
        assert " 0% packet loss" in sh(name, "pod1", "ping", "-c", "1", "172.16.57.15")
        processes.stop([proc(name, "etcd")])
        # the programmed neighbour, FDB and routes carry the traffic without etcd
        assert " 0% packet loss" in sh(name, "pod1", "ping", "-c", "2", "-i", "0.2", "172.16.57.15")
        assert "self permanent" in sh(name, "master", "bridge", "fdb", "show", "dev", "flannel.1")
        time.sleep(1.0)  # agents notice and retry
        start.restart(name, "etcd")
        # back: a change in etcd reaches the agents again
        with etcd(name) as store:
            store.wait_ready(10.0)
        processes.stop([proc(name, "flanneld-minion")])  # v0.6 would take its lease again
        assert delete_key(name, "/coreos.com/network/subnets/172.16.57.0-24")
        assert wait_for(
            lambda: (
                "dst 10.46.181.146"
                not in sh(name, "master", "bridge", "fdb", "show", "dev", "flannel.1")
            )
        )
        log = (state.node_dir(name, "master") / "flanneld.log").read_text()
        assert "lease-gone" in log


def test_a_short_lease_expires_and_remote_entries_go(root_required, tmp_path_factory):
    name = "fault-ttl"
    path = topology(tmp_path_factory, name, ("flannel:\n", "flannel:\n  lease_ttl: 3\n"))
    with fresh_lab(path):
        assert " 0% packet loss" in sh(name, "pod1", "ping", "-c", "1", "172.16.57.15")
        processes.stop([proc(name, "flanneld-minion")])  # nobody renews minion's lease now
        assert wait_for(
            lambda: (
                "dst 10.46.181.146"
                not in sh(name, "master", "bridge", "fdb", "show", "dev", "flannel.1")
            ),
            20,
        )
        assert "172.16.57.15" not in sh(name, "master", "ip", "neigh", "show", "dev", "flannel.1")
        log = (state.node_dir(name, "master") / "flanneld.log").read_text()
        assert "lease-gone       subnet=172.16.57.0/24" in log


def test_three_member_etcd_survives_losing_one(root_required, tmp_path_factory):
    name = "fault-cluster"
    path = topology(
        tmp_path_factory,
        name,
        ("etcd: {address: 10.46.181.10}", "etcd: {address: 10.46.181.10, members: 3}"),
    )
    with fresh_lab(path):
        with etcd(name, "etcd-2") as store:
            assert len(list(store.client.members)) == 3
        processes.stop([proc(name, "etcd")])  # the member every agent talks to first
        assert start.restart(name, "flanneld-master")  # it must write its lease elsewhere
        log = state.node_dir(name, "master") / "flanneld.log"
        assert wait_for(lambda: log.read_text().count("lease-acquired") == 2)
        keys = lease_keys(name, "etcd-2")
        assert "/coreos.com/network/subnets/172.16.99.0-24" in keys
        assert " 0% packet loss" in sh(name, "pod1", "ping", "-c", "1", "172.16.57.15")
