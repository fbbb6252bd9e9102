"""The challenge catalogue without root: every challenge is valid, bilingual, runs on a
shipped lab and names checks that lab has; a broken challenge file is refused at file:line;
`inv challenge ACTION [NAME]` and `inv class ACTION [TARGET]` parse as typed."""

from __future__ import annotations

import pytest

from labnet.cli.program import fill_optional_positionals
from labnet.errors import InputError, TopologyError
from labnet.model import challenges, shipped

TASKS = {"challenge", "class", "status", "down", "up"}


def test_the_catalogue_has_at_least_fifteen_bilingual_challenges_on_shipped_labs():
    found = challenges.catalogue()
    assert len(found) >= 15
    labs = {p.stem for p in shipped.labs()}
    assert len({c.lab for c in found}) >= 4  # across the labs
    for ch in found:
        assert ch.lab in labs, ch.name
        for field in ("title", "story"):
            assert ch.text(field, "en") and ch.text(field, "zh") != ch.text(field, "en")
        assert 1 <= len(ch.hints) <= 3 and all(h["zh"] for h in ch.hints)
        assert ch.fault and ch.fix and ch.checks


def test_a_challenge_naming_a_check_its_lab_lacks_is_refused(tmp_path):
    text = (challenges.directory() / "after-the-reboot.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("checks: [pod1 to pod3 through", "checks: [pod1 to pod9 through"))
    with pytest.raises(TopologyError, match=r"bad.yaml:\d+: checks\[0\]: lab flannel-vxlan has no"):
        challenges.load(str(bad))
    bad.write_text(text.replace("lab: flannel-vxlan", "lab: flannel-vxlan\nfoo: 1"))
    with pytest.raises(TopologyError, match="unknown key 'foo'"):
        challenges.load(str(bad))


def test_an_unknown_challenge_names_the_known_ones():
    with pytest.raises(InputError) as err:
        challenges.load("no-such-thing")
    assert "after-the-reboot" in err.value.hint


def test_the_learners_commands_parse_as_typed():
    fill = fill_optional_positionals
    assert fill(["challenge", "list"], TASKS) == ["challenge", "list", ""]
    assert fill(["challenge", "start", "master-cut-off"], TASKS) == [
        "challenge",
        "start",
        "master-cut-off",
    ]
    assert fill(["challenge", "check", "--lab", "x"], TASKS) == [
        "challenge",
        "check",
        "",
        "--lab",
        "x",
    ]
    assert fill(["class", "status"], TASKS) == ["class", "status", ""]  # not the status task
    assert fill(["class", "up", "a", "--learners", "5"], TASKS) == [
        "class",
        "up",
        "a",
        "--learners",
        "5",
    ]
    assert fill(["challenge"], TASKS) == ["challenge", "", ""]


def test_fault_and_fix_read_as_a_learner_types_them():
    ch = challenges.load("half-the-requests-fail")
    assert ch.fault[0].typed() == "rbd-1/api stopped (by its recorded PID)"
    assert ch.fix[0].typed("lab-07") == "inv restart --lab lab-07 rbd-1/api"
    exec_fix = challenges.load("after-the-reboot").fix[0]
    assert exec_fix.typed() == "inv exec minion -- sysctl -w net.ipv4.ip_forward=1"
