"""The corpus of malformed topologies in tests/bad: each one is refused with exit 2 and one
line naming the file, the line and the field (plus a hint), no traceback, nothing created."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from invoke.exceptions import Exit

from labnet import model
from labnet.cli import glue as cli
from labnet.errors import TopologyError
from labnet.kernel import netns
from labnet.lab import build

BAD = sorted((Path(__file__).parent.parent / "bad").glob("*.yaml"))


def expectation(path: Path) -> tuple[int, str]:
    first = path.read_text().splitlines()[0]
    line, field = first.removeprefix("# expect: ").split(" ", 1)
    return int(line) + 1, "" if field == "-" else field  # +1: the expectation line itself


def test_the_corpus_is_large_enough():
    assert len(BAD) >= 40


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_refused_with_file_line_and_field(path, capsys):
    line, field = expectation(path)
    with pytest.raises(TopologyError) as err:
        model.load(path)
    assert (err.value.line, err.value.field) == (line, field), err.value.message
    with pytest.raises(Exit) as code:
        cli.friendly(model.load)(path)
    assert code.value.code == 2
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert lines[0].startswith(f"labnet: error: {path}:{line}:")
    assert len(lines) <= 2 and (len(lines) == 1 or lines[1].strip().startswith("hint:"))
    assert "Traceback" not in out.err + out.out


@pytest.mark.skipif(os.geteuid() != 0, reason="creating nothing is checked as root")
@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_up_creates_nothing(path):
    before = netns.list_names()
    with pytest.raises(TopologyError):
        build.up(str(path))
    assert netns.list_names() == before
