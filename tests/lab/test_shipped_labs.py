"""Every lab shipped in topologies/: `inv verify` passes its checks, and its walkthrough
(if it has one) runs through in English and Chinese. The reference lab's walk has its own,
stricter tests (test_walk.py)."""

from __future__ import annotations

import os

import pytest

from labnet.model import shipped
from labnet.probe import verify
from tests.conftest import run_inv
from tests.lab.conftest import fresh_lab

pytestmark = pytest.mark.lab
LABS = [p for p in shipped.labs() if p.stem != shipped.REFERENCE]
WALKS = [p for p in LABS if p.with_name(f"{p.stem}.walk.yaml").exists()]
ENV = {**os.environ, "COLUMNS": "250"}


@pytest.mark.parametrize("path", LABS, ids=lambda p: p.stem)
def test_verify_passes(root_required, path):
    with fresh_lab(path) as up:
        report = verify.run(up.lab)
        assert report.passed, [(r.check.name, r.problems, r.explanation) for r in report.results]


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("path", WALKS, ids=lambda p: p.stem)
def test_walk_runs_through(root_required, path, lang):
    proc = run_inv("walk", str(path), "--no-pause", "--lang", lang, env=ENV)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert "every expected line was seen" in proc.stdout
