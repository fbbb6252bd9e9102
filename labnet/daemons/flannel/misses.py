"""Answering the kernel's neighbour requests (the "miss" era, v0.5-v0.8): app_solicit=3 on
flannel.1 makes the kernel ask user space for a destination it has no neighbour for (an L3
miss), and the agent writes that neighbour REACHABLE with the VTEP MAC of the lease that
covers it."""

from __future__ import annotations

import socket
import time
from ipaddress import IPv4Address

from labnet.daemons.flannel.lease import log
from labnet.kernel import netlink, query

NUD_REACHABLE = 0x02


class MissAnswerer:
    """Part of the Agent: uses its cfg, network, device, ifindex, remote, key() and
    read_leases()."""

    def serve_misses(self) -> None:
        for msg in query.neighbour_requests():
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
