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
import errno
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Network

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
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_GETNEIGH,
    RTM_GETROUTE,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWNEIGH,
    RTM_NEWROUTE,
    RTMGRP_NEIGH,
)
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import IFF_UP, ifinfmsg
from pyroute2.netlink.rtnl.ndmsg import ndmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from labnet.errors import LabFailure
from labnet.kernel import netns
from labnet.kernel.nltemplate import IPV4, MAC, NAME, U8, U16, U32, Template, encode

NETLINK_ROUTE = 0
CREATE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
CHANGE = NLM_F_REQUEST | NLM_F_ACK
REPLACE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
AF_BRIDGE, NUD_PERMANENT, NTF_SELF, RTNH_F_ONLINK = 7, 0x80, 0x02, 0x04
RT_TABLE_MAIN, RTN_UNICAST, RT_SCOPE_UNIVERSE = 254, 1, 0
SOL_NETLINK, NETLINK_GET_STRICT_CHK = 270, 12
# what get_link and fdb_entries read by hand: the headers' sizes, the attributes' types
IFINFOMSG_SIZE, NDMSG_SIZE = 16, 12
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINKINFO, IFLA_IFALIAS = 1, 3, 4, 18, 20
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFLA_VXLAN_ID, IFLA_VXLAN_LOCAL, IFLA_VXLAN_PORT = 1, 4, 15
NDA_DST, NDA_LLADDR = 1, 2
SEND_CHUNK = 64 * 1024  # under the socket's default send buffer
NLMSGHDR = struct.Struct("=IHHII")
# A veth asked for no queue count gets one per possible CPU, then is cut down to one real
# queue while registered, which waits for an RCU grace period with the RTNL lock held: 6 ms a
# veth here, during which every other netlink change on the machine waits too. Asked for
# one queue, as `ip link add ... numtxqueues 1 numrxqueues 1`, it skips that (3.5 -> 1.6 ms).
VETH_QUEUES = [("IFLA_NUM_TX_QUEUES", 1), ("IFLA_NUM_RX_QUEUES", 1)]


def _socket(ns: str | None) -> socket.socket:
    """A netlink socket in namespace `ns` (None: the caller's own, as in a node's agent)."""
    with netns.entered(ns) if ns else contextlib.nullcontext():
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    sock.bind((0, 0))
    return sock


def _messages(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(type, sequence number, the message's bytes) for each message in one read."""
    offset = 0
    while offset + NLMSGHDR.size <= len(data):
        length, msg_type, _, seq, _ = NLMSGHDR.unpack_from(data, offset)
        yield msg_type, seq, data[offset : offset + max(length, NLMSGHDR.size)]
        offset += max(length, NLMSGHDR.size)


def query(ns: str | None, msg, msg_type: int, dump: bool = False, strict: bool = False) -> list:
    """One request (a get, or a dump with `dump`), its replies decoded with the request's
    pyroute2 class. A refused get raises OSError with the kernel's errno. `strict` asks the
    kernel to check the request strictly, and so to honour the filters it carries."""
    replies = []
    for data in _exchange(ns, msg, msg_type, dump, strict):
        reply = type(msg)(data)
        reply.decode()
        replies.append(reply)
    return replies


def _exchange(ns: str | None, msg, msg_type: int, dump: bool, strict: bool) -> Iterator[bytes]:
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
            for kind, _, data in _messages(sock.recv(1 << 16)):
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


def _attributes(data: bytes, offset: int) -> dict[int, bytes]:
    """type -> payload of the top-level attributes from `offset` on (after the header of a
    message's own kind)."""
    out = {}
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        out[kind & 0x3FFF] = data[offset + 4 : offset + length]  # without NLA_F_NESTED & co
        offset += (length + 3) & ~3
    return out


@dataclass(frozen=True)
class Link:
    """What labnet reads of a link (`ip -d link show DEV`)."""

    index: int
    ifname: str
    mtu: int
    mac: str | None
    alias: str | None
    kind: str | None  # IFLA_INFO_KIND: veth, bridge, vxlan; None for lo or eth0 of a host
    vxlan: tuple[int, int, str | None] | None  # (VNI, UDP port, local address)


def get_link(ns: str | None, index: int = 0, ifname: str | None = None) -> Link | None:
    """One link, by index or by name; None when there is none. Read by hand: pyroute2 took
    2 ms to decode a link's reply (its statistics, its IPv6 settings), and every agent and
    every `down` read some."""
    msg = ifinfmsg()
    msg["index"] = index
    msg["attrs"] = [("IFLA_IFNAME", ifname)] if ifname else []
    try:
        replies = list(_exchange(ns, msg, RTM_GETLINK, dump=False, strict=False))
    except OSError as exc:
        if exc.errno == errno.ENODEV:
            return None
        raise
    return link_of(replies[0]) if replies else None


def link_of(data: bytes) -> Link:
    """The Link in one RTM_NEWLINK message."""
    (index,) = struct.unpack_from("=i", data, NLMSGHDR.size + 4)
    attrs = _attributes(data, NLMSGHDR.size + IFINFOMSG_SIZE)
    info = _attributes(attrs.get(IFLA_LINKINFO, b""), 0)
    kind = _text(info.get(IFLA_INFO_KIND))
    vxlan = None
    if kind == "vxlan":
        vx = _attributes(info.get(IFLA_INFO_DATA, b""), 0)
        local = vx.get(IFLA_VXLAN_LOCAL)
        vxlan = (
            struct.unpack("=I", vx[IFLA_VXLAN_ID])[0],
            struct.unpack("!H", vx[IFLA_VXLAN_PORT])[0],  # network order, as on the wire
            socket.inet_ntoa(local) if local else None,
        )
    return Link(
        index,
        _text(attrs.get(IFLA_IFNAME)) or "",
        struct.unpack("=I", attrs[IFLA_MTU])[0],
        _mac(attrs.get(IFLA_ADDRESS)),
        _text(attrs.get(IFLA_IFALIAS)),
        kind,
        vxlan,
    )


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.rstrip(b"\0").decode()


def _mac(raw: bytes | None) -> str | None:
    return None if raw is None else ":".join(f"{b:02x}" for b in raw)


def link_alias(ns: str, index: int) -> str | None:
    """IFLA_IFALIAS of one link (labnet's ownership mark on lo), by one RTM_GETLINK."""
    link = get_link(ns, index)
    return link.alias if link is not None else None


def addresses(ns: str | None, index: int) -> list[tuple[str, int]]:
    """(address, prefix length) of each IPv4 address on one link."""
    return [(addr, plen) for i, addr, plen in all_addresses(ns) if i == index]


def neighbours(ns: str | None, index: int) -> list[tuple[str, str | None]]:
    """(address, lladdr) of each IPv4 neighbour entry on one link."""
    msg = ndmsg()
    msg["family"] = socket.AF_INET
    return [
        (n.get_attr("NDA_DST"), n.get_attr("NDA_LLADDR"))
        for n in _dump(ns, msg)
        if n["ifindex"] == index
    ]


def links(ns: str | None) -> dict[int, str]:
    """ifindex -> name of every link (`ip link`)."""
    return {link["index"]: link.get_attr("IFLA_IFNAME") for link in _dump(ns, ifinfmsg())}


def all_addresses(ns: str | None) -> list[tuple[int, str, int]]:
    """(ifindex, address, prefix length) of every IPv4 address (`ip -4 addr`)."""
    msg = ifaddrmsg()
    msg["family"] = socket.AF_INET
    return [(a["index"], a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in _dump(ns, msg)]


def fdb_entries(ns: str | None, index: int) -> list[tuple[str, str | None]]:
    """(lladdr, dst) of each FDB entry of one device (`bridge fdb show dev DEV`). The kernel
    filters by device: unfiltered, a node's dump also holds every docker0 port's entries
    (decoding them cost 2 s of a 50-node up). Read by hand, not decoded by pyroute2: `up`
    reads every node's back while it waits, 49 entries a node at 50 nodes (15 -> 4 ms a dump)."""
    msg = ndmsg()
    msg["family"], msg["ifindex"] = AF_BRIDGE, index
    replies = _exchange(ns, msg, RTM_GETNEIGH, dump=True, strict=True)
    return [entry for data in replies if (entry := fdb_entry(data, index)) is not None]


def fdb_entry(data: bytes, index: int) -> tuple[str | None, str | None] | None:
    """(lladdr, dst) of one RTM_NEWNEIGH message, None when it is another device's."""
    (ifindex,) = struct.unpack_from("=i", data, NLMSGHDR.size + 4)
    if ifindex != index:
        return None
    attrs = _attributes(data, NLMSGHDR.size + NDMSG_SIZE)
    lladdr, dst = attrs.get(NDA_LLADDR), attrs.get(NDA_DST)
    family = socket.AF_INET if dst is not None and len(dst) == 4 else socket.AF_INET6
    return _mac(lladdr), None if dst is None else socket.inet_ntop(family, dst)


def routes(ns: str | None) -> list[tuple[str | None, int, str | None]]:
    """(dst, prefix length, gateway) of each main-table IPv4 route (`ip route`)."""
    msg = rtmsg()
    msg["family"] = socket.AF_INET
    return [
        (r.get_attr("RTA_DST"), r["dst_len"], r.get_attr("RTA_GATEWAY"))
        for r in _dump(ns, msg)
        if (r.get_attr("RTA_TABLE") or r["table"]) == RT_TABLE_MAIN
    ]


_GET = {ifinfmsg: RTM_GETLINK, ifaddrmsg: RTM_GETADDR, ndmsg: RTM_GETNEIGH, rtmsg: RTM_GETROUTE}


def _dump(ns: str | None, msg) -> list:
    """Every object of the message's kind (links, addresses, neighbours, routes)."""
    return query(ns, msg, _GET[type(msg)], dump=True)


def neighbour_requests() -> Iterator:
    """The kernel's neighbour requests to user space (RTM_GETNEIGH: app_solicit's L3 and
    L2 misses), from this namespace, as pyroute2 ndmsg, forever."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind((0, RTMGRP_NEIGH))
    with sock:
        while True:
            try:
                data = sock.recv(1 << 16)
            except OSError as exc:  # ENOBUFS: events were dropped; the kernel asks again
                if exc.errno != errno.ENOBUFS:
                    raise
                continue
            for kind, _, raw in _messages(data):
                if kind == RTM_GETNEIGH:
                    msg = ndmsg(raw)
                    msg.decode()
                    yield msg


def _route_msg(dst: str | None, dst_len: int, gateway: str, oif: int, proto: int, flags: int):
    """A main-table IPv4 route via a gateway; `default` (dst None) has no RTA_DST."""
    msg = rtmsg()
    msg["family"], msg["table"], msg["proto"] = socket.AF_INET, RT_TABLE_MAIN, proto
    msg["scope"], msg["type"], msg["flags"] = RT_SCOPE_UNIVERSE, RTN_UNICAST, flags
    msg["dst_len"] = dst_len
    msg["attrs"] = [("RTA_GATEWAY", gateway), ("RTA_OIF", oif)]
    if dst is not None:
        msg["attrs"].insert(0, ("RTA_DST", dst))
    return msg


def _link_up_msg(index: int, alias: str | None):
    msg = ifinfmsg()
    msg["index"], msg["flags"], msg["change"] = index, IFF_UP, IFF_UP
    msg["attrs"] = [("IFLA_IFALIAS", alias)] if alias is not None else []
    return msg


def _bridge_msg(ifname: str, index: int, mtu: int):
    msg = ifinfmsg()
    msg["index"], msg["flags"], msg["change"] = index, IFF_UP, IFF_UP
    msg["attrs"] = [
        ("IFLA_IFNAME", ifname),
        ("IFLA_MTU", mtu),
        ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "bridge")]}),
    ]
    return msg


def _veth_msg(
    ifname: str,
    index: int,
    mtu: int,
    master: int | None,
    peer_ifname: str,
    peer_index: int,
    peer_fd: int,
):
    peer = {
        "index": peer_index,
        "attrs": [
            ("IFLA_IFNAME", peer_ifname),
            ("IFLA_MTU", mtu),
            ("IFLA_NET_NS_FD", peer_fd),
            *VETH_QUEUES,
        ],
    }
    msg = ifinfmsg()
    msg["index"], msg["flags"], msg["change"] = index, IFF_UP, IFF_UP
    msg["attrs"] = [
        ("IFLA_IFNAME", ifname),
        ("IFLA_MTU", mtu),
        *VETH_QUEUES,
        *([("IFLA_MASTER", master)] if master is not None else []),
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
    return msg


def _hairpin_msg(index: int):
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
    return msg


def _address_msg(index: int, addr: str, plen: int):
    msg = ifaddrmsg()
    msg["family"], msg["prefixlen"], msg["index"] = socket.AF_INET, plen, index
    msg["attrs"] = [("IFA_LOCAL", addr), ("IFA_ADDRESS", addr)]
    return msg


def _fdb_msg(index: int, mac: str, dst: str):
    msg = ndmsg()
    msg["family"], msg["ifindex"] = AF_BRIDGE, index
    msg["state"], msg["flags"] = NUD_PERMANENT, NTF_SELF
    msg["attrs"] = [("NDA_LLADDR", mac), ("NDA_DST", dst)]
    return msg


def _neigh_msg(index: int, dst: str, mac: str, state: int):
    msg = ndmsg()
    msg["family"], msg["ifindex"], msg["state"] = socket.AF_INET, index, state
    msg["attrs"] = [("NDA_DST", dst), ("NDA_LLADDR", mac)]
    return msg


# the requests a lab makes by the hundred (see nltemplate: pyroute2 encodes each shape once)
_LINK_UP = Template(_link_up_msg, index=U32, alias=NAME)
_BRIDGE = Template(_bridge_msg, ifname=NAME, index=U32, mtu=U32)
_VETH = Template(
    _veth_msg,
    ifname=NAME,
    index=U32,
    mtu=U32,
    master=U32,
    peer_ifname=NAME,
    peer_index=U32,
    peer_fd=U32,
)
_HAIRPIN = Template(_hairpin_msg, index=U32)
_ADDRESS = Template(_address_msg, index=U32, addr=IPV4, plen=U8)
_ROUTE = Template(_route_msg, dst=IPV4, dst_len=U8, gateway=IPV4, oif=U32, proto=U8, flags=U32)
_FDB = Template(_fdb_msg, index=U32, mac=MAC, dst=IPV4)
_NEIGH = Template(_neigh_msg, index=U32, dst=IPV4, mac=MAC, state=U16)


def _route(dst: str, gateway: str, oif: int, proto: int, onlink: bool) -> bytes:
    net = None if dst == "default" else IPv4Network(dst)
    return _ROUTE.encode(
        dst=None if net is None else str(net.network_address),
        dst_len=0 if net is None else net.prefixlen,
        gateway=gateway,
        oif=oif,
        proto=proto,
        flags=RTNH_F_ONLINK if onlink else 0,
    )


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
        self._add(
            f"set {ifname} up", _LINK_UP.encode(index=index, alias=alias), RTM_NEWLINK, CHANGE
        )

    def bridge(self, ifname: str, index: int, mtu: int) -> None:
        data = _BRIDGE.encode(ifname=ifname, index=index, mtu=mtu)
        self._add(f"add bridge {ifname}", data, RTM_NEWLINK, CREATE)

    def vxlan(self, ifname: str, vni: int, under: int, local: str, port: int, mtu: int) -> None:
        """flanneld's device: `ip link add flannel.VNI type vxlan id VNI dev UNDER local IP
        dstport PORT nolearning ageing 300` (down: it is set up once it has its address)."""
        data = [
            ("IFLA_VXLAN_ID", vni),
            ("IFLA_VXLAN_LINK", under),
            ("IFLA_VXLAN_LOCAL", local),
            ("IFLA_VXLAN_PORT", port),
            ("IFLA_VXLAN_LEARNING", 0),
            ("IFLA_VXLAN_AGEING", 300),
        ]
        msg = ifinfmsg()
        msg["attrs"] = [
            ("IFLA_IFNAME", ifname),
            ("IFLA_MTU", mtu),
            (
                "IFLA_LINKINFO",
                {"attrs": [("IFLA_INFO_KIND", "vxlan"), ("IFLA_INFO_DATA", {"attrs": data})]},
            ),
        ]
        self._add(f"add vxlan {ifname} id {vni}", encode(msg), RTM_NEWLINK, CREATE)

    def link_del(self, index: int, ifname: str) -> None:
        msg = ifinfmsg()
        msg["index"] = index
        self._add(f"delete {ifname}", encode(msg), RTM_DELLINK, CHANGE)

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
        data = _VETH.encode(
            ifname=ifname,
            index=index,
            mtu=mtu,
            master=master or None,
            peer_ifname=peer_ifname,
            peer_index=peer_index,
            peer_fd=self.peer_fds[peer_netns],
        )
        what = f"add veth {ifname} (peer {peer_ifname} in {peer_netns})"
        self._add(what, data, RTM_NEWLINK, CREATE)

    def hairpin(self, index: int, ifname: str) -> None:
        self._add(f"hairpin on {ifname}", _HAIRPIN.encode(index=index), RTM_NEWLINK, CHANGE)

    def address(self, index: int, ifname: str, cidr: str, delete: bool = False) -> None:
        addr, plen = cidr.split("/")
        data = _ADDRESS.encode(index=index, addr=addr, plen=int(plen))
        if delete:
            self._add(f"delete address {cidr} from {ifname}", data, RTM_DELADDR, CHANGE)
        else:
            self._add(f"add address {cidr} to {ifname}", data, RTM_NEWADDR, CREATE)

    def route(self, dst: str, gateway: str, oif: int, ifname: str, proto: int) -> None:
        """`ip route add DST via GW dev DEV` (DST may be `default`), refused if it exists."""
        data = _route(dst, gateway, oif, proto, onlink=False)
        self._add(f"add route {dst} via {gateway} dev {ifname}", data, RTM_NEWROUTE, CREATE)

    def fdb(self, index: int, mac: str, dst: str, delete: bool = False) -> None:
        """`bridge fdb replace MAC dev DEV dst DST self permanent` (what flannel writes)."""
        data = _FDB.encode(index=index, mac=mac, dst=dst)
        self._add(f"fdb {mac} dst {dst}", data, *_change(RTM_NEWNEIGH, RTM_DELNEIGH, delete))

    def neigh(
        self, index: int, dst: str, mac: str, state: int = NUD_PERMANENT, delete: bool = False
    ) -> None:
        """`ip neigh replace DST lladdr MAC dev DEV nud permanent` (or another state)."""
        data = _NEIGH.encode(index=index, dst=dst, mac=mac, state=state)
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
        data = _route(dst, gateway, oif, proto, onlink)
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
            for kind, seq, data in _messages(sock.recv(1 << 16)):
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
