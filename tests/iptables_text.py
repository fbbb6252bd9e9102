"""Reading iptables text as chains of rules, for comparisons that do not depend on one
iptables release's spelling: restore input (the goldens in tests/goldens, what labnet
loads) and `iptables-save` output both become {table: {chain: [rule words]}}."""

from __future__ import annotations

import shlex
from pathlib import Path

GOLDENS = Path(__file__).parent / "goldens"
# chains whose order kube-proxy takes from a Go map: compared as sets (as upstream's own
# tests sort them); the last rule of nat KUBE-SERVICES stays last
MAP_ORDERED = {("nat", "KUBE-SERVICES"), ("nat", "KUBE-NODEPORTS"), ("filter", "KUBE-SERVICES")}

Tables = dict[str, dict[str, list[tuple[str, ...]]]]


def golden(relative: str, **addresses: str) -> str:
    """A golden file's text (comments dropped), its addresses replaced (old=new)."""
    text = "\n".join(
        line for line in (GOLDENS / relative).read_text().splitlines() if not line.startswith("#")
    )
    for old, new in addresses.items():
        text = text.replace(old, new)
    return text + "\n"


def parse(text: str) -> tuple[Tables, dict[tuple[str, str], str]]:
    """Chains with their rules in order (an `-I CHAIN 1` goes first), and the policies of
    built-in chains that the text sets. Counters and declarations of empty chains are kept
    only as empty lists."""
    tables: Tables = {}
    policies: dict[tuple[str, str], str] = {}
    table = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line == "COMMIT":
            continue
        if line.startswith("*"):
            table = line[1:]
            tables.setdefault(table, {})
            continue
        if line.startswith(":"):
            chain, policy = line[1:].split()[:2]
            tables[table].setdefault(chain, [])
            if policy != "-":
                policies[(table, chain)] = policy
            continue
        words = shlex.split(line)
        op, chain, rest = words[0], words[1], words[2:]
        rules = tables[table].setdefault(chain, [])
        if op == "-A":
            rules.append(tuple(rest))
        elif op == "-I":
            at = int(rest[0]) - 1 if rest and rest[0].isdigit() else 0
            rules.insert(at, tuple(rest[1:] if rest and rest[0].isdigit() else rest))
    return tables, policies


def comparable(tables: Tables) -> Tables:
    """Map-ordered chains sorted (their last rule kept last where it must be)."""
    out: Tables = {}
    for table, chains in tables.items():
        out[table] = {}
        for chain, rules in chains.items():
            if (table, chain) in MAP_ORDERED:
                last = [r for r in rules if "KUBE-NODEPORTS" == r[-1] and "LOCAL" in r]
                rules = sorted(r for r in rules if r not in last) + last
            out[table][chain] = list(rules)
    return out
