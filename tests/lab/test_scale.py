"""Speed and scale (#7): the benchmark end to end, and what made labnet faster stays true."""

from __future__ import annotations

import json

import pytest
import yaml

from labnet import model, plan
from labnet.bench import baseline
from labnet.bench import run as benchmark
from labnet.daemons import processes, state
from labnet.kernel import netns
from labnet.lab import lookup
from labnet.model import generate
from tests.lab.conftest import fresh_lab, sh

pytestmark = pytest.mark.lab


def test_bench_runs_side_by_side_and_writes_json_and_svg(root_required, tmp_path):
    before = set(netns.list_names())
    result = benchmark.run([(2, 4)], runs=1, out_dir=tmp_path, reference=False)
    written = json.loads((tmp_path / "bench.json").read_text())
    assert written == json.loads(json.dumps(result))
    (case,) = written["cases"]
    assert case["leases"] == 2
    assert case["pings"] == {"sent": benchmark.PINGS, "answered": benchmark.PINGS}
    assert case["labnet_up"] > 0 and case["ip_batch_up"] > 0 and case["vs_ip_batch"] > 0
    # etcd, two agents, the launcher and the 3 servers of the generated service
    assert case["processes"] == 7 and 0 < case["pss_mb"] < 500
    assert (tmp_path / "bench.svg").read_text().startswith("<svg")
    assert set(netns.list_names()) == before
    if written["mininet"]:  # where Mininet is installed, it ran beside labnet
        assert case["mininet_up_down"] > 0 and case["vs_mininet"] > 0


@pytest.mark.skipif(not baseline.mininet_available(), reason="Mininet is not installed")
def test_mininet_stays_in_its_namespaces_and_changes_no_host_limit(root_required):
    from tests.lab import rootns

    before, pty_max = rootns.snapshot(), open("/proc/sys/kernel/pty/max").read()
    assert baseline.mininet_run(3)["up_down"] > 0
    assert rootns.snapshot() == before  # its bridge and veths lived in its own namespace
    assert open("/proc/sys/kernel/pty/max").read() == pty_max  # fixLimits was disabled
    assert baseline.MININET_NETNS not in netns.list_names()


def test_ip_batch_baseline_builds_the_same_objects_and_removes_them(root_required, tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(generate.topology(2, 4, name="bench-ipb")))
    lab_plan = plan.plan(model.load(str(path)))
    b = baseline.batches(lab_plan)
    baseline.ip_batch_up(b)
    try:
        out = sh_plain("bench-ipb-pod1", "ip", "-br", "addr", "show", "eth0")
        assert "172.16.1.2/24" in out and "UP" in out
    finally:
        baseline.ip_batch_down(b)
    assert not any(n.startswith("bench-ipb-") for n in netns.list_names())


def sh_plain(ns: str, *argv: str) -> str:
    import subprocess

    return subprocess.run(
        ["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, check=True
    ).stdout


def test_planned_ifindexes_and_one_reaped_process_per_container(root_required, tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(generate.topology(2, 12, name="scale-idx")))
    with fresh_lab(path) as up:
        # numbered as the kernel numbers a node: eth0 2, flannel.1 3, cni0 4, veths after
        links = sh(up.lab, "node1", "ip", "-o", "link")
        assert "2: eth0@if" in links and "3: flannel.1:" in links and "4: cni0:" in links
        assert "5: veth" in links
        assert sh(up.lab, "pod1", "ip", "-o", "link", "show", "eth0").startswith("2: eth0@if5")
        st = state.load(up.lab)
        launcher = next(p for p in st.processes if p.kind == "launcher")
        containers = [p for p in st.processes if p.kind == "container"]
        assert len(containers) == 9  # the service endpoints: one process each, PID 1 inside
        for c in containers:
            with open(f"/proc/{c.pid}/stat") as f:
                assert int(f.read().rsplit(")", 1)[1].split()[1]) == launcher.pid  # ppid
        assert "1 labnet-serve" in sh(up.lab, "pod1/app", "ps", "-eo", "pid,comm")
    for c in containers:  # reaped by the launcher, not left as zombies
        assert processes.state_letter(c.pid) is None or not processes.is_ours(c)
    assert not processes.alive(launcher)
    assert lookup.resolve_lab(str(path)) not in state.labs()
