"""The SVG diagram and the HTML report, rendered by a real browser (headless Chromium)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import run_inv
from tests.lab.test_artifacts import assert_links_stay_inside, kept

pytestmark = pytest.mark.lab
LAB = "flannel-vxlan"
CHROMIUM = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def browser(tmp_path, *args: str) -> subprocess.CompletedProcess:
    exe = next(
        filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None
    )
    if exe is None:
        pytest.fail("chromium is missing: ./scripts/bootstrap --test installs it")
    return subprocess.run(
        [exe, *CHROMIUM, f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_graph_draws_the_lab_and_the_path(reference_lab, tmp_path):
    out = tmp_path / "lab.svg"
    proc = run_inv("graph", LAB, "--path", "pod1:pod3", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    svg = out.read_text()
    for text in (
        "(netns flannel-vxlan-master)",
        "flannel.1 172.16.99.0 vxlan id 1",
        "docker0 172.16.57.1/24",
        "eth0 172.16.57.15",
        "etcd",
        "internet",
        "VXLAN VNI 1",
        "UDP dport 8472",
        "inner IP 172.16.99.0 &gt; 172.16.57.15",
        "<polyline",
    ):
        assert text in svg, text
    png = tmp_path / "lab.png"
    browser(tmp_path, f"--screenshot={png}", "--window-size=1400,800", f"file://{out}")
    assert png.exists() and png.stat().st_size > 20_000  # a picture, not a blank page


def test_html_report_renders_in_chromium(reference_lab, tmp_path):
    out = kept(tmp_path, "report-reference")
    proc = run_inv(
        "verify", LAB, "--out", str(out), "--html", "report.html",
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:]
    page = out / "report.html"
    assert assert_links_stay_inside(page)  # relative links to the pcaps beside it
    dom = browser(tmp_path, "--dump-dom", f"file://{page}").stdout
    assert '<table class="hops" id="hops-0">' in dom  # the browser built the hop table
    assert "<svg" in dom and 'id="diagram"' in dom  # and the diagram
    assert "7/7 checks passed" in dom
    assert "VXLAN VNI 1" in dom and ".pcap</a>" in dom
    png = tmp_path / "report.png"
    browser(tmp_path, f"--screenshot={png}", "--window-size=1400,1400", f"file://{page}")
    assert png.exists() and png.stat().st_size > 20_000
