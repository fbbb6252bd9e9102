"""Batched rtnetlink: all of one namespace's requests sent in one burst, acks read back.

Requests (kernel/messages.py) are written back to back on a plain netlink socket opened
inside the namespace, and each ack, matched by its sequence number, is checked. The kernel
handles the messages of one send in order, so a batch can create a bridge and then its
ports, as long as the ports name the bridge by its planned ifindex. pyroute2's IPRoute
sends one request at a time through its asyncio machinery, 5-10 ms each; a lab of 500 pods
makes thousands.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from pyroute2.netlink import (
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_EXCL,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
)
from pyroute2.netlink.rtnl import (
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_DELNEIGH,
    RTM_DELROUTE,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWNEIGH,
    RTM_NEWROUTE,
)

from labnet.errors import LabFailure
from labnet.kernel import crashpoint, netns
from labnet.kernel import messages as msgs

NETLINK_ROUTE = 0
CREATE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
CHANGE = NLM_F_REQUEST | NLM_F_ACK
REPLACE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
NUD_PERMANENT = msgs.NUD_PERMANENT
SOL_NETLINK, NETLINK_GET_STRICT_CHK = 270, 12
SEND_CHUNK = 64 * 1024  # under the socket's default send buffer
# seconds a request waits for the kernel's answer: a lost ack ends in a clear error, not a
# hang (a whole namespace's batch is answered in milliseconds)
ANSWER_TIMEOUT = 10.0
NLMSGHDR = struct.Struct("=IHHII")


def _socket(ns: str | None) -> socket.socket:
    """A netlink socket in namespace `ns` (None: the caller's own, as in a node's agent)."""
    with netns.entered(ns) if ns else contextlib.nullcontext():
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    sock.bind((0, 0))
    sock.settimeout(ANSWER_TIMEOUT)
    return sock


def _receive(sock: socket.socket, ns: str | None) -> bytes:
    try:
        return sock.recv(1 << 16)
    except TimeoutError:
        raise LabFailure(
            f"netlink: no answer from the kernel in {ns or 'this namespace'} "
            f"within {ANSWER_TIMEOUT:.0f} s",
            "the machine may be overloaded; try again, or see dmesg",
        ) from None


def messages(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(type, sequence number, the message's bytes) for each message in one read."""
    offset = 0
    while offset + NLMSGHDR.size <= len(data):
        length, msg_type, _, seq, _ = NLMSGHDR.unpack_from(data, offset)
        yield msg_type, seq, data[offset : offset + max(length, NLMSGHDR.size)]
        offset += max(length, NLMSGHDR.size)


def request(ns: str | None, msg, msg_type: int, dump: bool = False, strict: bool = False) -> list:
    """One request (a get, or a dump with `dump`), its replies decoded with the request's
    pyroute2 class. A refused get raises OSError with the kernel's errno. `strict` asks the
    kernel to check the request strictly, and so to honour the filters it carries."""
    replies = []
    for data in exchange(ns, msg, msg_type, dump, strict):
        reply = type(msg)(data)
        reply.decode()
        replies.append(reply)
    return replies


def exchange(ns: str | None, msg, msg_type: int, dump: bool, strict: bool) -> Iterator[bytes]:
    """query()'s request and its replies, each as the bytes the kernel sent."""
    msg["header"]["type"] = msg_type
    msg["header"]["flags"] = NLM_F_REQUEST | (NLM_F_DUMP if dump else 0)
    msg["header"]["sequence_number"] = 1
    msg.encode()
    with _socket(ns) as sock:
        if strict:
            sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
        sock.send(bytes(msg.data[: msg["header"]["length"]]))
        while True:
            for kind, _, data in messages(_receive(sock, ns)):
                if kind == NLMSG_DONE:
                    return
                if kind == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", data, NLMSGHDR.size)
                    if code:
                        raise OSError(-code, os.strerror(-code))
                    return
                yield data
                if not dump:
                    return


def _change(add: int, remove: int, delete: bool) -> tuple[int, int]:
    """(message type, flags): replace the entry, or delete it."""
    return (remove, CHANGE) if delete else (add, REPLACE)


@dataclass
class Batch:
    """Requests for one namespace, in the order the kernel must handle them."""

    netns: str | None
    messages: list[tuple[str, bytes]] = field(default_factory=list)  # (what, encoded)
    peer_fds: dict[str, int] = field(default_factory=dict)  # namespaces veth peers go into

    def _add(self, what: str, data: bytes, msg_type: int, flags: int) -> None:
        """One encoded request, with its type, flags and this batch's next sequence number."""
        out = bytearray(data)
        length, _, _, _, pid = NLMSGHDR.unpack_from(out)
        NLMSGHDR.pack_into(out, 0, length, msg_type, flags, len(self.messages) + 1, pid)
        self.messages.append((what, bytes(out)))

    def link_up(self, index: int, ifname: str, alias: str | None = None) -> None:
        self._add(f"set {ifname} up", msgs.link_up(index, alias), RTM_NEWLINK, CHANGE)

    def link_mtu(self, index: int, ifname: str, mtu: int) -> None:
        """`ip link set IFNAME mtu MTU`."""
        self._add(f"set {ifname} mtu {mtu}", msgs.link_mtu(index, mtu), RTM_NEWLINK, CHANGE)

    def link_address(self, index: int, ifname: str, mac: str) -> None:
        """`ip link set IFNAME address MAC`."""
        data = msgs.link_address(index, mac)
        self._add(f"set {ifname} address {mac}", data, RTM_NEWLINK, CHANGE)

    def bridge(self, ifname: str, index: int, mtu: int) -> None:
        self._add(f"add bridge {ifname}", msgs.bridge(ifname, index, mtu), RTM_NEWLINK, CREATE)

    def vxlan(self, ifname: str, vni: int, under: int, local: str, port: int, mtu: int) -> None:
        """flanneld's device, down: it is set up once it has its address."""
        data = msgs.vxlan(ifname, vni, under, local, port, mtu)
        self._add(f"add vxlan {ifname} id {vni}", data, RTM_NEWLINK, CREATE)

    def link_del(self, index: int, ifname: str) -> None:
        self._add(f"delete {ifname}", msgs.link_del(index), RTM_DELLINK, CHANGE)

    def veth(
        self,
        ifname: str,
        index: int,
        mtu: int,
        master: int | None,
        peer_ifname: str,
        peer_index: int,
        peer_netns: str,
    ) -> None:
        """This end up; the peer is created directly in its namespace with its index, and set
        up by its own namespace's batch (veth refuses to open a peer before the pair exists)."""
        if peer_netns not in self.peer_fds:
            self.peer_fds[peer_netns] = os.open(netns.path(peer_netns), os.O_RDONLY)
        fd = self.peer_fds[peer_netns]
        data = msgs.veth(ifname, index, mtu, master, peer_ifname, peer_index, fd)
        what = f"add veth {ifname} (peer {peer_ifname} in {peer_netns})"
        self._add(what, data, RTM_NEWLINK, CREATE)

    def hairpin(self, index: int, ifname: str) -> None:
        self._add(f"hairpin on {ifname}", msgs.hairpin(index), RTM_NEWLINK, CHANGE)

    def address(self, index: int, ifname: str, cidr: str, delete: bool = False) -> None:
        addr, plen = cidr.split("/")
        data = msgs.address(index, addr, int(plen))
        if delete:
            self._add(f"delete address {cidr} from {ifname}", data, RTM_DELADDR, CHANGE)
        else:
            self._add(f"add address {cidr} to {ifname}", data, RTM_NEWADDR, CREATE)

    def route(self, dst: str, gateway: str, oif: int, ifname: str, proto: int) -> None:
        """`ip route add DST via GW dev DEV` (DST may be `default`), refused if it exists."""
        data = msgs.route(dst, gateway, oif, proto)
        self._add(f"add route {dst} via {gateway} dev {ifname}", data, RTM_NEWROUTE, CREATE)

    def device_route(self, dst: str, oif: int, proto: int) -> None:
        """`ip route replace DST dev DEV`: a route on a link, without a gateway."""
        data = msgs.device_route(dst, oif, proto)
        self._add(f"route {dst} dev {oif}", data, *_change(RTM_NEWROUTE, RTM_DELROUTE, False))

    def fdb(self, index: int, mac: str, dst: str, delete: bool = False) -> None:
        """`bridge fdb replace MAC dev DEV dst DST self permanent` (what flannel writes)."""
        data = msgs.fdb(index, mac, dst)
        self._add(f"fdb {mac} dst {dst}", data, *_change(RTM_NEWNEIGH, RTM_DELNEIGH, delete))

    def neigh(
        self, index: int, dst: str, mac: str, state: int = NUD_PERMANENT, delete: bool = False
    ) -> None:
        """`ip neigh replace DST lladdr MAC dev DEV nud permanent` (or another state)."""
        data = msgs.neigh(index, dst, mac, state)
        what = f"neigh {dst} lladdr {mac}"
        self._add(what, data, *_change(RTM_NEWNEIGH, RTM_DELNEIGH, delete))

    def gateway_route(
        self,
        dst: str,
        gateway: str,
        oif: int,
        proto: int,
        onlink: bool = False,
        delete: bool = False,
    ) -> None:
        """`ip route replace DST via GW dev DEV [onlink]`: flannel's per-lease route (host-gw,
        and vxlan's static mode with onlink)."""
        data = msgs.route(dst, gateway, oif, proto, onlink)
        what = f"route {dst} via {gateway}" + (" onlink" if onlink else "")
        self._add(what, data, *_change(RTM_NEWROUTE, RTM_DELROUTE, delete))

    def send(self) -> None:
        """Send every request, then check every ack; the first refusal is raised. A batch
        without a namespace name goes to the caller's own namespace (a node's agent)."""
        try:
            if self.messages:
                with _socket(self.netns) as sock:
                    self._send_all(sock)
                    self._check_acks(sock)
                crashpoint.step(f"netlink batch of {len(self.messages)} in {self.netns}")
        finally:
            for fd in self.peer_fds.values():
                os.close(fd)
            self.peer_fds.clear()

    def _send_all(self, sock: socket.socket) -> None:
        chunk = bytearray()
        for _, data in self.messages:
            if len(chunk) + len(data) > SEND_CHUNK:
                sock.send(chunk)
                chunk = bytearray()
            chunk += data
        if chunk:
            sock.send(chunk)

    def _check_acks(self, sock: socket.socket) -> None:
        pending = set(range(1, len(self.messages) + 1))
        errors: dict[int, int] = {}
        while pending:
            for kind, seq, data in messages(_receive(sock, self.netns)):
                if kind == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", data, NLMSGHDR.size)
                    pending.discard(seq)
                    if code:
                        errors[seq] = -code
        if errors:
            seq = min(errors)
            what = self.messages[seq - 1][0]
            raise LabFailure(
                f"{self.netns or 'this namespace'}: {what}: {os.strerror(errors[seq])}"
            )
