"""Checks before touching the kernel: root, and the tools labs run. One line with the fix."""

from __future__ import annotations

import os
import shutil

from labnet.errors import EnvironmentProblem

# command -> Debian/Ubuntu package
TOOLS = {
    "nsenter": "util-linux",
    "curl": "curl",
    "ip": "iproute2",
    "bridge": "iproute2",
    "iptables": "iptables",
    "tcpdump": "tcpdump",
    "ping": "iputils-ping",
    "conntrack": "conntrack",
    "nft": "nftables",
    "dnsmasq": "dnsmasq-base",
}
BIRD_TOOLS = {"bird": "bird2", "birdc": "bird2"}  # Calico labs only


def require_root() -> None:
    if os.geteuid() != 0:
        raise EnvironmentProblem(
            "labnet needs root to create network namespaces",
            "run it through ./scripts/inv (it uses sudo) or as root",
        )


def require_tools(names: list[str] | None = None) -> None:
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    missing = [t for t in (names or TOOLS) if shutil.which(t, path=path) is None]
    if missing:
        pkgs = " ".join(sorted({{**TOOLS, **BIRD_TOOLS}.get(t, t) for t in missing}))
        raise EnvironmentProblem(
            f"missing tool{'s' if len(missing) > 1 else ''}: {', '.join(missing)}",
            f"apt-get install {pkgs}  (or run ./scripts/bootstrap)",
        )


def require_br_netfilter() -> None:
    """kube-proxy's rules must see traffic between pods of one bridge. br_netfilter is a
    host-wide module: labnet reads whether it is there but never loads it itself."""
    if not os.path.isdir("/proc/sys/net/bridge"):
        raise EnvironmentProblem(
            "services need the br_netfilter kernel module, which is not loaded",
            "load it yourself: modprobe br_netfilter (it affects the host)",
        )


def check(services: bool = False, bird: bool = False) -> None:
    require_root()
    require_tools([*TOOLS, *(BIRD_TOOLS if bird else ())])
    if services:
        require_br_netfilter()
