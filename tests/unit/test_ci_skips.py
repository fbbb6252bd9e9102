"""In CI a skipped test fails the run, unless a kernel feature is missing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

SAMPLE = """
import pytest
from tests.ci_skips import skip_without_kernel_feature

def test_skipped_for_a_missing_tool():
    pytest.skip("mn is not installed")

@pytest.mark.skipif(True, reason="needs something")
def test_skipped_by_a_marker():
    pass

def test_skipped_for_a_missing_kernel_feature():
    skip_without_kernel_feature("br_netfilter", present=False)

def test_that_runs():
    pass
"""


def _run(tmp_path, ci: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    argv = [sys.executable, "-m", "pytest", "-p", "tests.ci_skips", "-rA", "-q"]
    argv += ["-p", "no:cacheprovider", str(tmp_path / "test_sample.py")]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_in_ci_a_skip_fails_the_run_unless_a_kernel_feature_is_missing(tmp_path):
    proc = _run(tmp_path, "true")
    assert proc.returncode == 1, proc.stdout
    # a skip in the test's body fails it; a skip marker (at set-up) is an error: both count
    assert "FAILED" in proc.stdout and "test_skipped_for_a_missing_tool" in proc.stdout
    assert "ERROR" in proc.stdout and "test_skipped_by_a_marker" in proc.stdout
    assert "1 failed, 1 passed, 1 skipped, 1 error" in proc.stdout
    assert "SKIPPED [1]" in proc.stdout and "kernel feature missing: br_netfilter" in proc.stdout


def test_outside_ci_skips_are_skips(tmp_path):
    proc = _run(tmp_path, None)
    assert proc.returncode == 0, proc.stdout
    assert "1 passed, 3 skipped" in proc.stdout


def test_only_listed_kernel_features_may_skip():
    from tests.ci_skips import skip_without_kernel_feature

    with pytest.raises(ValueError):
        skip_without_kernel_feature("mininet", present=False)
