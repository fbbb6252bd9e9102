"""Clean-up you can trust: damaged state, decoys, two labs at once (crashes: test_crash)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labnet.daemons import processes, state
from labnet.kernel import netns
from labnet.lab import build, teardown
from tests.conftest import ROOT, run_inv
from tests.lab.conftest import fresh_lab, sh, variant

pytestmark = pytest.mark.lab
MINIMAL = ROOT / "topologies" / "flannel-vxlan-minimal.yaml"
LAB = "flannel-minimal"


def lab_processes(names: list[str]) -> list[int]:
    """Live processes inside the given namespaces."""
    return [
        pid
        for ns in names
        for pid in netns.pids_inside(ns)
        if processes.state_letter(pid) not in (None, "Z")
    ]


def nothing_left(lab_name: str, before: set[str]) -> None:
    left = set(netns.list_names()) - before
    assert not left, left
    assert not state.lab_dir(lab_name).exists()


@pytest.mark.parametrize("damage", ["missing", "garbage", "truncated"])
def test_down_all_finds_labs_whose_state_is_damaged(root_required, damage):
    before = set(netns.list_names())
    result = build.up(str(MINIMAL))
    names = list(result.state.namespaces)
    path = state.state_file(LAB)
    if damage == "missing":
        path.unlink()
    elif damage == "garbage":
        path.write_text("{not json")
    else:
        path.write_text(path.read_text()[:40])
    proc = run_inv("down", "--all")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not lab_processes(names)
    nothing_left(LAB, before)


def test_decoys_are_never_touched(root_required, tmp_path):
    """Namespaces and processes with labnet-like names, not made by labnet."""
    decoy_ns = [f"{LAB}-pod1", "flannel-vxlan-decoy"]
    before = set(netns.list_names())
    for ns in decoy_ns:
        subprocess.run(["ip", "netns", "add", ns], check=True)
    # a process named like a labnet daemon, in a decoy namespace, with an iptables chain
    sleeper = subprocess.Popen(["ip", "netns", "exec", decoy_ns[1], "sleep", "300"])
    subprocess.run(
        ["ip", "netns", "exec", decoy_ns[1], "iptables", "-t", "nat", "-N", "KUBE-SERVICES"],
        check=True,
    )
    try:
        proc = run_inv("up", str(MINIMAL))  # pod1's namespace name is taken: refused
        assert proc.returncode == 1 and "already exists and is not this lab's" in proc.stderr
        assert not state.lab_dir(LAB).exists()
        # the names reserved before pod1's were removed again; the decoys stay
        assert set(netns.list_names()) == before | set(decoy_ns)
        assert run_inv("down", "--all").returncode == 0
        assert set(netns.list_names()) == before | set(decoy_ns)
        assert sleeper.poll() is None
        chains = subprocess.run(
            ["ip", "netns", "exec", decoy_ns[1], "iptables", "-t", "nat", "-S"],
            capture_output=True,
            text=True,
        ).stdout
        assert "-N KUBE-SERVICES" in chains
    finally:
        sleeper.kill()
        sleeper.wait()
        for ns in decoy_ns:
            subprocess.run(["ip", "netns", "del", ns])


def test_two_labs_with_the_same_addresses_at_once(root_required, tmp_path_factory):
    a = variant(tmp_path_factory, "twin-a", {})
    b = variant(tmp_path_factory, "twin-b", {})
    with fresh_lab(a), fresh_lab(b):
        for name in ("twin-a", "twin-b"):
            assert " 0% packet loss" in sh(name, "pod1", "ping", "-c", "1", "172.16.57.15")
        # each lab's pod3 answers in its own lab only
        assert sh("twin-a", "pod1", "curl", "-s", "http://172.16.57.15:8080/").startswith("pod3 ")


def test_two_ups_of_one_lab_at_once(root_required):
    before = set(netns.list_names())
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "labnet", "up", str(MINIMAL)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    try:
        codes = sorted(p.returncode for p in procs)
        text = " ".join(o + e for o, e in outs)
        # one builds it; the other is told the lab is busy (or, if it came late, that it is up)
        assert codes[0] == 0
        assert "is busy" in text or "already up" in text
        assert len([n for n in netns.list_names() if n.startswith(f"{LAB}-")]) == 6
    finally:
        run_inv("down", LAB)
    nothing_left(LAB, before)


def test_state_and_logs_are_not_world_writable(root_required):
    with fresh_lab(MINIMAL):
        for path in state.lab_dir(LAB).rglob("*"):
            if path.is_file():
                assert not path.stat().st_mode & 0o002, path
        assert json.loads(state.state_file(LAB).read_text())["lab"] == LAB


def test_unrecorded_daemons_are_found_by_their_namespace(root_required):
    """A daemon started just before a crash, missing from the state file, is still stopped."""
    before = set(netns.list_names())
    result = build.up(str(MINIMAL))
    st = state.load(LAB)
    agent = next(p for p in st.processes if p.name == "flanneld-master")
    st.processes = [p for p in st.processes if p is not agent]
    state.save(st)
    report = teardown.down(LAB)
    assert any("unrecorded" in p for p in report.processes)
    assert not processes.alive(agent)
    assert not lab_processes(list(result.state.namespaces))
    nothing_left(LAB, before)
    assert os.getuid() == 0


def test_etcd_listens_on_lab_addresses_only(root_required):
    with fresh_lab(MINIMAL):
        rows = [line.split() for line in sh(LAB, "etcd", "ss", "-Hltn").splitlines()]
        local = {row[3] for row in rows}  # the local address:port of each listening socket
        assert {a for a in local if a.endswith(":2379") or a.endswith(":2380")} == {
            "10.46.181.10:2379",
            "127.0.0.1:2379",  # the namespace's own lo: the article's etcdctl --endpoints
            "127.0.0.1:2380",
        }
        assert not [a for a in local if a.startswith(("0.0.0.0", "*", "[::]"))]


def test_decoys_beside_a_real_lab_are_never_touched(root_required, tmp_path_factory, tmp_path):
    """With a lab up: namespaces named like its objects but not made by it, one named like
    a pod of a lab whose state file is lost, a process named like a labnet daemon, a
    KUBE-SERVICES chain and a docker0 bridge in a decoy, and a learner's process inside the
    lab. `down LAB`, then `down --all`, touch none of them; the learner's is reported."""
    lab = "dcy"
    decoys = [f"{lab}-pod9", "dcylost-pod1"]
    fake = tmp_path / "flanneld"  # a program whose name is a labnet daemon's
    fake.write_bytes(Path("/bin/sleep").read_bytes())
    fake.chmod(0o755)
    before = set(netns.list_names())
    started: list[subprocess.Popen] = []
    build.up(str(variant(tmp_path_factory, lab, {})))
    try:
        for ns in decoys:
            subprocess.run(["ip", "netns", "add", ns], check=True)
        for argv in (
            ["iptables", "-t", "nat", "-N", "KUBE-SERVICES"],
            ["ip", "link", "add", "docker0", "type", "bridge"],
        ):
            subprocess.run(["ip", "netns", "exec", decoys[0], *argv], check=True)
        started.append(subprocess.Popen(["ip", "netns", "exec", decoys[0], str(fake), "300"]))
        learner = subprocess.Popen(["ip", "netns", "exec", f"{lab}-pod1", "sleep", "300"])
        started.append(learner)
        state.lab_dir("dcylost").mkdir(parents=True)  # a lab whose state file is lost
        time.sleep(0.2)  # both processes are in their namespaces
        report = teardown.down(lab)
        assert [line for line in report.left if line.startswith(f"{learner.pid} ")]
        reports = teardown.down_all()
        assert [r.namespaces for r in reports if r.lab == "dcylost"] == [[]]
        left = set(netns.list_names())
        assert set(decoys) <= left and not {n for n in left - before if n.startswith("dcy")} - set(
            decoys
        )
        assert all(p.poll() is None for p in started)
        decoy = subprocess.run(
            ["ip", "netns", "exec", decoys[0], "sh", "-c", "iptables -t nat -S; ip -br link"],
            capture_output=True,
            text=True,
        ).stdout
        assert "-N KUBE-SERVICES" in decoy and "docker0" in decoy
    finally:
        for p in started:
            p.kill()
            p.wait()
        for ns in decoys:
            subprocess.run(["ip", "netns", "del", ns])
        for name in (lab, "dcylost"):
            if state.lab_dir(name).exists():
                teardown.down(name)


def test_etc_netns_goes_with_the_last_lab_whichever_made_it(root_required):
    """Lab a makes /etc/netns, lab b writes beside it; a goes first, then b: nothing stays."""
    before = os.path.isdir(netns.ETC_NETNS)
    recorded = {}
    for lab in ("trust-etc-a", "trust-etc-b"):
        recorded[lab] = netns.etc_paths(f"{lab}-pod1", "resolv.conf")
        netns.write_etc(f"{lab}-pod1", "resolv.conf", "nameserver 192.168.3.10\n")
    netns.remove_etc(recorded["trust-etc-a"])
    assert os.path.isdir(netns.ETC_NETNS)  # b's file is still there
    netns.remove_etc(recorded["trust-etc-b"])
    assert os.path.isdir(netns.ETC_NETNS) == before
    assert not os.path.exists(f"{netns.ETC_NETNS}/trust-etc-b-pod1")
