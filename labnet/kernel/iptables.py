"""Reading iptables state back from a namespace, for `inv rules` and the tests."""

from __future__ import annotations

import shlex

from labnet.errors import LabFailure
from labnet.kernel import netns as namespaces


def _output(netns: str, argv: list[str]) -> str:
    proc = namespaces.run(netns, argv, timeout=30, text=True)
    if proc.returncode != 0:
        raise LabFailure(f"{' '.join(argv)} in {netns}: {proc.stderr.strip()}")
    return proc.stdout


def save(netns: str, table: str = "nat") -> str:
    return _output(netns, ["iptables-save", "-t", table])


def listing(netns: str, table: str = "nat") -> str:
    """`iptables -t nat -nL`, the view of the article."""
    return _output(netns, ["iptables", "-t", table, "-nL"])


def parse_save(text: str) -> dict[str, list[list[str]]]:
    """iptables-save text -> chain -> rules, each rule as its argv (after `-A CHAIN`)."""
    chains: dict[str, list[list[str]]] = {}
    for line in text.splitlines():
        if line.startswith(":"):
            chains.setdefault(line[1:].split()[0], [])
        elif line.startswith("-A "):
            words = shlex.split(line)
            chains.setdefault(words[1], []).append(words[2:])
    return chains


def option(rule: list[str], name: str) -> str | None:
    """The value after `name` in a rule's argv (e.g. -j, --to-destination, --comment)."""
    for i, word in enumerate(rule[:-1]):
        if word == name:
            return rule[i + 1]
    return None
