"""A class of five learners on one machine: `inv class up` makes a copy of a lab (or of a
challenge's broken lab) per learner, the same addresses in each and nothing shared; a fault
in one copy leaves the others working; `inv class status` shows who solved what,
`inv class report --html` gives the teacher one page (rendered in headless Chromium), and
`inv class down` removes every copy."""

from __future__ import annotations

import os

import pytest

from labnet.daemons import state
from labnet.kernel import netns
from labnet.lab import classroom, teardown
from tests.conftest import run_inv
from tests.lab.conftest import sh
from tests.lab.test_report import browser

pytestmark = pytest.mark.lab
LEARNERS = 5


def _clean(base: str) -> None:
    for i in range(1, LEARNERS + 1):
        lab = f"{base}-{i:02d}"
        if state.lab_dir(lab).exists():
            teardown.down(lab)


@pytest.fixture
def class_of(root_required, request):
    target, base = request.param
    _clean(base)
    try:
        proc = run_inv("class", "up", target, "--learners", str(LEARNERS))
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
        yield base
    finally:
        _clean(base)


@pytest.mark.parametrize("class_of", [("flannel-host-gw", "flannel-host-gw")], indirect=True)
def test_copies_share_nothing_and_a_fault_stays_in_its_copy(class_of):
    labs = [f"{class_of}-{i:02d}" for i in range(1, LEARNERS + 1)]
    assert [m.lab for m in classroom.members(class_of)] == labs
    # the same addresses inside every copy, each copy in namespaces of its own
    routes = {sh(lab, "master", "ip", "route") for lab in labs}
    assert len(routes) == 1, routes
    assert all(f"{lab}-pod1" in netns.list_names() for lab in labs)
    sh(labs[0], "minion", "sysctl", "-w", "net.ipv4.ip_forward=0")  # learner 01 breaks theirs
    broken = run_inv("verify", labs[0])
    assert broken.returncode == 1
    for lab in labs[1:]:
        assert run_inv("verify", lab).returncode == 0, lab
    status = run_inv("class", "status", env={**os.environ, "COLUMNS": "200"})
    assert status.returncode == 0
    for lab in labs:
        assert lab in status.stdout
    down = run_inv("class", "down", "--klass", class_of)
    assert down.returncode == 0 and f"{LEARNERS} learner labs down" in down.stdout
    assert not any(n.startswith(f"{class_of}-") for n in netns.list_names())
    assert classroom.members(class_of) == []


@pytest.mark.parametrize("class_of", [("after-the-reboot", "flannel-vxlan")], indirect=True)
def test_a_class_of_a_challenge_tracks_who_solved_it(class_of, tmp_path):
    labs = [f"{class_of}-{i:02d}" for i in range(1, LEARNERS + 1)]
    assert run_inv("challenge", "check", "--lab", labs[2]).returncode == 1
    # learner 03 fixes theirs; the others are still broken
    fixed = run_inv(
        "exec", "--lab", labs[2], "minion", "--", "sysctl", "-w", "net.ipv4.ip_forward=1"
    )
    assert fixed.returncode == 0
    assert run_inv("challenge", "check", "--lab", labs[2]).returncode == 0
    assert run_inv("challenge", "check", "--lab", labs[3]).returncode == 1
    rows = {r.member.lab: r for r in classroom.status(class_of)}
    assert rows[labs[2]].solved is not None and rows[labs[3]].solved is None
    assert all(r.up and r.challenge == "after-the-reboot" for r in rows.values())
    page = tmp_path / "class.html"
    report = run_inv("class", "report", "--klass", class_of, "--html", str(page))
    assert report.returncode == 0, report.stdout + report.stderr
    dom = browser(tmp_path, "--dump-dom", f"file://{page}").stdout
    assert '<table id="class">' in dom
    for lab in labs:
        assert f'id="lab-{lab}"' in dom
    assert dom.count(">PASS<") >= 7 and ">FAIL<" in dom  # learner 03's lab passes, 01's not
