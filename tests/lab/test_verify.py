"""`inv verify` proves each hop, and is honest: a broken lab fails at the hop that broke."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import pytest

from labnet import model
from labnet.daemons import processes, state
from labnet.lab import lookup
from labnet.probe import capture
from labnet.probe import verify as verifier
from tests.conftest import REFERENCE, run_inv
from tests.lab.conftest import fresh_lab, sh, variant
from tests.lab.test_artifacts import kept

pytestmark = pytest.mark.lab
LAB = "flannel-vxlan"


def check(name_start: str) -> model.Check:
    return next(c for c in model.load(REFERENCE).checks if c.name.startswith(name_start))


def test_reference_checks_pass_and_pcaps_hold_the_packets(reference_lab, tmp_path):
    out = kept(tmp_path, "verify-reference")
    proc = run_inv(
        "verify", LAB, "--out", str(out), "--junit", "verify.xml",
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert "7/7 checks passed" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == f"run directory: {out}"
    suite = ET.parse(out / "verify.xml").getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("7", "0")
    report = verifier.run(LAB, [check("pod1 to pod3")], run_dir=tmp_path / "pod1-pod3")
    assert report.passed
    (result,) = report.results
    hops = result.attempts[0].hops
    assert [f"{h.hop.netns.removeprefix(LAB + '-')}/{h.hop.ifname}" for h in hops[:9]] == [
        "pod1/eth0",
        "master/docker0",
        "master/flannel.1",
        "master/eth0",
        "underlay/ul-minion",
        "minion/eth0",
        "minion/flannel.1",
        "minion/docker0",
        "pod3/eth0",
    ]
    assert all(h.verdict == "seen" for h in hops)
    assert len(hops) == 18  # and the same way back
    # the pcap files the report names exist, and hold the encapsulated echo request
    assert report.pcaps and all(p.parent == tmp_path / "pod1-pod3" for p in report.pcaps)
    eth0 = next(p for p in report.pcaps if p.name == f"{LAB}-master_eth0.pcap")
    packets = capture.read(eth0)
    vx = [s for s in packets if s.outer and s.proto == "icmp" and s.icmp_type == 8]
    assert vx and vx[0].outer == ("10.46.181.145", "10.46.181.146", 8472, 1)
    assert (vx[0].src, vx[0].dst) == ("172.16.99.0", "172.16.57.15")


def test_trace_an_adhoc_flow(reference_lab, tmp_path):
    out = kept(tmp_path, "trace-pod3-internet")
    proc = run_inv(
        "trace", "pod3", "internet", "--lab", LAB, "--proto", "http", "--port", "80",
        "--out", str(out),
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "1/1 checks passed" in proc.stdout
    assert "after MASQUERADE" in proc.stdout
    assert any(out.glob("*.pcap"))


# ---------------------------------------------------------------- five ways to break it


BROKEN = "flannel-broken"


@pytest.fixture
def lab_to_break(root_required, tmp_path_factory):
    with fresh_lab(variant(tmp_path_factory, BROKEN, {})) as result:
        yield result


def first_failure(name_start: str) -> tuple[str, str, str, str]:
    report = verifier.run(BROKEN, [check(name_start)])
    (r,) = report.results
    assert not r.passed and r.first_failure is not None, r.problems
    hop = r.first_failure.hop
    return hop.netns.removeprefix(BROKEN + "-"), hop.ifname, hop.direction, r.explanation


def test_broken_docker0_route(lab_to_break, tmp_path):
    sh(BROKEN, "minion", "ip", "route", "del", "172.16.57.0/24", "dev", "docker0")
    node, ifname, direction, why = first_failure("pod1 to pod3")
    assert (node, ifname, direction) == ("minion", "docker0", "out")
    assert "route is missing" in why
    out = kept(tmp_path, "verify-broken-docker0")
    proc = run_inv("verify", BROKEN, "--out", str(out), "--html", "report.html")
    assert proc.returncode == 1
    assert "first failing hop: minion docker0 (out)" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == f"run directory: {out}"
    assert "FAIL pod1 to pod3" in (out / "report.html").read_text()


def test_agent_stopped_and_fdb_entry_deleted(lab_to_break):
    st = state.load(BROKEN)
    agent = next(p for p in st.processes if p.name == "flanneld-master")
    sh(BROKEN, "pod1", "ping", "-c", "1", "172.16.57.15")  # the neighbour is known by now
    processes.stop([agent])
    mac = sh(BROKEN, "minion", "cat", "/sys/class/net/flannel.1/address").strip()
    sh(BROKEN, "master", "bridge", "fdb", "del", mac, "dev", "flannel.1", "dst", "10.46.181.146")
    node, ifname, direction, why = first_failure("pod1 to pod3")
    assert (node, ifname, direction) == ("master", "eth0", "out")
    assert f"no FDB entry for {mac}" in why


def test_vni_changed_on_one_side(lab_to_break):
    sh(
        BROKEN,
        "minion",
        "sh",
        "-c",
        "mac=$(cat /sys/class/net/flannel.1/address); ip link del flannel.1 && "
        "ip link add flannel.1 address $mac mtu 1450 type vxlan id 2 local 10.46.181.146 dev eth0 "
        "dstport 8472 nolearning && ip addr add 172.16.57.0/16 dev flannel.1 && "
        "ip link set flannel.1 up",
    )
    node, ifname, direction, why = first_failure("pod1 to pod3")
    assert (node, ifname, direction) == ("minion", "flannel.1", "in")
    assert "VNI 2" in why and "VNI 1" in why


def test_kube_services_flushed(lab_to_break):
    sh(BROKEN, "master", "iptables", "-t", "nat", "-F", "KUBE-SERVICES")
    node, ifname, direction, why = first_failure("pod1 to the rbd-rest-api")
    assert (node, ifname, direction) == ("master", "docker0", "in")
    assert "KUBE-SERVICES" in why and "192.168.3.22:8080" in why


def test_masquerade_rule_dropped(lab_to_break):
    sh(
        BROKEN,
        "master",
        "iptables",
        "-t",
        "nat",
        "-D",
        "POSTROUTING",
        "-s",
        "172.16.99.0/24",
        "!",
        "-o",
        "docker0",
        "-j",
        "MASQUERADE",
    )
    node, ifname, direction, why = first_failure("pod1 to the internet")
    assert (node, ifname, direction) == ("master", "eth0", "out")
    assert "MASQUERADE" in why
    assert lookup.find("pod1", BROKEN)  # the lab itself is still there to inspect
