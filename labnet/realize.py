"""Apply a plan to the kernel with pyroute2 netlink, one socket per lab namespace.

Every object lives in a namespace the lab created; veths are made with their peer directly in
the target namespace, so nothing ever appears in the root namespace, even for a moment.
"""

from __future__ import annotations

import subprocess

from pyroute2 import IPRoute

from . import netns
from .errors import LabFailure
from .plan import PROTO_BOOT, Namespace, Rules, Steps

OWNER_MARK = "labnet:"  # ifalias of each namespace's lo: which lab owns it
LO_INDEX = 1  # lo is the first link of every network namespace


class Kernel:
    """Netlink sockets into a lab's namespaces, each opened from inside its namespace."""

    def __init__(self) -> None:
        self._handles: dict[str, IPRoute] = {}
        self._indexes: dict[tuple[str, str], int] = {}  # links never move during a build

    def ipr(self, ns: str) -> IPRoute:
        handle = self._handles.get(ns)
        if handle is None:
            with netns.entered(ns):
                handle = self._handles[ns] = IPRoute()
        return handle

    def index(self, ns: str, ifname: str) -> int:
        cached = self._indexes.get((ns, ifname))
        if cached is not None:
            return cached
        found = self.ipr(ns).link_lookup(ifname=ifname)
        if not found:
            raise LookupError(f"{ifname} not found in {ns}")
        self._indexes[(ns, ifname)] = found[0]
        return found[0]

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def create_namespace(kernel: Kernel, ns: Namespace, lab: str) -> None:
    """A new namespace with lo up (etcd's peer URL needs it) and the lab's ownership mark."""
    netns.create(ns.name)
    kernel.ipr(ns.name).link("set", index=LO_INDEX, state="up", ifalias=f"{OWNER_MARK}{lab}")


def owner_of(kernel: Kernel, ns: str) -> str | None:
    """The lab named in the namespace's ownership mark, or None when it carries none."""
    try:
        alias = kernel.ipr(ns).get_links(kernel.index(ns, "lo"))[0].get("IFLA_IFALIAS")
    except (OSError, LookupError):
        return None
    return alias[len(OWNER_MARK) :] if alias and alias.startswith(OWNER_MARK) else None


def apply_sysctls(steps: Steps) -> None:
    for s in steps.sysctls:
        with netns.entered(s.netns):
            netns.write_sysctl(s.key, s.value)


def apply(kernel: Kernel, steps: Steps) -> None:
    """Create bridges, veths (with ports), addresses and routes, in that order."""
    apply_sysctls(steps)
    for br in steps.bridges:
        kernel.ipr(br.netns).link("add", ifname=br.ifname, kind="bridge", mtu=br.mtu, state="up")
    for v in steps.veths:
        # master and state ride on the create request: one round trip instead of three
        master = {"master": kernel.index(v.netns, v.master)} if v.master else {}
        kernel.ipr(v.netns).link(
            "add",
            ifname=v.ifname,
            kind="veth",
            mtu=v.mtu,
            state="up",
            peer={"ifname": v.peer_ifname, "net_ns_fd": v.peer_netns, "mtu": v.mtu},
            **master,
        )
        if v.hairpin:
            kernel.ipr(v.netns).brport(
                "set", index=kernel.index(v.netns, v.ifname), mode=1
            )  # IFLA_BRPORT_MODE 1: hairpin
        kernel.ipr(v.peer_netns).link(
            "set", index=kernel.index(v.peer_netns, v.peer_ifname), state="up"
        )
    for a in steps.addresses:
        addr, plen = a.cidr.split("/")
        kernel.ipr(a.netns).addr(
            "add", index=kernel.index(a.netns, a.ifname), address=addr, prefixlen=int(plen)
        )
    for r in steps.routes:
        dst = {} if r.dst == "default" else {"dst": r.dst}
        kernel.ipr(r.netns).route(
            "add", gateway=r.gateway, oif=kernel.index(r.netns, r.ifname), proto=PROTO_BOOT, **dst
        )


def in_netns(netns_name: str, argv: list[str]) -> list[str]:
    """argv run inside a namespace; nsenter only switches the network namespace, where
    `ip netns exec` also makes a mount namespace (not needed for iptables)."""
    return ["nsenter", f"--net={netns.path(netns_name)}", "--", *argv]


def restore(netns_name: str, text: str) -> subprocess.Popen:
    """iptables-restore --noflush inside a namespace, as kube-proxy and docker load rules."""
    proc = subprocess.Popen(
        in_netns(netns_name, ["iptables-restore", "--noflush", "--wait"]),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    proc.stdin.write(text)
    proc.stdin.close()
    return proc


def apply_rules(rules: list[Rules]) -> None:
    """Load rule sets: one iptables-restore per namespace, all namespaces at once; the sets
    of one namespace go in the order given (each is its own table section)."""
    texts: dict[str, list[Rules]] = {}
    for r in rules:
        texts.setdefault(r.netns, []).append(r)
    running = [(rs, restore(ns, "".join(r.text for r in rs))) for ns, rs in texts.items()]
    for rs, proc in running:
        out = proc.stdout.read()
        if proc.wait() != 0:
            owners = " and ".join(r.owner for r in rs)
            raise LabFailure(f"{owners} rules in {rs[0].netns} were refused: {out.strip()[:300]}")
