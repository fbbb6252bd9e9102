"""Reading the kernel's tables back over netlink, as `ip` and `bridge` show them: links,
addresses, routes, neighbours and FDB entries of one namespace, and the kernel's neighbour
requests (L3 and L2 misses) for a flannel agent.

Links and FDB entries, read by the hundred during an up and by every agent, are read by
hand from the reply's attributes: pyroute2 decodes a link's whole reply (its statistics,
its IPv6 settings), and an FDB dump entry by entry, at several times the cost."""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from pyroute2.netlink.rtnl import RTM_GETADDR, RTM_GETLINK, RTM_GETNEIGH, RTM_GETROUTE, RTMGRP_NEIGH
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.ndmsg import ndmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from labnet.kernel.messages import AF_BRIDGE, RT_TABLE_MAIN
from labnet.kernel.netlink import NETLINK_ROUTE, NLMSGHDR, exchange, messages, request

# the headers' sizes and the attributes' types read by hand
IFINFOMSG_SIZE, NDMSG_SIZE = 16, 12
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINKINFO, IFLA_IFALIAS = 1, 3, 4, 18, 20
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFLA_VXLAN_ID, IFLA_VXLAN_LOCAL, IFLA_VXLAN_PORT = 1, 4, 15
NDA_DST, NDA_LLADDR = 1, 2


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
    """One link, by index or by name; None when there is none. Read by hand: pyroute2
    decodes a link's whole reply (its statistics, its IPv6 settings), and every agent and
    every `down` read some."""
    msg = ifinfmsg()
    msg["index"] = index
    msg["attrs"] = [("IFLA_IFNAME", ifname)] if ifname else []
    try:
        replies = list(exchange(ns, msg, RTM_GETLINK, dump=False, strict=False))
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
    (at 50 nodes, thousands a dump). Read by hand, not decoded by pyroute2: `up`
    reads every node's back while it waits, 49 entries a node at 50 nodes."""
    msg = ndmsg()
    msg["family"], msg["ifindex"] = AF_BRIDGE, index
    replies = exchange(ns, msg, RTM_GETNEIGH, dump=True, strict=True)
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
    return request(ns, msg, _GET[type(msg)], dump=True)


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
            for kind, _, raw in messages(data):
                if kind == RTM_GETNEIGH:
                    msg = ndmsg(raw)
                    msg.decode()
                    yield msg
