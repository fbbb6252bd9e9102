"""Answering the kernel's neighbour requests (the "miss" era, v0.5-v0.8): app_solicit=3 on
flannel.1 makes the kernel ask user space for a destination it has no neighbour for (an L3
miss), and the agent writes that neighbour REACHABLE with the VTEP MAC of the lease that
covers it, taken from the leases the etcd watch keeps in memory."""

from __future__ import annotations

import socket
import time
from ipaddress import IPv4Address

from labnet.daemons.flannel.lease import log
from labnet.kernel import netlink, query

NUD_REACHABLE = 0x02


class MissAnswerer:
    """Part of the Agent: uses its network, device, ifindex, remote, _sync and key()."""

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
        """As flanneld does: the answer comes from the leases its watch has already put in
        memory, so a miss costs etcd nothing (the article says "looked up in etcd": the
        table is etcd's content, read when the leases changed)."""
        started = time.perf_counter()
        log("l3-miss", dst=dst, dev=self.device)
        with self._sync:
            match = next(
                (lease for lease in self.remote.values() if IPv4Address(dst) in lease.subnet),
                None,
            )
        if match is None:
            log("lease-lookup", dst=dst, result="no lease covers it", source="leases in memory")
            return
        log(
            "lease-lookup",
            dst=dst,
            key=self.key(match.key_name),
            vtep_mac=match.vtep_mac,
            public_ip=match.public_ip,
            source="leases in memory (filled by the etcd watch)",
        )
        batch = netlink.Batch(None)
        batch.neigh(self.ifindex, dst, match.vtep_mac, state=NUD_REACHABLE)
        batch.send()
        log(
            "neigh-written",
            entry=f"{dst} dev {self.device} lladdr {match.vtep_mac} REACHABLE",
            ms=f"{(time.perf_counter() - started) * 1000:.1f}",
        )
