"""flannel's udp backend: the TUN device flannel0, and the agent itself as the data path.

As flannel's backend/udp does it (v0.6.2's network.go and its C proxy, proxy.c):
- flannel0 is a TUN device (IFF_TUN | IFF_NO_PI: bare IP packets, no packet-information
  header), opened from /dev/net/tun inside the node's namespace. It lives as long as the
  agent holds it open: when the agent stops, flannel0 and its route go with it.
- Its MTU is the underlay's less 28 (the outer IP and UDP headers); its address <subnet>.0
  with the network's prefix up to v0.10, so the kernel's own route takes the whole network
  to it, and from v0.11 <subnet>.0/32 plus flannel's route `<network> dev flannel0`.
- A UDP socket is bound to <PublicIP>:<Port> (8285 unless the config says otherwise).
- Each remote lease is one entry of the proxy's table, subnet -> (PublicIP, Port). Nothing
  else: no FDB entry, no neighbour, no route; the kernel knows nothing of the other nodes.
- The loop polls both descriptors. A packet read from flannel0 is sent as one datagram to
  the node whose lease covers its destination (an ICMP net unreachable is written back when
  none does); a datagram received on the port is written to flannel0. Both ways the TTL is
  decremented (proxy.c's decrement_ttl), so a ping crossing two nodes shows two more hops
  than over vxlan.
"""

from __future__ import annotations

import fcntl
import os
import select
import socket
import struct
from ipaddress import IPv4Network

from labnet.daemons.flannel.lease import Lease, log
from labnet.kernel import query
from labnet.model.versions import UDP_NETWORK_PREFIX

DEFAULT_PORT = 8285
ENCAP_OVERHEAD = 28  # 20 bytes of IP header + 8 of UDP header
TUN_NAME = b"flannel%d"  # the kernel picks the first free number: flannel0
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IPPROTO_ICMP = 1
MIN_PACKET = 20  # an IP header: anything shorter is dropped, as proxy.c does

_ADDR = struct.Struct("!I")


def open_tun(name: bytes = TUN_NAME) -> tuple[int, str]:
    """A TUN device in the caller's network namespace: its descriptor and the name the
    kernel gave it (pkg/ip/tun.go OpenTun)."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        ifr = fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name, IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    os.set_blocking(fd, False)  # proxy.c: fcntl(tun, F_SETFL, O_NONBLOCK)
    return fd, ifr[:16].rstrip(b"\0").decode()


def tun_prefix(release: str, network: IPv4Network) -> int:
    """flannel0's prefix length: the network's up to v0.10, 32 from v0.11."""
    return network.prefixlen if release in UDP_NETWORK_PREFIX else 32


def checksum(data: bytes | bytearray | memoryview) -> int:
    """The Internet checksum (RFC 1071) of data."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def decrement_ttl(buf: bytearray) -> bool:
    """The IP header's TTL less one and its checksum patched (RFC 1624); False when the TTL
    runs out and the packet is to be dropped."""
    ttl = buf[8]
    if ttl <= 1:
        return False
    buf[8] = ttl - 1
    check = ((buf[10] << 8) | buf[11]) + 0x100
    check = (check & 0xFFFF) + (check >> 16)
    buf[10], buf[11] = check >> 8, check & 0xFF
    return True


def net_unreachable(tun_addr: str, offender: bytes) -> bytes | None:
    """proxy.c's send_net_unreachable: ICMP destination unreachable (net), TTL 8, from
    flannel0's address to the sender, quoting the IP header and 8 bytes of the packet; None
    for an ICMP packet (no ICMP about ICMP) or a fragment after the first."""
    ihl = (offender[0] & 0x0F) * 4
    if offender[9] == IPPROTO_ICMP or (struct.unpack_from("!H", offender, 6)[0] & 0x1FFF):
        return None
    quoted = offender[: ihl + 8]
    icmp = bytearray(struct.pack("!BBHI", 3, 0, 0, 0) + quoted)
    icmp[2:4] = struct.pack("!H", checksum(icmp))
    header = bytearray(
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(icmp),
            0,
            0,
            8,
            IPPROTO_ICMP,
            0,
            socket.inet_aton(tun_addr),
            offender[12:16],
        )
    )
    header[10:12] = struct.pack("!H", checksum(header))
    return bytes(header + icmp)


class UdpProxy:
    """Part of the Agent: flannel0, the port and the proxy's table. Uses the agent's cfg,
    release, network, _sync; sets device, ifindex, mac, mtu."""

    def prepare_udp(self, config: dict) -> None:
        under = self._underlay()
        self.udp_port = int(config.get("Backend", {}).get("Port", DEFAULT_PORT))
        self.mac = None
        self.mtu = under.mtu - ENCAP_OVERHEAD
        self.proxy_routes: dict[int, tuple[str, int]] = {}  # subnet -> (PublicIP, Port)
        self.proxy_masks: tuple[int, ...] = ()
        log("backend", type="udp", port=self.udp_port, mtu=self.mtu)

    def open_tun(self, lease: Lease) -> None:
        """flannel0 and the port, as RegisterNetwork does once the lease is held."""
        self.tun_fd, self.device = open_tun()
        self.ifindex = query.get_link(None, ifname=self.device).index
        log("device-created", dev=self.device, kind="tun", flags="IFF_TUN|IFF_NO_PI")
        self.configure_tun(lease)
        self.udp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp_sock.bind((self.cfg.public_ip, self.udp_port))
        self.udp_sock.setblocking(False)
        log("listening", udp=f"{self.cfg.public_ip}:{self.udp_port}")

    def configure_tun(self, lease: Lease) -> None:
        """configureIface: the address (the old one goes when a new lease replaces it), the
        MTU, up, and from v0.11 the route to the network."""
        plen = tun_prefix(self.release.version, self.network)
        batch = self.address_batch(lease.gateway, plen)
        batch.link_mtu(self.ifindex, self.device, self.mtu)
        self.bring_up(
            batch,
            lease,
            plen,
            plen == 32,
            mtu=self.mtu,
            route=f"{self.network} dev {self.device}"
            + (" (flannel's)" if plen == 32 else " (the kernel's, from the address)"),
        )

    # ------------------------------------------------------------ the proxy's table

    def proxy_route_set(self, lease: Lease) -> None:
        """setRoute: a new table, swapped in whole: the loop reads it without a lock."""
        routes = dict(self.proxy_routes)
        routes[int(lease.subnet.network_address)] = (lease.public_ip, self.udp_port)
        self._swap(routes, lease.subnet.prefixlen)
        log("udp-route-added", entry=f"{lease.subnet} -> {lease.public_ip}:{self.udp_port}")

    def proxy_route_del(self, lease: Lease) -> None:
        routes = dict(self.proxy_routes)
        routes.pop(int(lease.subnet.network_address), None)
        self._swap(routes, lease.subnet.prefixlen)
        log("udp-route-removed", entry=str(lease.subnet))

    def _swap(self, routes: dict[int, tuple[str, int]], prefixlen: int) -> None:
        masks = set(self.proxy_masks) | {(0xFFFFFFFF << (32 - prefixlen)) & 0xFFFFFFFF}
        self.proxy_masks = tuple(sorted(masks, reverse=True))  # the longest prefix first
        self.proxy_routes = routes

    def next_hop(self, dst: int) -> tuple[str, int] | None:
        routes = self.proxy_routes
        for mask in self.proxy_masks:
            hop = routes.get(dst & mask)
            if hop is not None:
                return hop
        return None

    # ------------------------------------------------------------ the data path

    def serve_tun(self) -> None:
        """run_proxy: poll, then move packets both ways until neither side has one (a read
        that finds nothing costs less than another poll), then poll again."""
        tun, sock = self.tun_fd, self.udp_sock
        buf = bytearray(self.mtu)  # proxy.c reads into a buffer of flannel0's MTU
        view = memoryview(buf)
        readv, write, recv_into = os.readv, os.write, sock.recv_into
        unpack_dst = _ADDR.unpack_from
        poller = select.poll()
        poller.register(tun, select.POLLIN)
        poller.register(sock, select.POLLIN)
        log("proxy-running", tun=self.device, udp=f"{self.cfg.public_ip}:{self.udp_port}")
        while True:
            poller.poll()
            busy = True
            while busy:
                busy = False
                try:
                    n = readv(tun, [buf])
                except BlockingIOError:
                    n = 0
                if n >= MIN_PACKET:  # flannel0 -> UDP to the lease's node
                    busy = True
                    hop = self.next_hop(unpack_dst(buf, 16)[0])
                    if hop is None:
                        self._unreachable(bytes(view[:n]))
                    elif decrement_ttl(buf):
                        try:
                            sock.sendto(view[:n], hop)
                        except OSError as exc:
                            self._dropped("udp-send", exc, hop)
                try:
                    n = recv_into(buf)
                except BlockingIOError:
                    n = 0
                except OSError as exc:  # an ICMP error queued on the socket
                    self._dropped("udp-recv", exc, None)
                    n = 0
                if n >= MIN_PACKET:  # UDP -> flannel0, for the kernel to route
                    busy = True
                    if decrement_ttl(buf):
                        try:
                            write(tun, view[:n])
                        except OSError as exc:
                            self._dropped("tun-write", exc, None)

    def _unreachable(self, packet: bytes) -> None:
        reply = net_unreachable(self.lease.gateway, packet)
        dst = socket.inet_ntoa(packet[16:20])
        if not getattr(self, "_unrouted", None) == dst:  # once a destination, not a packet
            self._unrouted = dst
            log("no-lease", dst=dst, action="ICMP net unreachable" if reply else "dropped")
        if reply:
            try:
                os.write(self.tun_fd, reply)
            except OSError as exc:
                self._dropped("tun-write", exc, None)

    def _dropped(self, where: str, exc: OSError, hop: tuple[str, int] | None) -> None:
        """A packet lost to an error; logged when the error is new, not for every packet."""
        key = (where, exc.errno)
        if getattr(self, "_last_drop", None) != key:
            self._last_drop = key
            log("packet-dropped", where=where, error=os.strerror(exc.errno or 0), to=hop or "-")
