"""Apply a plan to the kernel with pyroute2 netlink, one socket per lab namespace.

Every object lives in a namespace the lab created; veths are made with their peer directly in
the target namespace, so nothing ever appears in the root namespace, even for a moment.
"""

from __future__ import annotations

from pyroute2 import IPRoute

from . import netns
from .plan import PROTO_BOOT, Namespace, Steps

OWNER_MARK = "labnet:"  # ifalias of each namespace's lo: which lab owns it


class Kernel:
    """Netlink sockets into a lab's namespaces, each opened from inside its namespace."""

    def __init__(self) -> None:
        self._handles: dict[str, IPRoute] = {}

    def ipr(self, ns: str) -> IPRoute:
        handle = self._handles.get(ns)
        if handle is None:
            with netns.entered(ns):
                handle = self._handles[ns] = IPRoute()
        return handle

    def index(self, ns: str, ifname: str) -> int:
        found = self.ipr(ns).link_lookup(ifname=ifname)
        if not found:
            raise LookupError(f"{ifname} not found in {ns}")
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
    ipr = kernel.ipr(ns.name)
    lo = kernel.index(ns.name, "lo")
    ipr.link("set", index=lo, state="up", ifalias=f"{OWNER_MARK}{lab}")


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
        ipr = kernel.ipr(br.netns)
        ipr.link("add", ifname=br.ifname, kind="bridge", mtu=br.mtu)
        ipr.link("set", index=kernel.index(br.netns, br.ifname), state="up")
    for v in steps.veths:
        ipr = kernel.ipr(v.netns)
        ipr.link(
            "add",
            ifname=v.ifname,
            kind="veth",
            mtu=v.mtu,
            peer={"ifname": v.peer_ifname, "net_ns_fd": v.peer_netns, "mtu": v.mtu},
        )
        idx = kernel.index(v.netns, v.ifname)
        if v.master:
            ipr.link("set", index=idx, master=kernel.index(v.netns, v.master))
        ipr.link("set", index=idx, state="up")
        if v.hairpin:
            ipr.brport("set", index=idx, hairpin_mode=1)
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
