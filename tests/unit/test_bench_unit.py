"""The benchmark's pure parts: the ip -batch baseline's commands, the fit, sizes, the plot."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from labnet import model, plan
from labnet.bench import baseline, table
from labnet.bench import plot as benchplot
from labnet.bench import run as benchmark
from labnet.daemons import state
from labnet.errors import InputError
from tests.conftest import REFERENCE


def test_ip_batch_makes_the_plans_objects_in_their_namespaces():
    lab_plan = plan.plan(model.load(str(REFERENCE)))
    b = baseline.batches(lab_plan)
    assert b.namespaces == [ns.name for ns in lab_plan.namespaces]
    master = "flannel-vxlan-master"
    # docker0 first, then the pods' ports in it, each peer created in its pod
    assert b.links[master][0] == "link add docker0 mtu 1450 up type bridge"
    assert any(
        c.endswith("peer name eth0 mtu 1450 netns flannel-vxlan-pod1") and "master docker0" in c
        for c in b.links[master]
    )
    assert b.config["flannel-vxlan-pod1"] == [
        "link set lo up",
        "link set eth0 up",
        "addr add 172.16.99.8/24 dev eth0",
        "route add default via 172.16.99.1 dev eth0",
    ]
    veths = sum(len(node.steps.veths) for node in lab_plan.nodes.values()) + len(
        lab_plan.base.veths
    )
    bridges = 4  # the underlay's and the gateway's br0, the two docker0s
    assert sum(len(c) for c in b.links.values()) == veths + bridges


def test_fit_is_exact_on_a_line_and_reports_r2():
    f = benchmark.fit([10, 20, 40], [1.5, 2.5, 4.5])
    assert f["slope"] == pytest.approx(0.1)
    assert f["intercept"] == pytest.approx(0.5)
    assert f["r2"] == pytest.approx(1.0)
    assert benchmark.fit([1], [1]) == {}


def test_sizes_are_nodes_by_pods_per_node():
    assert benchmark.parse_sizes("2x10,50X10") == [(2, 20), (50, 500)]
    with pytest.raises(InputError):
        benchmark.parse_sizes("ten")


def test_ping_pairs_cross_nodes_and_spread_over_them():
    st = state.LabState("l", "t")
    st.nodes = {
        f"n{i}": {"pods": {f"p{i}{j}": f"10.{i}.0.{j}" for j in range(3)}} for i in range(4)
    }
    pairs = benchmark.cross_node_pairs(st, 20)
    assert len(pairs) == 20
    node_of = {p: n for n, f in st.nodes.items() for p in f["pods"]}
    node_of_ip = {ip: n for n, f in st.nodes.items() for ip in f["pods"].values()}
    assert all(node_of[src] != node_of_ip[dst] for src, dst in pairs)
    assert {node_of[src] for src, _ in pairs} == set(st.nodes)
    assert benchmark.cross_node_pairs(state.LabState("l", "t"), 5) == []


def test_plot_is_an_svg_with_both_charts():
    case = {
        "generated": True,
        "nodes": 2,
        "pods": 20,
        "labnet_up": 1.0,
        "labnet_down": 0.2,
        "ip_batch_up": 0.9,
        "mininet_up_down": None,
        "pss_mb": 80.0,
    }
    result = {"cases": [case, case | {"nodes": 5, "pods": 50, "labnet_up": 2.0, "pss_mb": 150.0}]}
    root = ET.fromstring(benchplot.svg(result))
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "time" in texts and "memory" in texts and "ip -batch up" in texts
    assert len(list(root.iter("{http://www.w3.org/2000/svg}polyline"))) == 4  # no Mininet line


def test_mininet_runs_contained_without_host_wide_changes():
    """mn runs in its own PID namespace (all it starts dies with it), with its sysctl limits
    and its pattern-killing, /tmp-deleting clean-up disabled."""
    argv = baseline._mininet_argv(100, "/usr/bin/mn", "/usr/bin/python3")
    assert argv[:4] == ["ip", "netns", "exec", baseline.MININET_NETNS]
    assert argv[4:7] == ["unshare", "--pid", "--fork"]
    runner = argv[argv.index("-c") + 1]
    assert "fixLimits = lambda: None" in runner and "cleanup = " in runner
    assert argv[argv.index("-c") - 1] == "/usr/bin/python3"  # mn's own interpreter
    assert argv[-2:] == ["--topo", "single,100"]


def test_table_shows_labnets_up_with_its_fastest_and_slowest_run():
    case = {
        "label": "reference",
        "nodes": 2,
        "pods": 8,
        "labnet": [{"up": 1.19, "down": 0.1}, {"up": 0.76, "down": 0.1}, {"up": 1.04, "down": 0.2}],
        "labnet_up": 1.04,
        "labnet_down": 0.1,
        "ip_batch_up_down": 0.64,
        "vs_ip_batch": 1.8,
        "mininet_up_down": None,
        "vs_mininet": None,
        "leases": 2,
        "pss_mb": 82.0,
        "pings": {"sent": 100, "answered": 100},
    }
    machine = {"cpus": 2, "kernel": "6.x", "python": "3.11"}
    one_run = case | {"label": "once", "labnet": [{"up": 1.04, "down": 0.1}]}
    rendered = table.bench_table({"runs": 3, "machine": machine, "cases": [case, one_run]})
    up = [str(cell) for cell in rendered.columns[3].cells]
    assert up == ["1.04 (0.76-1.19)", "1.04"]


def test_settle_waits_while_every_core_is_busy_and_not_longer_than_asked():
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(os.cpu_count() or 1)
    ]
    try:
        waited = benchmark.settle(max_wait=1.0)
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    assert 1.0 <= waited < 2.0
    assert 2.0 <= benchmark.settle(max_wait=10.0) < 6.0  # idle again: 2 s quiet, then it returns
