"""Rule loading: every namespace's iptables-restore is waited for, and a refusal is named."""

from __future__ import annotations

import os

import pytest

from labnet.errors import LabFailure
from labnet.kernel import netns, realize
from labnet.plan import Rules

pytestmark = pytest.mark.lab
GOOD = "*nat\n-A POSTROUTING -s 10.9.0.0/24 ! -o docker0 -j MASQUERADE\nCOMMIT\n"
BAD = "*nat\n-A NO-SUCH-CHAIN -j ACCEPT\nCOMMIT\n"


def test_a_refusal_names_its_owner_and_no_restore_is_left_running(root_required):
    names = [f"labnet-rules-{os.getpid()}-{i}" for i in range(3)]
    made = []
    try:
        for name in names:
            netns.create(name)
            made.append(name)
        load = realize.RuleLoad(
            [Rules(names[0], "docker", GOOD), Rules(names[1], "kube-proxy", BAD)]
            + [Rules(names[2], "docker", GOOD)]
        )
        with pytest.raises(LabFailure, match=f"kube-proxy rules in {names[1]} were refused"):
            load.wait()
        assert len(load.running) == 3
        assert all(proc.poll() is not None for _, proc in load.running)
        for name in (names[0], names[2]):
            out = netns.run(
                name, ["iptables", "-t", "nat", "-S", "POSTROUTING"], timeout=30, text=True
            )
            assert "-A POSTROUTING -s 10.9.0.0/24 ! -o docker0 -j MASQUERADE" in out.stdout
    finally:
        for name in made:
            netns.delete(name)
