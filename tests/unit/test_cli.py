"""The command line: one clear line and exit 2 for bad input, never a traceback."""

from __future__ import annotations

import os
import shutil

import pytest

from labnet.cli.program import fill_optional_positionals
from tests.conftest import REFERENCE, run_inv

TASKS = {"up", "down", "status", "exec"}


def test_optional_positionals_are_filled_only_when_absent():
    assert fill_optional_positionals(["down", "--all"], TASKS) == ["down", "", "--all"]
    assert fill_optional_positionals(["down", "lab1"], TASKS) == ["down", "lab1"]
    assert fill_optional_positionals(["status"], TASKS) == ["status", ""]
    assert fill_optional_positionals(["status", "up", "x"], TASKS) == ["status", "", "up", "x"]
    assert fill_optional_positionals(["--help", "down"], TASKS) == ["--help", "down"]


def test_list_explains_every_task():
    proc = run_inv("--list")
    assert proc.returncode == 0
    for name in (
        "up",
        "down",
        "status",
        "exec",
        "shell",
        "plan",
        "validate",
        "logs",
        "demo",
        "test",
    ):
        assert f"\n  {name} " in proc.stdout


def test_validate_bad_file_is_one_line_with_location(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nnodes:\n  - name: a\n    bridge: waytoolongbridgename\n")
    proc = run_inv("validate", str(bad))
    assert proc.returncode == 2
    first, *rest = proc.stderr.strip().splitlines()
    assert first.startswith(f"labnet: error: {bad}:4: nodes[0].bridge:")
    assert len(rest) == 1 and rest[0].strip().startswith("hint:")
    assert "Traceback" not in proc.stdout + proc.stderr


def test_validate_and_plan_of_the_reference():
    proc = run_inv("validate", str(REFERENCE))
    assert proc.returncode == 0 and "valid (2 nodes, 8 pods" in proc.stdout
    plan = run_inv("plan", str(REFERENCE), env={**os.environ, "COLUMNS": "200"})
    assert plan.returncode == 0
    for text in (
        "flannel-vxlan-pod1",
        "address 172.16.99.8/24 dev eth0",
        "route default via 172.16.99.1 dev eth0",
        "bridge docker0 mtu 1450",
        "process flanneld-minion",
    ):
        assert text in plan.stdout, text


def test_missing_topology_file():
    proc = run_inv("up", "topologies/nope.yaml")
    assert proc.returncode == 2
    assert "no such topology file" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to drop it"
)
def test_not_root_is_one_clear_line():
    import subprocess
    import sys

    from tests.conftest import ROOT

    drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    if subprocess.run([*drop, "test", "-r", str(ROOT / "tasks.py")]).returncode != 0:
        pytest.skip("the checkout is not readable by an unprivileged user here")
    proc = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-m",
            "labnet",
            "up",
            str(REFERENCE),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "HOME": "/nonexistent"},
    )
    assert proc.returncode == 2, proc.stderr
    assert "labnet: error: labnet needs root" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the tool check comes after the root check")
def test_missing_tool_names_the_package():
    proc = run_inv("up", str(REFERENCE), env={**os.environ, "PATH": "/nonexistent"})
    assert proc.returncode == 2
    assert "missing tools: " in proc.stderr and "ping" in proc.stderr
    assert "apt-get install" in proc.stderr and "iputils-ping" in proc.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="checks that no namespace was created")
@pytest.mark.parametrize(
    "text",
    [
        "name: broken\nnodes: [\n",
        "name: broken\nnodes: [{name: a, subnet: 1.2.3.0/24}]\n",
        "name: broken\nnodes: [{name: a}]\npods: [{name: p, node: b}]\n",
        "name: broken\nnodes: [{name: a}]\nservices:\n"
        "  - {name: d/s, clusterIP: 172.16.0.9, ports: [{port: 80}], endpoints: []}\n",
    ],
)
def test_bad_input_creates_nothing(tmp_path, text):
    from labnet.daemons import state
    from labnet.kernel import netns

    bad = tmp_path / "broken.yaml"
    bad.write_text(text)
    before = netns.list_names()
    proc = run_inv("up", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"labnet: error: {bad}:")
    assert "Traceback" not in proc.stderr + proc.stdout
    assert netns.list_names() == before
    assert not state.lab_dir("broken").exists()
