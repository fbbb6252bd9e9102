"""A snapshot of the root network namespace, to prove a lab never changed it."""

from __future__ import annotations

import os
import subprocess

# Counters and tables that move on their own on a live machine, whatever labs do.
VOLATILE_SYSCTLS = (
    "nf_conntrack_count",
    "/neigh/",
    "nf_conntrack_expect",
    "ip_local_port_range",
    "rt_cache_rebuild_count",
    "/random/",
)


def _run(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else f"<{argv[0]} failed: {proc.stderr.strip()}>"


def _sysctls() -> dict[str, str]:
    out = {}
    for dirpath, _dirs, files in os.walk("/proc/sys/net"):
        for f in files:
            p = os.path.join(dirpath, f)
            if any(v in p for v in VOLATILE_SYSCTLS):
                continue
            try:
                with open(p) as fh:
                    out[p] = fh.read()
            except OSError:
                continue
    return out


def snapshot() -> dict[str, object]:
    return {
        "links": _run("ip", "-d", "link", "show"),
        "addresses": _run("ip", "addr", "show"),
        "routes": _run("ip", "route", "show", "table", "all"),
        "rules": _run("ip", "rule", "show"),
        "iptables": _strip_counters(_run("iptables-save")),
        "nftables": _run("nft", "list", "ruleset") if _has("nft") else "",
        "listening": _run("ss", "-Hltnu"),
        "sysctls": _sysctls(),
    }


def _has(cmd: str) -> bool:
    from shutil import which

    return which(cmd, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is not None


def _strip_counters(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("#"))


def diff(before: dict, after: dict) -> list[str]:
    out = []
    for key in before:
        if key == "sysctls":
            changed = {
                k
                for k in before[key].keys() | after[key].keys()
                if before[key].get(k) != after[key].get(k)
            }
            if changed:
                out.append(f"sysctls changed: {sorted(changed)[:10]}")
        elif before[key] != after[key]:
            out.append(f"{key} changed:\n--- before\n{before[key]}\n--- after\n{after[key]}")
    return out
