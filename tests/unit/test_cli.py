"""The command line: one clear line and exit 2 for bad input, never a traceback."""

from __future__ import annotations

import os

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
    assert proc.returncode == 0 and "valid (2 nodes, 9 pods" in proc.stdout
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


def test_not_root_is_one_clear_line():
    """The command line as an unprivileged user meets it (the user id is what labnet asks
    the kernel for; here it answers 65534, as for `nobody`)."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    as_nobody = "import os, sys; os.geteuid = lambda: 65534; sys.argv[0] = 'inv'; "
    as_nobody += "from labnet.cli.program import main; main()"
    proc = subprocess.run(
        [sys.executable, "-c", as_nobody, "up", str(REFERENCE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
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


@pytest.mark.parametrize("argv", [["up", "--help"], ["--help", "up"], ["up", "-h"]])
def test_a_tasks_help_after_or_before_its_name(argv):
    proc = run_inv(*argv)
    assert proc.returncode == 0, proc.stderr
    assert "Build a lab from a topology file" in proc.stdout
    assert "--topology" in proc.stdout and "error" not in proc.stderr


def test_help_of_a_task_with_an_optional_argument_and_of_exec():
    down = run_inv("down", "--help")
    assert down.returncode == 0 and "--all" in down.stdout
    # after `--` the words belong to the command run inside the lab, --help included
    from labnet.cli.program import help_first

    assert help_first(["exec", "pod1", "--", "ls", "--help"], {"exec"}) == [
        "exec",
        "pod1",
        "--",
        "ls",
        "--help",
    ]


def test_output_cut_short_by_its_reader_is_no_traceback():
    import subprocess
    import sys

    from tests.conftest import ROOT

    proc = subprocess.run(
        f"{sys.executable} -m labnet --help up | head -1",
        shell=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.stdout.startswith("Usage:") and "Traceback" not in proc.stderr


def test_versions_lists_every_release_and_the_two_sets():
    from labnet.model import versions

    proc = run_inv("versions", env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    for known in versions.KNOWN.values():
        for release in known.values():
            assert release.tag in proc.stdout or release.version == "none"
    assert "0.6 (article)" in proc.stdout and "0.28 (today)" in proc.stdout


def test_labs_lists_every_shipped_lab_with_its_releases():
    proc = run_inv("labs", env={**os.environ, "COLUMNS": "250"})
    assert proc.returncode == 0, proc.stderr
    for name in ("flannel-vxlan", "flannel-vxlan-minimal"):
        assert f"│ {name} " in proc.stdout
    assert "flannel v0.6.2" in proc.stdout and "The article's flow" in proc.stdout
