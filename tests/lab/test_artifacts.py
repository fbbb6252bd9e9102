"""A run directory outlives its lab: pcaps, JUnit and the HTML report of `inv verify` and
`inv trace` stay after `down`, their links work in a copy, and under sudo they belong to the
user who ran sudo. A tcpdump that misses its start deadline is stopped, not left behind."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from labnet.daemons import state
from labnet.kernel import netns
from labnet.probe import capture
from tests.lab.conftest import fresh_lab, variant

pytestmark = pytest.mark.lab
GONE = "ar-gone"  # the lab of the copy test, taken down before the copy is read
KEPT = "ar-kept"  # the lab of the other tests
NOBODY = 65534
PCAP_MAGIC = {b"\xa1\xb2\xc3\xd4", b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\x3c\x4d", b"\x4d\x3c\xb2\xa1"}


def kept(tmp_path: Path, name: str) -> Path:
    """Where a test's run directory goes: under $LABNET_TEST_RUNS when it is set (CI uploads
    that directory as an artifact), else under the test's tmp_path."""
    base = os.environ.get("LABNET_TEST_RUNS")
    return (Path(base).absolute() if base else tmp_path) / name


def labnet(*args: str, cwd: Path, env: dict[str, str] | None = None):
    """The command line as a user runs it, from `cwd` (where ./labnet-runs/ goes)."""
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "labnet", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=180,
    )


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.links += [v for k, v in attrs if k in ("href", "src", "xlink:href") and v]


def links_of(page: Path) -> list[str]:
    parser = Links()
    parser.feed(page.read_text())
    return parser.links


def assert_links_stay_inside(page: Path) -> list[Path]:
    """Every link of the page is relative and names a file beside it; the files it names."""
    text = page.read_text()
    assert "file://" not in text and "/run/labnet" not in text
    files = []
    for link in links_of(page):
        parts = urlsplit(link)
        assert not parts.scheme and not parts.netloc and not link.startswith("/"), link
        if not parts.path:  # a fragment: within the page
            continue
        target = (page.parent / unquote(parts.path)).resolve()
        assert target.is_file(), link
        files.append(target)
    return files


def assert_pcap(path: Path) -> None:
    from scapy.utils import rdpcap

    assert path.read_bytes()[:4] in PCAP_MAGIC, path
    rdpcap(str(path))  # readable to the end


@pytest.fixture(scope="module")
def lab(root_required, tmp_path_factory):
    with fresh_lab(variant(tmp_path_factory, KEPT, {})) as result:
        yield result


def test_the_report_outlives_down_and_works_as_a_copy(root_required, tmp_path_factory, tmp_path):
    cwd = kept(tmp_path, "default-place")
    with fresh_lab(variant(tmp_path_factory, GONE, {})):
        proc = labnet("verify", GONE, "--html", "report.html", "--junit", "verify.xml", cwd=cwd)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert not state.lab_dir(GONE).exists()  # down removed the lab's own directory
    last = proc.stdout.strip().splitlines()[-1]
    found = re.fullmatch(rf"run directory: (labnet-runs/{GONE}-\d{{8}}-\d{{6}})", last)
    assert found, last
    run = cwd / found[1]
    assert "7/7 checks passed" in proc.stdout
    assert f"wrote {found[1]}/report.html" in proc.stdout

    copy = Path(shutil.copytree(run, tmp_path / "elsewhere" / "copy"))
    linked = assert_links_stay_inside(copy / "report.html")
    assert all(copy.resolve() in p.parents for p in linked)  # the copy needs nothing else
    pcaps = sorted(copy.glob("*.pcap"))
    assert pcaps and {p.name for p in pcaps} == {p.name for p in linked}
    for p in pcaps:
        assert_pcap(p)
    vxlan = capture.read(copy / f"{GONE}-master_eth0.pcap")
    assert any(s.outer and s.outer[3] == 1 for s in vxlan)  # the tunnel's packets are in it
    suite = ET.parse(copy / "verify.xml").getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("7", "0")


def owned(top: Path) -> dict[str, int]:
    """Owner uid of top and of everything below it, by path relative to top."""
    return {str(p.relative_to(top)): p.lstat().st_uid for p in [top, *top.rglob("*")]}


def test_under_sudo_the_run_belongs_to_the_user(lab, tmp_path):
    out = tmp_path / "made" / "run"
    outside = tmp_path / "elsewhere" / "trace.html"
    outside.parent.mkdir()
    sudo = {"SUDO_UID": str(NOBODY), "SUDO_GID": str(NOBODY)}
    proc = labnet(
        "trace", "pod1", "pod3", "--lab", KEPT, "--out", str(out),
        "--html", str(outside), "--junit", "trace.xml", cwd=tmp_path, env=sudo,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == f"run directory: {out}"
    assert set(owned(tmp_path / "made").values()) == {NOBODY}
    assert (out / "trace.xml").exists() and any(out.glob("*.pcap"))
    assert (outside.stat().st_uid, outside.stat().st_gid) == (NOBODY, NOBODY)
    assert outside.parent.stat().st_uid == 0  # the user's own directory is left as it was
    # a report outside the run directory links into it, relatively
    assert all(link.startswith("../made/run/") for link in links_of(outside))
    assert assert_links_stay_inside(outside)


def test_an_existing_out_directory_keeps_its_own_files(lab, tmp_path):
    out = tmp_path / "shared"
    out.mkdir()
    (out / "notes.txt").write_text("the user's\n")
    sudo = {"SUDO_UID": str(NOBODY), "SUDO_GID": str(NOBODY)}
    proc = labnet("trace", "pod1", "pod3", "--lab", KEPT, "--out", str(out), cwd=tmp_path, env=sudo)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    uids = owned(out)
    assert uids.pop(".") == 0 and uids.pop("notes.txt") == 0
    assert uids and set(uids.values()) == {NOBODY}


def test_a_tcpdump_past_its_deadline_is_stopped(lab, tmp_path, monkeypatch):
    started: list[subprocess.Popen] = []
    popen = netns.popen

    def recording(*args, **kwargs):
        started.append(popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(capture.netns, "popen", recording)
    place = (f"{KEPT}-master", "eth0")
    try:
        (cap,) = capture.start([place], tmp_path, timeout=0)
        capture.stop([cap])
    finally:
        for proc in started:  # a failing test still leaves nothing running
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert cap.proc is None
    assert cap.error == "tcpdump did not start listening within 0 s"
    assert len(started) == 1 and started[0].returncode is not None
    mine = [
        p.name
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and str(tmp_path).encode() in _cmdline(p)
    ]
    assert not mine  # no tcpdump writing into this test's directory is left


def _cmdline(proc_dir: Path) -> bytes:
    try:
        return (proc_dir / "cmdline").read_bytes()
    except OSError:
        return b""
