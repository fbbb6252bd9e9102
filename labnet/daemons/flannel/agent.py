"""The flannel agent: flanneld's vxlan (host-gw, udp) backend, one process per node, inside the
node's namespace. The backend is the one `<prefix>/config` names, as flanneld reads it.

The agent behaves as the flannel release it is given (labnet.model.versions). Two eras of
the vxlan backend:
- "miss" (v0.6-v0.8, the reference article): flannel.1 carries <subnet>.0 (with the
  network's prefix up to v0.6, as a /32 with a network route after), app_solicit=3 makes the
  kernel ask user space for unknown neighbours (L3 miss, an RTM_GETNEIGH), and the agent
  writes the neighbour REACHABLE from the leases its etcd watch holds; FDB entries (self
  permanent) come from lease events.
- "static" (v0.9+): <subnet>.0/32, and per remote lease a permanent neighbour, the FDB entry,
  and the route `<subnet> via <subnet>.0 dev flannel.1 onlink`.
Its iptables rules, lease JSON, etcd API and lost-lease handling follow the release too.

host-gw: no device; per remote lease the route `<subnet> via <PublicIP> dev eth0`.

udp: the TUN device flannel0, and the agent carries every packet between it and UDP port
8285 from a table of the leases (labnet.daemons.flannel.udp).

Every event goes to stdout (the node's log) with a timestamp: `inv logs NODE`.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from labnet.daemons.flannel.lease import Lease, free_subnets, log
from labnet.daemons.flannel.misses import NUD_REACHABLE, MissAnswerer
from labnet.daemons.flannel.rules import RuleKeeper
from labnet.daemons.flannel.store import open_store
from labnet.daemons.flannel.sync import PROTO_BOOT, LeaseSync
from labnet.daemons.flannel.udp import UdpProxy
from labnet.kernel import netlink, query
from labnet.model.versions import FLANNEL

LEASE_TTL = 24 * 3600  # flannel's subnet lease
CONFIG_POLL_MAX = 0.3  # seconds between asks for the network config, at most
VXLAN_OVERHEAD = 50


@dataclass(frozen=True)
class AgentConfig:
    node: str
    etcd_host: str
    etcd_port: int
    iface: str
    public_ip: str
    subnet: str | None  # pinned, or None to lease like flannel
    mode: str  # miss | static
    run_dir: str  # where subnet.env goes (the node's /run/flannel)
    ipmasq: bool = False  # flanneld --ip-masq
    etcd_api: str = "v3"  # v3 (flannel v0.18+) or v2 (keys with a TTL, before v0.18)
    prefix: str = "/coreos.com/network"
    lease_ttl: int = LEASE_TTL
    more_endpoints: tuple[str, ...] = ()  # other members of an etcd cluster, host:port
    release: str = "0.6"  # the flannel release whose behaviour the agent follows


class Agent(LeaseSync, MissAnswerer, RuleKeeper, UdpProxy):
    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.release = FLANNEL[cfg.release]
        self.vni = 1
        self.backend = "vxlan"  # what <prefix>/config says
        self.device = ""
        self.ifindex = 0
        self.mac = ""
        self.network: IPv4Network | None = None
        self.lease: Lease | None = None
        self.remote: dict[str, Lease] = {}  # etcd key -> lease of another node
        self._sync = threading.RLock()  # watch, resync and start-up all program entries
        endpoints = [(cfg.etcd_host, cfg.etcd_port)] + [
            (h, int(p)) for h, p in (e.rsplit(":", 1) for e in cfg.more_endpoints)
        ]
        self.store = open_store(cfg.etcd_api, endpoints)

    # ------------------------------------------------------------ helpers

    def key(self, name: str) -> str:
        return f"{self.cfg.prefix}/subnets/{name}"

    # ------------------------------------------------------------ start-up

    def wait_config(self) -> dict:
        """flanneld waits for <prefix>/config like this, retrying until etcd has it (backing
        off: fifty agents asking every 20 ms would keep etcd and both cores busy)."""
        waited = False
        pause = 0.02
        while True:
            try:
                value = self.store.get(f"{self.cfg.prefix}/config")
            except Exception as exc:  # noqa: BLE001 - etcd not up yet: refused, reset
                value, reason = None, type(exc).__name__
            else:
                reason = "no config key yet"
            if value:
                config = json.loads(value)
                log("config", key=f"{self.cfg.prefix}/config", value=value.decode())
                return config
            if not waited:
                log("waiting", reason=reason)
                waited = True
            time.sleep(pause)
            pause = min(pause * 1.5, CONFIG_POLL_MAX)

    def prepare_backend(self, config: dict) -> None:
        """The backend <prefix>/config names: vxlan makes flannel.VNI, host-gw needs only the
        underlay interface (its routes go out through it), udp opens flannel0 once it holds
        its lease."""
        self.backend = config.get("Backend", {}).get("Type", "vxlan")
        if self.backend == "vxlan":
            log("backend", type="vxlan", mode=self.cfg.mode)
            self.create_device(config)
            return
        if self.backend == "udp":
            self.prepare_udp(config)
            return
        if self.backend != "host-gw":
            raise RuntimeError(f"backend {self.backend!r} is not supported (vxlan, host-gw, udp)")
        under = self._underlay()
        self.device, self.ifindex, self.mac = self.cfg.iface, under.index, None
        self.mtu = under.mtu
        log("backend", type="host-gw", dev=self.cfg.iface, mtu=self.mtu)

    def _underlay(self) -> query.Link:
        under = query.get_link(None, ifname=self.cfg.iface)
        if under is None:
            raise RuntimeError(f"underlay interface {self.cfg.iface} not found")
        return under

    def create_device(self, config: dict) -> None:
        backend = config.get("Backend", {})
        vni = self.vni = int(backend.get("VNI", 1))
        port = int(backend.get("Port", 8472))
        self.device = f"flannel.{vni}"
        under = self._underlay()
        mtu = under.mtu - VXLAN_OVERHEAD
        found = query.get_link(None, ifname=self.device)
        if found is not None and not self._device_matches(found, vni, port):
            batch = netlink.Batch(None)
            batch.link_del(found.index, self.device)
            batch.send()
            log("device-removed", dev=self.device, reason="incompatible attributes")
            found = None
        if found is None:
            batch = netlink.Batch(None)
            batch.vxlan(self.device, vni, under.index, self.cfg.public_ip, port, mtu)
            batch.send()
            log(
                "device-created",
                dev=self.device,
                vni=vni,
                local=self.cfg.public_ip,
                dev_under=self.cfg.iface,
                port=port,
                mtu=mtu,
                learning="off",
            )
            found = query.get_link(None, ifname=self.device)
        self.ifindex = found.index
        self.mac = found.mac
        self.mtu = mtu

    def _device_matches(self, link: query.Link, vni: int, port: int) -> bool:
        return link.vxlan == (vni, port, self.cfg.public_ip)

    def read_leases(self) -> tuple[dict[str, Lease], int]:
        values, revision = self.store.list(self.key(""))
        leases = {}
        for key, value in values.items():
            try:
                leases[key] = Lease.parse(key, value)
            except (ValueError, KeyError):
                log("lease-ignored", key=key, reason="unparsable")
        return leases, revision

    def acquire_lease(self, config: dict) -> tuple[Lease, dict[str, Lease], int]:
        """Our lease, and the listing it was chosen from with that listing's revision: the
        other leases are programmed from it and watched from the revision after (a lease
        written between the listing and ours arrives as a watch event)."""
        self.network = IPv4Network(config["Network"])
        while True:
            leases, revision = self.read_leases()
            mine = [(k, v) for k, v in leases.items() if v.public_ip == self.cfg.public_ip]
            if self.cfg.subnet:
                subnet = IPv4Network(self.cfg.subnet)
                holder = leases.get(self.key(f"{subnet.network_address}-{subnet.prefixlen}"))
                if holder and holder.public_ip != self.cfg.public_ip:
                    raise RuntimeError(f"subnet {subnet} is leased to {holder.public_ip}")
                how = "pinned"
            elif mine:
                subnet, how = mine[0][1].subnet, "reused"
            else:
                free = free_subnets(config, {v.subnet for v in leases.values()})
                if not free:
                    raise RuntimeError("no free subnet left in the flannel network")
                subnet, how = random.choice(free), "allocated"
            lease = Lease(
                subnet,
                self.cfg.public_ip,
                self.mac,
                self.backend,
                self.release.lease_form,
                self.vni,
            )
            if self._write_lease(lease, exists=lease.subnet in {v.subnet for _, v in mine}):
                log(
                    "lease-acquired",
                    subnet=subnet,
                    how=how,
                    key=self.key(lease.key_name),
                    value=lease.to_json(),
                    ttl=self.cfg.lease_ttl,
                )
                return lease, leases, revision
            log("lease-conflict", subnet=subnet, action="retry")

    def _write_lease(self, lease: Lease, exists: bool) -> bool:
        # ours already: rewrite it with a fresh TTL; else create it only if nobody did meanwhile
        key = self.key(lease.key_name)
        return self.store.write(key, lease.to_json(), self.cfg.lease_ttl, create_only=not exists)

    def address_batch(self, address: str, plen: int) -> netlink.Batch:
        """A batch that leaves the device `address/plen` and no other address (the old one
        goes when a new lease replaces it)."""
        want = (address, plen)
        have = query.addresses(None, self.ifindex)
        batch = netlink.Batch(None)
        for addr, prefixlen in have:
            if (addr, prefixlen) != want:
                batch.address(self.ifindex, self.device, f"{addr}/{prefixlen}", delete=True)
        if want not in have:
            batch.address(self.ifindex, self.device, f"{address}/{plen}")
        return batch

    def bring_up(
        self, batch: netlink.Batch, lease: Lease, plen: int, network_route: bool, **fields: object
    ) -> None:
        """The device up (with flannel's own route to the network where the release adds
        one), sent with what `batch` holds; logged as device-ready with `fields`."""
        batch.link_up(self.ifindex, self.device)
        if network_route:
            batch.device_route(str(self.network), self.ifindex, PROTO_BOOT)
        batch.send()
        log("device-ready", dev=self.device, address=f"{lease.gateway}/{plen}", **fields)

    def configure_device(self, lease: Lease) -> None:
        """flannel.1's address as the release sets it: <subnet>.0 with the network's prefix
        (to v0.6: the kernel's own route covers the network), /32 and an explicit network
        route (v0.7-v0.8), or /32 alone (v0.9+: a route per lease)."""
        style = self.release.address
        plen = self.network.prefixlen if style == "network" else 32
        batch = self.address_batch(lease.gateway, plen)
        if self.cfg.mode == "miss":
            # L3 misses come from app_solicit (the l3miss flag is not what flannel used)
            with open(f"/proc/sys/net/ipv4/neigh/{self.device}/app_solicit", "w") as f:
                f.write("3")
        route = style == "host-route"
        self.bring_up(
            batch,
            lease,
            plen,
            route,
            mac=self.mac,
            app_solicit=3 if self.cfg.mode == "miss" else 0,
            **({"route": f"{self.network} dev {self.device}"} if route else {}),
        )

    def write_subnet_env(self, lease: Lease) -> None:
        first = IPv4Address(int(lease.subnet.network_address) + 1)
        text = (
            f"FLANNEL_NETWORK={self.network}\n"
            f"FLANNEL_SUBNET={first}/{lease.subnet.prefixlen}\n"
            f"FLANNEL_MTU={self.mtu}\nFLANNEL_IPMASQ={str(self.cfg.ipmasq).lower()}\n"
        )
        run = Path(self.cfg.run_dir)
        run.mkdir(parents=True, exist_ok=True)
        tmp = run / "subnet.env.tmp"
        tmp.write_text(text)
        tmp.rename(run / "subnet.env")
        log(
            "subnet-env",
            path=run / "subnet.env",
            FLANNEL_SUBNET=f"{first}/{lease.subnet.prefixlen}",
            FLANNEL_MTU=self.mtu,
        )

    def run(self) -> int:
        log(
            "starting",
            node=self.cfg.node,
            public_ip=self.cfg.public_ip,
            iface=self.cfg.iface,
            etcd=f"{self.cfg.etcd_host}:{self.cfg.etcd_port}",
        )
        config = self.config = self.wait_config()
        self.prepare_backend(config)
        self.lease, leases, revision = self.acquire_lease(config)
        if self.backend == "vxlan":
            self.configure_device(self.lease)
        elif self.backend == "udp":
            self.open_tun(self.lease)  # flannel0 and the port exist before subnet.env does
        self.setup_rules(self.lease)  # --ip-masq, and FORWARD from v0.9.1 on
        # flanneld's order: subnet.env as soon as the lease is held (docker waits for it),
        # then the other nodes' leases
        self.write_subnet_env(self.lease)
        self.leases_added(leases)
        threading.Thread(target=self.watch, args=(revision,), daemon=True).start()
        threading.Thread(target=self.resync, daemon=True).start()
        threading.Thread(target=self.renew, daemon=True).start()
        if self.backend == "vxlan" and self.cfg.mode == "miss":
            self.serve_misses()
        elif self.backend == "udp":
            self.serve_tun()  # the data path: every packet between nodes passes here
        else:
            while True:
                signal.pause()
        return 0


def warm_up(node_netns: str) -> None:
    """Done once in the orchestrator just before it forks the agents, so that what pyroute2
    and labnet build on first use is shared by all of them rather than built by each: the
    compiled attribute tables of each message class (encoding the vxlan device, decoding an
    address dump) and the request templates of the entries an agent writes. Nothing is
    sent; the addresses of a node's namespace are read."""
    batch = netlink.Batch(None)  # never sent
    batch.vxlan("flannel.1", 1, 2, "10.0.0.1", 8472, 1450)
    batch.address(3, "flannel.1", "10.0.0.0/16")
    batch.link_up(3, "flannel.1")
    batch.fdb(3, "02:00:00:00:00:01", "10.0.0.1")
    batch.neigh(3, "10.0.0.0", "02:00:00:00:00:01")
    batch.neigh(3, "10.0.0.0", "02:00:00:00:00:01", state=NUD_REACHABLE)
    for onlink in (False, True):
        batch.gateway_route("10.1.0.0/24", "10.0.0.1", 3, PROTO_BOOT, onlink=onlink)
    query.addresses(node_netns, 1)


def _on_term(signum, _frame) -> None:
    log("stopping", signal=signal.Signals(signum).name)
    os._exit(0)  # flanneld keeps its lease and device on exit


def main(cfg: AgentConfig) -> int:
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    try:
        return Agent(cfg).run()
    except Exception as exc:  # noqa: BLE001 - the log is where a daemon's errors go
        log("fatal", error=f"{type(exc).__name__}: {exc}")
        return 1
