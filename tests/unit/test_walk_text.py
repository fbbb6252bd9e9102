"""Walkthrough texts as written Chinese: a YAML line wrap leaves no space between CJK."""

from __future__ import annotations

import re

from labnet.render import walk
from tests.conftest import ROOT


def test_a_wrap_between_chinese_characters_leaves_no_space():
    assert walk.joined("子网内， 所以数据包") == "子网内，所以数据包"
    assert walk.joined("所有 Pod 子网 路由到 flannel.1") == "所有 Pod 子网路由到 flannel.1"
    assert walk.joined("pod1 wants to reach pod3") == "pod1 wants to reach pod3"


def test_the_shipped_walkthroughs_read_as_written_chinese():
    for path in (ROOT / "topologies").glob("*.walk.yaml"):
        wt = walk.load(path)
        for step in wt.steps:
            zh = step.text.get("zh", "")
            assert not re.search(r"[\u4e00-\u9fff，。：；、（）] +[\u4e00-\u9fff（]", zh), (
                path,
                zh,
            )
