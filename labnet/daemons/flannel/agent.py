"""The flannel agent: flanneld's vxlan (or host-gw) backend, one process per node, inside the
node's namespace. The backend is the one `<prefix>/config` names, as flanneld reads it.

Two eras of the vxlan backend (see the project's reference notes):
- "miss" (v0.5-v0.8, the reference article): flannel.1 carries <subnet>.0 with the network's
  prefix, app_solicit=3 makes the kernel ask user space for unknown neighbours (L3 miss, an
  RTM_GETNEIGH), the agent looks the lease up in etcd and writes the neighbour REACHABLE;
  FDB entries (self permanent) come from lease events.
- "static" (v0.9+): <subnet>.0/32, and per remote lease a permanent neighbour, the FDB entry,
  and the route `<subnet> via <subnet>.0 dev flannel.1 onlink`.

host-gw: no device; per remote lease the route `<subnet> via <PublicIP> dev eth0`.

Every event goes to stdout (the node's log) with a timestamp: `inv logs NODE`.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from labnet.daemons.flannel.store import open_store
from labnet.kernel import netlink
from labnet.plan import flannel_ipmasq_rules

NUD_REACHABLE = 0x02
PROTO_BOOT = 3
LEASE_TTL = 24 * 3600  # flannel's subnet lease
RENEW_MARGIN = 3600  # renewed 1 h before expiry
RETRY = 0.5  # seconds between tries to reach etcd again
CONFIG_POLL_MAX = 0.3  # seconds between asks for the network config, at most
RESYNC = 30.0  # seconds between comparisons of etcd's leases with the programmed entries; at
# 5 s, fifty agents listing fifty leases cost etcd alone a tenth of a core in an idle lab
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


@dataclass(frozen=True)
class Lease:
    subnet: IPv4Network
    public_ip: str
    vtep_mac: str | None  # vxlan's flannel.1 MAC; host-gw has none
    backend: str = "vxlan"

    @property
    def key_name(self) -> str:
        return f"{self.subnet.network_address}-{self.subnet.prefixlen}"

    @property
    def gateway(self) -> str:
        return str(self.subnet.network_address)

    def to_json(self) -> str:
        """flannel v0.7's lease value, byte for byte (Go's json.Marshal: no spaces; host-gw
        has no BackendData, which LeaseAttrs omits when empty)."""
        value: dict = {"PublicIP": self.public_ip, "BackendType": self.backend}
        if self.vtep_mac is not None:
            value["BackendData"] = {"VtepMAC": self.vtep_mac}
        return json.dumps(value, separators=(",", ":"))

    @classmethod
    def parse(cls, key: str, value: bytes | str) -> Lease:
        net, plen = key.rsplit("/", 1)[1].split("-")
        data = json.loads(value)
        backend = data.get("BackendType", "vxlan")
        mac = data["BackendData"]["VtepMAC"] if backend == "vxlan" else None
        try:  # from an int: parsing the text cost twice as much, for every lease event
            start = int.from_bytes(socket.inet_pton(socket.AF_INET, net), "big")
        except OSError:
            raise ValueError(f"not an IPv4 address: {net!r}") from None
        return cls(IPv4Network((start, int(plen))), data["PublicIP"], mac, backend)


def free_subnets(config: dict, taken: set[IPv4Network], limit: int = 100) -> list[IPv4Network]:
    """Up to `limit` free subnets from SubnetMin to SubnetMax, as flannel picks among them."""
    network = IPv4Network(config["Network"])
    plen = int(config.get("SubnetLen", 24))
    size = 1 << (32 - plen)
    lo = int(IPv4Address(config.get("SubnetMin", str(network.network_address + size))))
    hi = int(IPv4Address(config.get("SubnetMax", str(network.broadcast_address + 1 - size))))
    free = []
    for start in range(lo, hi + 1, size):
        net = IPv4Network(f"{IPv4Address(start)}/{plen}")
        if net not in taken:
            free.append(net)
            if len(free) == limit:
                break
    return free


_second = [-1, ""]  # the last whole second logged, as HH:MM:SS (UTC)


def log(event: str, **fields: object) -> None:
    now = time.time()
    whole = int(now)
    if whole != _second[0]:  # strftime once a second: a datetime a line cost 20 us here
        _second[:] = [whole, time.strftime("%H:%M:%S", time.gmtime(whole))]
    detail = " ".join(f"{k}={v}" for k, v in fields.items())
    sys.stdout.write(f"{_second[1]}.{int((now - whole) * 1000):03d} {event:<16} {detail}\n")
    sys.stdout.flush()


class Agent:
    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
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
        underlay interface (its routes go out through it)."""
        self.backend = config.get("Backend", {}).get("Type", "vxlan")
        if self.backend == "vxlan":
            log("backend", type="vxlan", mode=self.cfg.mode)
            self.create_device(config)
            return
        if self.backend != "host-gw":
            raise RuntimeError(f"backend {self.backend!r} is not supported (vxlan, host-gw)")
        under = self._underlay()
        self.device, self.ifindex, self.mac = self.cfg.iface, under.index, None
        self.mtu = under.mtu
        log("backend", type="host-gw", dev=self.cfg.iface, mtu=self.mtu)

    def _underlay(self) -> netlink.Link:
        under = netlink.get_link(None, ifname=self.cfg.iface)
        if under is None:
            raise RuntimeError(f"underlay interface {self.cfg.iface} not found")
        return under

    def create_device(self, config: dict) -> None:
        backend = config.get("Backend", {})
        vni = int(backend.get("VNI", 1))
        port = int(backend.get("Port", 8472))
        self.device = f"flannel.{vni}"
        under = self._underlay()
        mtu = under.mtu - VXLAN_OVERHEAD
        found = netlink.get_link(None, ifname=self.device)
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
            found = netlink.get_link(None, ifname=self.device)
        self.ifindex = found.index
        self.mac = found.mac
        self.mtu = mtu

    def _device_matches(self, link: netlink.Link, vni: int, port: int) -> bool:
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
            lease = Lease(subnet, self.cfg.public_ip, self.mac, self.backend)
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

    def configure_device(self, lease: Lease) -> None:
        plen = self.network.prefixlen if self.cfg.mode == "miss" else 32
        want = (lease.gateway, plen)
        have = netlink.addresses(None, self.ifindex)
        batch = netlink.Batch(None)
        for addr, prefixlen in have:
            if (addr, prefixlen) != want:
                batch.address(self.ifindex, self.device, f"{addr}/{prefixlen}", delete=True)
        if want not in have:
            batch.address(self.ifindex, self.device, f"{lease.gateway}/{plen}")
        if self.cfg.mode == "miss":
            # L3 misses come from app_solicit (the l3miss flag is not what flannel used)
            with open(f"/proc/sys/net/ipv4/neigh/{self.device}/app_solicit", "w") as f:
                f.write("3")
        batch.link_up(self.ifindex, self.device)
        batch.send()
        log(
            "device-ready",
            dev=self.device,
            address=f"{lease.gateway}/{plen}",
            mac=self.mac,
            app_solicit=3 if self.cfg.mode == "miss" else 0,
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

    def setup_ipmasq(self, lease: Lease) -> None:
        """flanneld --ip-masq: its POSTROUTING rules, in place before docker (which waits for
        subnet.env) appends its own MASQUERADE after them."""
        net = str(self.network)
        check = [
            "iptables",
            "--wait",
            "-t",
            "nat",
            "-C",
            "POSTROUTING",
            "-s",
            net,
            "-d",
            net,
            "-j",
            "RETURN",
        ]
        if subprocess.run(check, capture_output=True).returncode == 0:
            log("ipmasq", rules="already present")
            return
        text = flannel_ipmasq_rules(net, str(lease.subnet))
        proc = subprocess.run(
            ["iptables-restore", "--noflush", "--wait"], input=text, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise RuntimeError(f"ip-masq rules refused: {proc.stderr.strip()}")
        log("ipmasq", rules=f"-s {net} -d {net} -j RETURN, then MASQUERADE (4 rules)")

    # ------------------------------------------------------------ remote leases

    def leases_added(self, leases: dict[str, Lease]) -> None:
        """Program every new lease's entries in one netlink batch: a node of a 50-node lab
        writes 49 FDB entries at start, and a request a time would cost a second of CPU."""
        with self._sync:
            batch = netlink.Batch(None)
            for key, lease in leases.items():
                self._lease_added(key, lease, batch)
            batch.send()

    def _lease_added(self, key: str, lease: Lease, batch: netlink.Batch) -> None:
        if lease.public_ip == self.cfg.public_ip or self.remote.get(key) == lease:
            return
        if lease.backend != self.backend:  # as flanneld does: another backend's lease
            log("lease-ignored", key=key, reason=f"backend {lease.backend}, not {self.backend}")
            return
        self.remote[key] = lease
        if self.backend == "host-gw":
            log("lease-seen", subnet=lease.subnet, public_ip=lease.public_ip)
            batch.gateway_route(str(lease.subnet), lease.public_ip, self.ifindex, PROTO_BOOT)
            log("route-written", entry=f"{lease.subnet} via {lease.public_ip} dev {self.device}")
            return
        log("lease-seen", subnet=lease.subnet, public_ip=lease.public_ip, vtep_mac=lease.vtep_mac)
        batch.fdb(self.ifindex, lease.vtep_mac, lease.public_ip)
        log("fdb-written", entry=f"{lease.vtep_mac} dst {lease.public_ip} self permanent")
        if self.cfg.mode == "static":
            batch.neigh(self.ifindex, lease.gateway, lease.vtep_mac)
            log("neigh-written", entry=f"{lease.gateway} lladdr {lease.vtep_mac} PERMANENT")
            batch.gateway_route(
                str(lease.subnet), lease.gateway, self.ifindex, PROTO_BOOT, onlink=True
            )
            log(
                "route-written",
                entry=f"{lease.subnet} via {lease.gateway} dev {self.device} onlink",
            )

    def lease_removed(self, key: str) -> None:
        with self._sync:
            self._lease_removed(key)

    def _lease_removed(self, key: str) -> None:
        lease = self.remote.pop(key, None)
        if lease is None:
            return
        log("lease-gone", subnet=lease.subnet, public_ip=lease.public_ip)
        if self.backend == "host-gw":
            self._quietly(
                lambda b: b.gateway_route(
                    str(lease.subnet), lease.public_ip, self.ifindex, PROTO_BOOT, delete=True
                )
            )
            log("route-removed", entry=f"{lease.subnet} via {lease.public_ip}")
            return
        if self.cfg.mode == "static":
            self._quietly(
                lambda b: b.gateway_route(
                    str(lease.subnet),
                    lease.gateway,
                    self.ifindex,
                    PROTO_BOOT,
                    onlink=True,
                    delete=True,
                )
            )
        for dst, lladdr in netlink.neighbours(None, self.ifindex):
            if lladdr == lease.vtep_mac:
                self._quietly(
                    lambda b, dst=dst: b.neigh(self.ifindex, dst, lease.vtep_mac, delete=True)
                )
                log("neigh-removed", dst=dst)
        self._quietly(lambda b: b.fdb(self.ifindex, lease.vtep_mac, lease.public_ip, delete=True))
        log("fdb-removed", entry=f"{lease.vtep_mac} dst {lease.public_ip}")

    @staticmethod
    def _quietly(request: Callable[[netlink.Batch], None]) -> None:
        """One removal on its own: an entry already gone must not stop the others."""
        batch = netlink.Batch(None)
        request(batch)
        try:
            batch.send()
        except Exception as exc:  # noqa: BLE001 - the entry may already be gone
            log("cleanup-skipped", reason=exc)

    def watch(self, revision: int) -> None:
        """Lease events from etcd, from the revision after the initial listing on; when etcd
        goes away, the programmed entries stay and the agent reconnects and catches up."""
        while True:
            try:
                self.store.watch(self.key(""), revision, self.changed)
                log("watch-ended", action="reconnecting")
            except Exception as exc:  # noqa: BLE001 - etcd down: keep what is programmed
                log("watch-lost", reason=type(exc).__name__, action="retrying")
            while True:
                time.sleep(RETRY)
                try:
                    leases, revision = self.read_leases()
                except Exception:  # noqa: BLE001 - still down
                    continue
                self.reconcile(leases)
                log("watch-resumed", revision=revision)
                break

    def resync(self) -> None:
        """Every few seconds, what etcd holds is compared with what was programmed: a watch
        that silently lost its stream (an etcd restart) cannot leave the node behind."""
        while True:
            time.sleep(RESYNC)
            try:
                leases, _ = self.read_leases()
            except Exception:  # noqa: BLE001 - etcd away: keep going with what is programmed
                continue
            self.reconcile(leases)

    def reconcile(self, leases: dict[str, Lease]) -> None:
        with self._sync:
            for key in [k for k in self.remote if k not in leases]:
                self.lease_removed(key)
            self.leases_added({k: v for k, v in leases.items() if self.remote.get(k) != v})

    def changed(self, events: list[tuple[str, bytes | None]]) -> None:
        """Watch events, in order (a value of None: the key was deleted); the leases added
        in a row are programmed in one batch."""
        with self._sync:
            added: dict[str, Lease] = {}
            for key, value in events:
                if value is None:
                    self.leases_added(added)
                    added = {}
                    self._lease_removed(key)
                    continue
                try:
                    added[key] = Lease.parse(key, value)
                except (ValueError, KeyError):
                    log("lease-ignored", key=key, reason="unparsable")
            self.leases_added(added)

    def renew(self) -> None:
        """Keep the lease: refresh it an hour before the 24 h TTL runs out."""
        every = max(self.cfg.lease_ttl - RENEW_MARGIN, self.cfg.lease_ttl / 2)
        wait = every
        while not threading.Event().wait(wait):
            try:
                self.store.refresh(
                    self.key(self.lease.key_name), self.lease.to_json(), self.cfg.lease_ttl
                )
                log("lease-renewed", subnet=self.lease.subnet, ttl=self.cfg.lease_ttl)
                wait = every
            except Exception as exc:  # noqa: BLE001 - etcd away: try again sooner
                log("renew-failed", reason=type(exc).__name__)
                wait = min(every, 5)

    # ------------------------------------------------------------ L3 misses

    def serve_misses(self) -> None:
        for msg in netlink.neighbour_requests():
            if msg["ifindex"] == self.ifindex:
                self.handle_miss(msg)

    def handle_miss(self, msg) -> None:
        dst, lladdr = msg.get_attr("NDA_DST"), msg.get_attr("NDA_LLADDR")
        # An L3 miss names a destination; a probe of a stale entry also carries its old lladdr
        if msg["family"] == socket.AF_INET and dst and IPv4Address(dst) in self.network:
            self.l3_miss(dst)
        elif lladdr:
            log("l2-miss", lladdr=lladdr, note="FDB entries come from lease events")

    def l3_miss(self, dst: str) -> None:
        started = time.perf_counter()
        log("l3-miss", dst=dst, dev=self.device)
        try:
            leases, _ = self.read_leases()
        except Exception as exc:  # noqa: BLE001 - etcd away: answer from the leases seen
            log("etcd-unavailable", reason=type(exc).__name__, answer="from the leases seen")
            leases = dict(self.remote)
        match = next(
            (
                lease
                for lease in leases.values()
                if IPv4Address(dst) in lease.subnet and lease.public_ip != self.cfg.public_ip
            ),
            None,
        )
        if match is None:
            log("etcd-lookup", dst=dst, result="no lease covers it")
            return
        log(
            "etcd-lookup",
            dst=dst,
            key=self.key(match.key_name),
            vtep_mac=match.vtep_mac,
            public_ip=match.public_ip,
        )
        batch = netlink.Batch(None)
        batch.neigh(self.ifindex, dst, match.vtep_mac, state=NUD_REACHABLE)
        batch.send()
        log(
            "neigh-written",
            entry=f"{dst} dev {self.device} lladdr {match.vtep_mac} REACHABLE",
            ms=f"{(time.perf_counter() - started) * 1000:.1f}",
        )

    # ------------------------------------------------------------ main

    def run(self) -> int:
        log(
            "starting",
            node=self.cfg.node,
            public_ip=self.cfg.public_ip,
            iface=self.cfg.iface,
            etcd=f"{self.cfg.etcd_host}:{self.cfg.etcd_port}",
        )
        config = self.wait_config()
        self.prepare_backend(config)
        self.lease, leases, revision = self.acquire_lease(config)
        if self.backend == "vxlan":
            self.configure_device(self.lease)
        if self.cfg.ipmasq:
            self.setup_ipmasq(self.lease)
        # flanneld's order: subnet.env as soon as the lease is held (docker waits for it),
        # then the other nodes' leases
        self.write_subnet_env(self.lease)
        self.leases_added(leases)
        threading.Thread(target=self.watch, args=(revision,), daemon=True).start()
        threading.Thread(target=self.resync, daemon=True).start()
        threading.Thread(target=self.renew, daemon=True).start()
        if self.backend == "vxlan" and self.cfg.mode == "miss":
            self.serve_misses()
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
    netlink.addresses(node_netns, 1)


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
