"""Shared fixtures. Lab tests build real namespaces; each tears its lab down, also on failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["tests.ci_skips"]

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "topologies" / "flannel-vxlan.yaml"


def run_inv(
    *args: str, check: bool = False, env: dict | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """The command line as a user runs it (without the bootstrap step of scripts/inv)."""
    return subprocess.run(
        [sys.executable, "-m", "labnet", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=check,
        env=env,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def root_required() -> None:
    if os.geteuid() != 0:
        pytest.skip("lab tests need root (network namespaces)")
