"""The reference lab reproduces every `state:` line of the article's flow, sections a) to e)."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from labnet.daemons import state
from labnet.kernel import netns
from labnet.lab import status
from tests.conftest import REFERENCE, run_inv
from tests.lab.conftest import etcd, sh

pytestmark = pytest.mark.lab
LAB = "flannel-vxlan"
MINION_IP = "10.46.181.146"
POD3 = "172.16.57.15"


def mac_of(node: str) -> str:
    out = sh(LAB, node, "ip", "-o", "link", "show", "flannel.1")
    return re.search(r"link/ether ([0-9a-f:]{17})", out).group(1)


def test_a_pod1_routes(reference_lab):
    lines = [line.strip() for line in sh(LAB, "pod1", "ip", "route").splitlines()]
    assert lines == [
        "default via 172.16.99.1 dev eth0",
        "172.16.99.0/24 dev eth0 proto kernel scope link src 172.16.99.8",
    ]


def test_b_master_routes_and_forwarding(reference_lab):
    routes = [line.strip() for line in sh(LAB, "master", "ip", "route").splitlines()]
    assert "172.16.0.0/16 dev flannel.1 proto kernel scope link src 172.16.99.0" in routes
    assert "172.16.99.0/24 dev docker0 proto kernel scope link src 172.16.99.1" in routes
    assert sh(LAB, "master", "cat", "/proc/sys/net/ipv4/ip_forward").strip() == "1"


def test_ipv6_is_off_so_captures_hold_only_the_flow(reference_lab):
    """No link-local address anywhere, so no router solicitation or ND in a capture."""
    for place in ("pod1", "master", "minion"):
        assert sh(LAB, place, "cat", "/proc/sys/net/ipv6/conf/all/disable_ipv6").strip() == "1"
        assert sh(LAB, place, "ip", "-6", "-o", "addr").strip() == ""


def test_c_app_solicit_and_minion_device(reference_lab):
    assert sh(LAB, "master", "cat", "/proc/sys/net/ipv4/neigh/flannel.1/app_solicit").strip() == "3"
    dev = sh(LAB, "minion", "ip", "-d", "link", "show", "flannel.1")
    assert " mtu 1450 " in dev
    assert f"vxlan id 1 local {MINION_IP} dev eth0 " in dev
    assert "dstport 8472" in dev
    assert re.search(r"\bnolearning\b.*\bageing 300\b", dev)
    assert f"link/ether {mac_of('minion')} " in dev


def test_c_etcd_lease_key_and_json(reference_lab):
    key = "/coreos.com/network/subnets/172.16.57.0-24"
    with etcd(LAB) as store:  # flannel v0.6: etcd's v2 keys API, keys with a TTL
        lease = store.leases_v2("/coreos.com/network/subnets")[key]
    value = lease["value"]
    config = json.loads(
        sh(LAB, "etcd", "curl", "-s", "http://127.0.0.1:2379/v2/keys/coreos.com/network/config")
    )["node"]["value"]
    mac = mac_of("minion")
    assert json.loads(value) == {
        "PublicIP": MINION_IP,
        "BackendType": "vxlan",
        "BackendData": {"VtepMAC": mac},
    }
    assert value == json.dumps(json.loads(value), separators=(",", ":"))  # Go's compact JSON
    assert json.loads(config)["Backend"] == {"Type": "vxlan", "VNI": 1, "Port": 8472}
    assert 86000 < lease["ttl"] <= 86400  # flannel's 24 h TTL, counting down


def test_etcd_is_reached_on_its_unix_socket_and_listens_in_the_lab_only(reference_lab):
    """The orchestrator (this process, in the root namespace) reaches etcd on the unix
    socket in the lab's directory; etcd's listeners, that socket included, are the etcd
    namespace's, and the root namespace has none of them."""
    assert (state.lab_dir(LAB) / "etcd.sock:2379").is_socket()
    sock = " etcd.sock:2379 "  # as etcd bound it, from the lab's directory
    inside = sh(LAB, "etcd", "ss", "-Hlnx") + sh(LAB, "etcd", "ss", "-Hltn")
    assert sock in inside and "10.46.181.10:2379" in inside
    root = subprocess.run(["ss", "-Hlnx"], capture_output=True, text=True).stdout
    root += subprocess.run(["ss", "-Hltn"], capture_output=True, text=True).stdout
    assert sock not in root and ":2379 " not in root
    with etcd(LAB) as store:
        assert store.ready()
        assert "/coreos.com/network/subnets/172.16.57.0-24" in store.leases_v2(
            "/coreos.com/network/subnets"
        )


def test_agents_hold_their_own_threads_only(reference_lab):
    """`up` forks the agents after it wrote to etcd through gRPC: each agent has its main
    thread and its watch, resync and renewal threads, and none of gRPC's."""
    for rec in (p for p in reference_lab.state.processes if p.kind == "flannel"):
        threads = os.listdir(f"/proc/{rec.pid}/task")
        assert len(threads) == 4, (rec.name, threads)


def test_subnet_env_as_flannel_writes_it(reference_lab):
    env = (state.node_dir(LAB, "minion") / "subnet.env").read_text()
    assert env == (
        "FLANNEL_NETWORK=172.16.0.0/16\nFLANNEL_SUBNET=172.16.57.1/24\n"
        "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n"
    )


def test_d_ping_across_nodes_then_neighbour_and_fdb(reference_lab):
    ping = run_inv("exec", "pod1", "--", "ping", "-c", "3", POD3)  # as the user types it
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert "3 packets transmitted, 3 received, 0% packet loss" in ping.stdout
    minion_mac = mac_of("minion")
    neigh = sh(LAB, "master", "ip", "neigh", "show", "dev", "flannel.1")
    assert re.search(rf"^{re.escape(POD3)} lladdr {minion_mac} REACHABLE", neigh, re.M), neigh
    full = sh(LAB, "master", "ip", "neigh")
    assert f"{POD3} dev flannel.1 lladdr {minion_mac} REACHABLE" in full
    fdb = sh(LAB, "master", "bridge", "fdb", "show", "dev", "flannel.1")
    assert f"{minion_mac} dst {MINION_IP} self permanent" in fdb
    # the agent logged the miss, the etcd lookup and the entry it wrote, with timestamps
    log = (state.node_dir(LAB, "master") / "flanneld.log").read_text()
    for event in (
        "l3-miss          dst=172.16.57.15",
        "lease-lookup     dst=172.16.57.15",
        f"neigh-written    entry={POD3} dev flannel.1 lladdr {minion_mac} REACHABLE",
        f"fdb-written      entry={minion_mac} dst {MINION_IP} self permanent",
    ):
        assert re.search(r"^\d\d:\d\d:\d\d\.\d{3} " + re.escape(event), log, re.M), event


def test_e_return_path_pod3_to_pod1(reference_lab):
    out = sh(LAB, "pod3", "ping", "-c", "2", "-i", "0.2", "-W", "2", "172.16.99.8")
    assert " 0% packet loss" in out


def test_up_twice_changes_nothing(reference_lab):
    st = state.load(LAB)
    inodes = {ns: netns.inode(ns) for ns in st.namespaces}
    pids = [p.pid for p in st.processes]
    proc = run_inv("up", str(REFERENCE))
    assert proc.returncode == 0, proc.stderr
    assert "already up; nothing changed" in proc.stdout
    again = state.load(LAB)
    assert {ns: netns.inode(ns) for ns in again.namespaces} == inodes
    assert [p.pid for p in again.processes] == pids


def test_cli_exec_logs_status(reference_lab):
    proc = run_inv("exec", "pod1", "--", "ip", "-o", "addr", "show", "dev", "eth0")
    assert proc.returncode == 0 and "172.16.99.8/24" in proc.stdout
    # argument vectors reach the command untouched (no shell in between)
    proc = run_inv("exec", "master", "--", "echo", "a  b;", "$(id)")
    assert proc.stdout == "a  b; $(id)\n"
    status = run_inv("status", LAB, env={"COLUMNS": "200", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert status.returncode == 0, status.stderr
    assert "/coreos.com/network/subnets/172.16.57.0-24" in status.stdout
    assert "running" in status.stdout and "DEAD" not in status.stdout
    # addresses read from the kernel, per namespace
    assert "172.16.99.8/24" in status.stdout and "10.46.181.146/24" in status.stdout
    keys = run_inv(
        "exec",
        "etcd",
        "--",
        "etcdctl",
        "--endpoints",
        "http://10.46.181.10:2379",
        "ls",  # etcd v2, as flannel v0.6 (no ETCDCTL_API to set)
        "/coreos.com/network/subnets",
    )
    assert keys.returncode == 0, keys.stderr
    assert "/coreos.com/network/subnets/172.16.99.0-24" in keys.stdout
    logs = run_inv("logs", "master")
    assert logs.returncode == 0 and "lease-acquired" in logs.stdout


def test_status_reports_leases_and_processes(reference_lab):
    s = status.status(LAB)
    assert all(s.alive.values()) and all(s.namespaces_present.values())
    keys = set(s.leases)
    assert keys == {
        "/coreos.com/network/subnets/172.16.99.0-24",
        "/coreos.com/network/subnets/172.16.57.0-24",
    }
    assert all(80000 < lease["ttl"] <= 86400 for lease in s.leases.values())
