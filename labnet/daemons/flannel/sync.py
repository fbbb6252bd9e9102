"""Keeping a node in step with the other nodes' leases: the entries each remote lease needs
(vxlan: the FDB entry, and in static mode the neighbour and the onlink route; host-gw: the
route via the node; udp: an entry of the agent's own table), from the initial listing, the
watch, a periodic resync, and the renewal of the node's own lease."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from labnet.daemons.flannel.lease import Lease, log
from labnet.kernel import netlink, query

PROTO_BOOT = 3
RENEW_MARGIN = 3600  # renewed 1 h before expiry
RETRY = 0.5  # seconds between tries to reach etcd again
# seconds between comparisons of etcd's leases with the programmed entries; at 5 s, fifty
# agents listing fifty leases cost etcd a tenth of a core in an idle lab
RESYNC = 30.0


class LeaseSync:
    """Part of the Agent: what it does with the other nodes' leases. Uses the agent's
    cfg, release, store, remote, backend, device, ifindex, lease, key() and read_leases()."""

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
        if self.backend == "udp":  # an entry of the agent's own table: the kernel gets none
            log("lease-seen", subnet=lease.subnet, public_ip=lease.public_ip)
            self.proxy_route_set(lease)
            return
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
        if self.backend == "udp":
            self.proxy_route_del(lease)
            return
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
        for dst, lladdr in query.neighbours(None, self.ifindex):
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
                    if key == self.key(self.lease.key_name):
                        self.lease_lost()
                    else:
                        self._lease_removed(key)
                    continue
                try:
                    added[key] = Lease.parse(key, value)
                except (ValueError, KeyError):
                    log("lease-ignored", key=key, reason="unparsable")
            self.leases_added(added)

    def lease_lost(self) -> None:
        """The node's own lease was deleted or expired: "Lease has been revoked". Up to v0.7
        flanneld takes a new lease (labnet: a pinned subnet again, else a free one at
        random); from v0.8 on it stops, and its supervisor (systemd, the DaemonSet) starts
        it again."""
        key = self.key(self.lease.key_name)
        if self.release.lost_lease == "exit":
            log("lease-revoked", key=key, action="exiting")
            log("fatal", error="Lease has been revoked. Shutting down daemon.")
            os._exit(1)
        log("lease-revoked", key=key, action="acquiring a lease again")
        self.lease, _, _ = self.acquire_lease(self.config)
        if self.backend == "vxlan":
            self.configure_device(self.lease)
        elif self.backend == "udp":
            self.configure_tun(self.lease)
        self.write_subnet_env(self.lease)

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
