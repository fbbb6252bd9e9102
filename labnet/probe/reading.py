"""What a diagnosis (labnet.probe.diagnose) reads of a lab's namespaces, each table once:
`ip -j` and `bridge -j` inside a namespace, sysctls, iptables-save."""

from __future__ import annotations

import json
import subprocess

from labnet.errors import LabFailure
from labnet.kernel import iptables, netns


def _ip_json(ns: str, *argv: str) -> list:
    cmd = ["ip", "netns", "exec", ns, *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    try:
        return json.loads(proc.stdout or "[]") if proc.returncode == 0 else []
    except json.JSONDecodeError:
        return []


def _sysctl(ns: str, key: str) -> int | None:
    """An integer under /proc/sys (key in slash form), read inside the namespace."""
    try:
        with netns.entered(ns), open(f"/proc/sys/{key}") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _save(ns: str, table: str) -> str:
    try:
        return iptables.save(ns, table)
    except LabFailure:
        return ""


class Kernel:
    """What a diagnosis reads of the lab's namespaces, each table read once: `ip -j` and
    `bridge -j` inside the namespace, sysctls, iptables-save."""

    def __init__(self) -> None:
        self.cache: dict[tuple, object] = {}

    def _once(self, read, *args):
        if (read, *args) not in self.cache:
            self.cache[(read, *args)] = read(*args)
        return self.cache[(read, *args)]

    def json(self, ns: str, *argv: str) -> list:
        return self._once(_ip_json, ns, *argv)

    def links(self, ns: str) -> dict[str, dict]:
        """Each link with its flags, MTU, vxlan data and addresses."""
        return {link["ifname"]: link for link in self.json(ns, "ip", "-j", "-d", "addr", "show")}

    def addresses(self, ns: str) -> set[str]:
        links = self.links(ns).values()
        return {a["local"] for x in links for a in x.get("addr_info", []) if a["family"] == "inet"}

    def route(self, ns: str, dst: str) -> dict | None:
        return next(iter(self.json(ns, "ip", "-j", "route", "get", dst)), None)

    def sysctl(self, ns: str, key: str) -> int | None:
        return self._once(_sysctl, ns, key)

    def rules(self, ns: str, table: str) -> str:
        return self._once(_save, ns, table)
