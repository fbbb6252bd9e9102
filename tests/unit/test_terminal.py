"""What the terminal shows: rules as a learner reads them, addresses as they are."""

from __future__ import annotations


def test_the_rules_tree_keeps_a_negated_source():
    """Today's first KUBE-SVC rule marks what comes from outside the cluster CIDR."""
    from labnet.render.terminal import _describe

    rule = (
        "-m comment --comment x -m tcp -p tcp -d 192.168.3.22 --dport 8080 "
        "! -s 172.16.0.0/16 -j KUBE-MARK-MASQ"
    ).split()
    assert "not from 172.16.0.0/16 -> KUBE-MARK-MASQ" in _describe(rule).plain
    assert "not from" not in _describe("-s 172.16.99.6/32 -j KUBE-MARK-MASQ".split()).plain


def test_a_mac_holding_an_emoji_code_prints_as_it_is():
    from labnet.render import terminal

    with terminal.console.capture() as out:
        terminal.console.print("4a:ab:5e:e7:22:77")
    assert out.get().strip() == "4a:ab:5e:e7:22:77"
