"""`inv demo` from up to down, as a teacher runs it: the article's state at every step."""

from __future__ import annotations

import os

import pytest

from labnet.kernel import netns
from tests.conftest import run_inv

pytestmark = pytest.mark.lab


def test_demo_runs_the_whole_story_and_cleans_up(root_required):
    before = netns.list_names()
    proc = run_inv("demo", env={**os.environ, "COLUMNS": "200"}, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    out = proc.stdout
    for line in (
        "default via 172.16.99.1 dev eth0",
        "172.16.0.0/16 dev flannel.1 proto kernel scope link src 172.16.99.0",
        "3 packets transmitted, 3 received, 0% packet loss",
        "172.16.57.15 lladdr ",
        " REACHABLE",
        "dst 10.46.181.146 self permanent",
        '{"PublicIP":"10.46.181.146","BackendType":"vxlan"',
        "l3-miss          dst=172.16.57.15",
        "internet 10.46.181.145:",
        "pod3 172.16.99.0:",
        "statistic mode random probability 0.50000000000",
        "lab flannel-vxlan is down",
    ):
        assert line in out, line
    assert netns.list_names() == before
