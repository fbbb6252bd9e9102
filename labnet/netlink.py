"""Batched rtnetlink: all of one namespace's requests sent in one burst, acks read back.

pyroute2's IPRoute costs about 8 ms to open and 5-10 ms a request on a slow machine (its
asyncio machinery around every message); a lab of 500 pods makes thousands. Here requests
are encoded with pyroute2's own message classes, written back to back on a plain netlink
socket opened inside the namespace, and each ack (matched by sequence number) is checked.
The kernel handles the messages of one send in order, so a batch can create a bridge and
then its ports, as long as the ports name the bridge by its (planned) ifindex.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from dataclasses import dataclass, field
from ipaddress import IPv4Network

from pyroute2.netlink import (
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
    NLMSG_ERROR,
)
from pyroute2.netlink.rtnl import (
    RTM_GETLINK,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWNEIGH,
    RTM_NEWROUTE,
)
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import IFF_UP, ifinfmsg
from pyroute2.netlink.rtnl.ndmsg import ndmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from . import netns
from .errors import LabFailure

NETLINK_ROUTE = 0
CREATE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
CHANGE = NLM_F_REQUEST | NLM_F_ACK
REPLACE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
AF_BRIDGE, NUD_PERMANENT, NTF_SELF, RTNH_F_ONLINK = 7, 0x80, 0x02, 0x04
RT_TABLE_MAIN, RTN_UNICAST, RT_SCOPE_UNIVERSE = 254, 1, 0
SEND_CHUNK = 64 * 1024  # under the socket's default send buffer
NLMSGHDR = struct.Struct("=IHHII")


def link_alias(ns: str, index: int) -> str | None:
    """IFLA_IFALIAS of one link (labnet's ownership mark on lo), by one RTM_GETLINK."""
    msg = ifinfmsg()
    msg["index"] = index
    msg["header"]["type"], msg["header"]["flags"] = RTM_GETLINK, NLM_F_REQUEST
    msg["header"]["sequence_number"] = 1
    msg.encode()
    with netns.entered(ns):
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    with sock:
        sock.bind((0, 0))
        sock.send(bytes(msg.data[: msg["header"]["length"]]))
        data = sock.recv(1 << 16)
    _, msg_type, _, _, _ = NLMSGHDR.unpack_from(data)
    if msg_type != RTM_NEWLINK:
        return None
    reply = ifinfmsg(data)
    reply.decode()
    return reply.get_attr("IFLA_IFALIAS")


@dataclass
class Batch:
    """Requests for one namespace, in the order the kernel must handle them."""

    netns: str | None
    messages: list[tuple[str, bytes]] = field(default_factory=list)  # (what, encoded)
    peer_fds: dict[str, int] = field(default_factory=dict)  # namespaces veth peers go into

    def _add(self, what: str, msg, msg_type: int, flags: int) -> None:
        msg["header"]["type"] = msg_type
        msg["header"]["flags"] = flags
        msg["header"]["sequence_number"] = len(self.messages) + 1
        msg.encode()
        self.messages.append((what, bytes(msg.data[: msg["header"]["length"]])))

    def link_up(self, index: int, ifname: str, alias: str | None = None) -> None:
        msg = ifinfmsg()
        msg["index"], msg["flags"], msg["change"] = index, IFF_UP, IFF_UP
        msg["attrs"] = [("IFLA_IFALIAS", alias)] if alias is not None else []
        self._add(f"set {ifname} up", msg, RTM_NEWLINK, CHANGE)

    def bridge(self, ifname: str, index: int, mtu: int) -> None:
        msg = ifinfmsg()
        msg["index"], msg["flags"], msg["change"] = index, IFF_UP, IFF_UP
        msg["attrs"] = [
            ("IFLA_IFNAME", ifname),
            ("IFLA_MTU", mtu),
            ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "bridge")]}),
        ]
        self._add(f"add bridge {ifname}", msg, RTM_NEWLINK, CREATE)

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
        peer = {
            "index": peer_index,
            "attrs": [
                ("IFLA_IFNAME", peer_ifname),
                ("IFLA_MTU", mtu),
                ("IFLA_NET_NS_FD", self.peer_fds[peer_netns]),
            ],
        }
        msg = ifinfmsg()
        msg["index"], msg["flags"], msg["change"] = index, IFF_UP, IFF_UP
        msg["attrs"] = [
            ("IFLA_IFNAME", ifname),
            ("IFLA_MTU", mtu),
            *([("IFLA_MASTER", master)] if master else []),
            (
                "IFLA_LINKINFO",
                {
                    "attrs": [
                        ("IFLA_INFO_KIND", "veth"),
                        ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", peer)]}),
                    ]
                },
            ),
        ]
        self._add(
            f"add veth {ifname} (peer {peer_ifname} in {peer_netns})", msg, RTM_NEWLINK, CREATE
        )

    def hairpin(self, index: int, ifname: str) -> None:
        """IFLA_BRPORT_MODE 1 on a bridge port: what `bridge link set dev X hairpin on` sends."""
        msg = ifinfmsg()
        msg["index"] = index
        msg["attrs"] = [
            (
                "IFLA_LINKINFO",
                {
                    "attrs": [
                        ("IFLA_INFO_SLAVE_KIND", "bridge"),
                        ("IFLA_INFO_SLAVE_DATA", {"attrs": [("IFLA_BRPORT_MODE", 1)]}),
                    ]
                },
            )
        ]
        self._add(f"hairpin on {ifname}", msg, RTM_NEWLINK, CHANGE)

    def address(self, index: int, ifname: str, cidr: str) -> None:
        addr, plen = cidr.split("/")
        msg = ifaddrmsg()
        msg["family"], msg["prefixlen"], msg["index"] = socket.AF_INET, int(plen), index
        msg["attrs"] = [("IFA_LOCAL", addr), ("IFA_ADDRESS", addr)]
        self._add(f"add address {cidr} to {ifname}", msg, RTM_NEWADDR, CREATE)

    def route(self, dst: str, gateway: str, oif: int, ifname: str, proto: int) -> None:
        msg = rtmsg()
        msg["family"], msg["table"], msg["proto"] = socket.AF_INET, RT_TABLE_MAIN, proto
        msg["scope"], msg["type"] = RT_SCOPE_UNIVERSE, RTN_UNICAST
        attrs = [("RTA_GATEWAY", gateway), ("RTA_OIF", oif)]
        if dst != "default":
            net = IPv4Network(dst)
            msg["dst_len"] = net.prefixlen
            attrs.insert(0, ("RTA_DST", str(net.network_address)))
        msg["attrs"] = attrs
        self._add(f"add route {dst} via {gateway} dev {ifname}", msg, RTM_NEWROUTE, CREATE)

    def fdb(self, index: int, mac: str, dst: str) -> None:
        """`bridge fdb replace MAC dev DEV dst DST self permanent` (what flannel writes)."""
        msg = ndmsg()
        msg["family"], msg["ifindex"] = AF_BRIDGE, index
        msg["state"], msg["flags"] = NUD_PERMANENT, NTF_SELF
        msg["attrs"] = [("NDA_LLADDR", mac), ("NDA_DST", dst)]
        self._add(f"fdb {mac} dst {dst}", msg, RTM_NEWNEIGH, REPLACE)

    def neigh(self, index: int, dst: str, mac: str) -> None:
        """`ip neigh replace DST lladdr MAC dev DEV nud permanent`."""
        msg = ndmsg()
        msg["family"], msg["ifindex"], msg["state"] = socket.AF_INET, index, NUD_PERMANENT
        msg["attrs"] = [("NDA_DST", dst), ("NDA_LLADDR", mac)]
        self._add(f"neigh {dst} lladdr {mac}", msg, RTM_NEWNEIGH, REPLACE)

    def onlink_route(self, dst: str, gateway: str, oif: int, proto: int) -> None:
        """`ip route replace DST via GW dev DEV onlink` (flannel's static-mode route)."""
        net = IPv4Network(dst)
        msg = rtmsg()
        msg["family"], msg["table"], msg["proto"] = socket.AF_INET, RT_TABLE_MAIN, proto
        msg["scope"], msg["type"], msg["flags"] = RT_SCOPE_UNIVERSE, RTN_UNICAST, RTNH_F_ONLINK
        msg["dst_len"] = net.prefixlen
        msg["attrs"] = [
            ("RTA_DST", str(net.network_address)),
            ("RTA_GATEWAY", gateway),
            ("RTA_OIF", oif),
        ]
        self._add(f"route {dst} via {gateway} onlink", msg, RTM_NEWROUTE, REPLACE)

    def send(self) -> None:
        """Send every request, then check every ack; the first refusal is raised. A batch
        without a namespace name goes to the caller's own namespace (a node's agent)."""
        try:
            if self.messages:
                with netns.entered(self.netns) if self.netns else contextlib.nullcontext():
                    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
                with sock:
                    sock.bind((0, 0))
                    self._send_all(sock)
                    self._check_acks(sock)
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
            data = sock.recv(1 << 16)
            offset = 0
            while offset + NLMSGHDR.size <= len(data):
                length, msg_type, _, seq, _ = NLMSGHDR.unpack_from(data, offset)
                if msg_type == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", data, offset + NLMSGHDR.size)
                    pending.discard(seq)
                    if code:
                        errors[seq] = -code
                offset += max(length, NLMSGHDR.size)
        if errors:
            seq = min(errors)
            what = self.messages[seq - 1][0]
            raise LabFailure(f"{self.netns}: {what}: {os.strerror(errors[seq])}")
