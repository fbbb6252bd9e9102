"""flanneld's iptables rules: --ip-masq's POSTROUTING rules and, from v0.9.1 on, FORWARD
ACCEPT rules for the pod network, written as the release writes them; releases that
re-check them (every 5 s from v0.9.1) put the whole set back when one has gone."""

from __future__ import annotations

import shlex
import subprocess
import threading
from dataclasses import dataclass

from labnet.daemons.flannel.lease import Lease, log
from labnet.plan import flannel_rules


@dataclass(frozen=True)
class Rule:
    table: str
    chain: str
    spec: tuple[str, ...]


def parse(text: str) -> list[Rule]:
    """The rules of iptables-restore text or iptables-save output (`-A CHAIN ...` or
    `-I CHAIN [N] ...`)."""
    rules, table = [], ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(("-A ", "-I ")):
            words = shlex.split(line)
            spec = words[3:] if words[0] == "-I" and words[2].isdigit() else words[2:]
            rules.append(Rule(table, words[1], tuple(spec)))
    return rules


def _iptables(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["iptables", "--wait", *args], capture_output=True, text=True)


def _key(table: str, chain: str, spec: tuple[str, ...] | list[str]) -> tuple:
    """A rule as iptables-save and restore input both spell it: the words of a rule do not
    change between the two, their order and quoting may."""
    return (table, chain, tuple(sorted(spec)))


def _saved() -> set[tuple]:
    """Every rule of the namespace, from one iptables-save (one process, whatever the
    number of rules: fifty agents check theirs every 5 s)."""
    out = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    return {_key(r.table, r.chain, r.spec) for r in parse(out)}


class RuleKeeper:
    """Part of the Agent: uses its cfg, release and network."""

    def setup_rules(self, lease: Lease) -> None:
        text = flannel_rules(self.release, str(self.network), str(lease.subnet), self.cfg.ipmasq)
        if not text:
            return
        self._rules_text, self._rules = text, parse(text)
        self._put_back(first=True)
        if self.release.recheck:
            threading.Thread(target=self._recheck, daemon=True).start()

    def _put_back(self, first: bool = False) -> None:
        """As flanneld: when any rule is missing, delete the others and write them all."""
        saved = _saved()
        present = [r for r in self._rules if _key(r.table, r.chain, r.spec) in saved]
        if len(present) == len(self._rules):
            if first:
                log("iptables", rules=f"{len(present)} already present")
            return
        for rule in reversed(present):
            _iptables("-t", rule.table, "-D", rule.chain, *rule.spec)
        proc = subprocess.run(
            ["iptables-restore", "--noflush", "--wait"],
            input=self._rules_text,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"flannel's rules refused: {proc.stderr.strip()}")
        for rule in self._rules:
            log("iptables", added=f"-t {rule.table} -A {rule.chain} {shlex.join(rule.spec)}")

    def _recheck(self) -> None:
        while not threading.Event().wait(self.release.recheck):
            try:
                self._put_back()
            except Exception as exc:  # noqa: BLE001 - logged, tried again next time
                log("iptables-failed", reason=exc)
