"""Apply a plan to the kernel with pyroute2 netlink, one socket per lab namespace.

Every object lives in a namespace the lab created; veths are made with their peer directly in
the target namespace, so nothing ever appears in the root namespace, even for a moment.
"""

from __future__ import annotations

import subprocess

from labnet.errors import LabFailure
from labnet.kernel import crashpoint, netlink, netns, query
from labnet.plan import LO_INDEX, PROTO_BOOT, Namespace, Rules, Steps

OWNER_MARK = "labnet:"  # ifalias of each namespace's lo: which lab owns it


class Kernel:
    """Interface indexes of a lab's links, as planned or looked up once (links never move
    during a build), so that addresses and routes name their device without a lookup."""

    def __init__(self) -> None:
        self._indexes: dict[tuple[str, str], int] = {}

    def index(self, ns: str, ifname: str) -> int:
        cached = self._indexes.get((ns, ifname))
        if cached is not None:
            return cached
        found = query.get_link(ns, ifname=ifname)
        if found is None:
            raise LookupError(f"{ifname} not found in {ns}")
        self._indexes[(ns, ifname)] = found.index
        return found.index

    def learn(self, ns: str, ifname: str, index: int) -> None:
        """An index the plan asked for: addresses and routes use it without a lookup."""
        self._indexes[(ns, ifname)] = index

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self._indexes.clear()


def create_namespace(ns: Namespace, lab: str, reserved: bool = False) -> None:
    """A new namespace with its sysctls, lo up (etcd's peer URL needs it) and the lab's
    ownership mark, all set from inside it as it is made (written later, each namespace's
    sysctls would need a setns() of their own)."""

    def inside() -> None:
        netns.write_net_sysctls([(s.key, s.value) for s in ns.sysctls])
        batch = netlink.Batch(None)  # the thread's namespace: the new one
        batch.link_up(LO_INDEX, "lo", alias=f"{OWNER_MARK}{lab}")
        batch.send()

    netns.create(ns.name, inside, reserved)


def owner_of(ns: str) -> str | None:
    """The lab named in the namespace's ownership mark, or None when it carries none."""
    try:
        alias = query.link_alias(ns, LO_INDEX)
    except OSError:
        return None
    return alias[len(OWNER_MARK) :] if alias and alias.startswith(OWNER_MARK) else None


def apply_sysctls(steps: Steps, of_links: bool = False) -> None:
    """The steps' sysctls (or those of the links they make), one entry into each namespace
    for all of its own."""
    by_ns: dict[str, list[tuple[str, str]]] = {}
    for s in steps.link_sysctls if of_links else steps.sysctls:
        by_ns.setdefault(s.netns, []).append((s.key, s.value))
    for ns, items in by_ns.items():
        with netns.entered(ns):
            netns.write_net_sysctls(items)


def apply(kernel: Kernel, steps: Steps) -> None:
    """Bridges and veths (up, with their ports and peers), then addresses and routes: one
    netlink batch per namespace for each of the two rounds."""
    apply_sysctls(steps)
    links: dict[str, netlink.Batch] = {}
    for br in steps.bridges:
        kernel.learn(br.netns, br.ifname, br.index)
        _batch(links, br.netns).bridge(br.ifname, br.index, br.mtu)
    for v in steps.veths:
        kernel.learn(v.netns, v.ifname, v.index)
        kernel.learn(v.peer_netns, v.peer_ifname, v.peer_index)
        master = kernel.index(v.netns, v.master) if v.master else None
        batch = _batch(links, v.netns)
        batch.veth(v.ifname, v.index, v.mtu, master, v.peer_ifname, v.peer_index, v.peer_netns)
        if v.hairpin:
            batch.hairpin(v.index, v.ifname)
        if v.mac:
            batch.link_address(v.index, v.ifname, v.mac)
    _send(links)
    apply_sysctls(steps, of_links=True)
    config: dict[str, netlink.Batch] = {}
    for v in steps.veths:
        if v.peer_mtu is not None:
            _batch(config, v.peer_netns).link_mtu(v.peer_index, v.peer_ifname, v.peer_mtu)
        _batch(config, v.peer_netns).link_up(v.peer_index, v.peer_ifname)
    for a in steps.addresses:
        _batch(config, a.netns).address(kernel.index(a.netns, a.ifname), a.ifname, a.cidr)
    for r in steps.routes:
        oif = kernel.index(r.netns, r.ifname)
        if r.gateway:
            _batch(config, r.netns).route(r.dst, r.gateway, oif, r.ifname, PROTO_BOOT)
        else:
            _batch(config, r.netns).device_route(r.dst, oif, PROTO_BOOT)
    _send(config)


def _batch(batches: dict[str, netlink.Batch], ns: str) -> netlink.Batch:
    if ns not in batches:
        batches[ns] = netlink.Batch(ns)
    return batches[ns]


def _send(batches: dict[str, netlink.Batch]) -> None:
    for batch in batches.values():
        batch.send()


LOADERS = {
    "iptables-restore": ["iptables-restore", "--noflush", "--wait"],
    "nft": ["nft", "-f", "-"],
}


def restore(netns_name: str, text: str, loader: str = "iptables-restore") -> subprocess.Popen:
    """iptables-restore --noflush inside a namespace, as kube-proxy and docker load rules (or
    `nft -f -`, as kube-proxy's nftables mode loads its table)."""
    proc = netns.popen(
        netns_name,
        LOADERS[loader],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    proc.stdin.write(text)
    proc.stdin.close()
    return proc


class RuleLoad:
    """Rule sets being loaded: one iptables-restore (and one nft) per namespace, all
    namespaces at once; the sets of one namespace go in the order given (each is its own
    table section)."""

    def __init__(self, rules: list[Rules]) -> None:
        texts: dict[tuple[str, str], list[Rules]] = {}
        for r in rules:
            texts.setdefault((r.netns, r.loader), []).append(r)
        self.running = []
        for (ns, loader), rs in texts.items():
            self.running.append((rs, restore(ns, "".join(r.text for r in rs), loader)))
            crashpoint.step(f"{loader} in {ns}")

    def wait(self) -> None:
        """Until every set is in (none is left running); the first refusal is raised."""
        refused = []
        for rs, proc in self.running:
            out = proc.stdout.read()
            if proc.wait() != 0:
                owners = " and ".join(r.owner for r in rs)
                refused.append(f"{owners} rules in {rs[0].netns} were refused: {out.strip()[:300]}")
        if refused:
            raise LabFailure(refused[0])
