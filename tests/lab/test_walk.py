"""`inv walk`: the article's flow on the live lab, from a data file a teacher can write."""

from __future__ import annotations

import os

import pytest

from tests.conftest import REFERENCE, run_inv

pytestmark = pytest.mark.lab

# every `state:` line of the reference flow (a to e, the outside world, the service network)
FLOW_LINES = [
    "default via 172.16.99.1 dev eth0",
    "172.16.99.0/24 dev eth0 proto kernel scope link src 172.16.99.8",
    "172.16.0.0/16 dev flannel.1 proto kernel scope link src 172.16.99.0",
    "172.16.99.0/24 dev docker0 proto kernel scope link src 172.16.99.1",
    "/coreos.com/network/subnets/172.16.57.0-24",
    '{"PublicIP":"10.46.181.146","BackendType":"vxlan","BackendData":{"VtepMAC":"',
    "172.16.57.15 lladdr ",
    " REACHABLE",
    "mtu 1450",
    "vxlan id 1 local 10.46.181.146 dev eth0",
    "nolearning",
    " dst 10.46.181.146 self permanent",
    "172.16.57.0/24 dev docker0 proto kernel scope link src 172.16.57.1",
    "MASQUERADE  0    --  172.16.99.0/24       0.0.0.0/0",
    "KUBE-SVC-AU252PRZZQGOERSG",
    "statistic mode random probability 0.50000000000",
    "KUBE-SEP-I6L4LR53UYF7FORX",
    "KUBE-SEP-LBWOKUH4CUTN7XKH",
    "MARK or 0x4000",
]
ENV = {**os.environ, "COLUMNS": "250"}


def test_walk_shows_every_line_of_the_flow(reference_lab):
    proc = run_inv("walk", str(REFERENCE), "--no-pause", env=ENV)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    for line in FLOW_LINES:
        assert line in proc.stdout, line
    assert "l3-miss" in proc.stdout and "neigh-written" in proc.stdout  # the agent, live
    assert "every expected line was seen" in proc.stdout


def test_walk_in_chinese(reference_lab):
    proc = run_inv("walk", str(REFERENCE), "--no-pause", "--lang", "zh", env=ENV)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "离开 Pod" in proc.stdout and "封装" in proc.stdout


def test_a_teacher_written_walkthrough(reference_lab, tmp_path):
    mine = tmp_path / "mine.walk.yaml"
    mine.write_text(
        "title: my lesson\n"
        "steps:\n"
        "  - title: where does pod3 live?\n"
        "    text: its address, as docker gave it\n"
        "    run:\n"
        "      - in: pod3\n"
        "        command: ip -o -4 addr show dev eth0\n"
        "        expect: ['{ip.pod3}/24']\n"
        "  - title: the VXLAN device of {mac.minion}'s node\n"
        "    run:\n"
        "      - {in: minion, command: [cat, /sys/class/net/flannel.1/address],"
        " expect: ['{mac.minion}']}\n"
    )
    proc = run_inv("walk", str(REFERENCE), "--no-pause", "--file", str(mine), env=ENV)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    assert "172.16.57.15/24" in proc.stdout
    wrong = tmp_path / "wrong.walk.yaml"
    wrong.write_text(
        "steps:\n  - title: t\n    run:\n      - {in: pod1, command: [ip, route],"
        " expect: ['default via 10.9.9.9']}\n"
    )
    proc = run_inv("walk", str(REFERENCE), "--no-pause", "--file", str(wrong), env=ENV)
    assert proc.returncode == 1
    assert "expected and not seen: default via 10.9.9.9" in proc.stdout
