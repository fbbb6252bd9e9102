"""The netlink requests a lab makes, encoded: pyroute2's message classes build them, and the
requests made by the hundred are encoded by pyroute2 once per shape, then re-filled
(kernel/nltemplate.py). Each function returns a request's bytes; the batch sets the
header's type, flags and sequence number."""

from __future__ import annotations

import socket
from ipaddress import IPv4Network

from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import IFF_UP, ifinfmsg
from pyroute2.netlink.rtnl.ndmsg import ndmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from labnet.kernel.nltemplate import IPV4, MAC, NAME, U8, U16, U32, Template, encode

AF_BRIDGE, NUD_PERMANENT, NTF_SELF, RTNH_F_ONLINK = 7, 0x80, 0x02, 0x04
RT_TABLE_MAIN, RTN_UNICAST, RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 254, 1, 0, 253
# A veth asked for no queue count gets one per possible CPU, then is cut down to one real
# queue while it is registered, which waits for an RCU grace period with the RTNL lock held
# (every other netlink change on the machine waits too). Asked for one queue, as
# `ip link add ... numtxqueues 1 numrxqueues 1`, it skips that: 1.6 ms a veth instead of 3.5.
VETH_QUEUES = [("IFLA_NUM_TX_QUEUES", 1), ("IFLA_NUM_RX_QUEUES", 1)]


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


def link_up(index: int, alias: str | None = None) -> bytes:
    return _LINK_UP.encode(index=index, alias=alias)


def bridge(ifname: str, index: int, mtu: int) -> bytes:
    return _BRIDGE.encode(ifname=ifname, index=index, mtu=mtu)


def vxlan(ifname: str, vni: int, under: int, local: str, port: int, mtu: int) -> bytes:
    """flanneld's device: `ip link add flannel.VNI type vxlan id VNI dev UNDER local IP
    dstport PORT nolearning ageing 300` (made once a node: not worth a template)."""
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
    return encode(msg)


def link_del(index: int) -> bytes:
    msg = ifinfmsg()
    msg["index"] = index
    return encode(msg)


def veth(
    ifname: str,
    index: int,
    mtu: int,
    master: int | None,
    peer_ifname: str,
    peer_index: int,
    peer_fd: int,
) -> bytes:
    return _VETH.encode(
        ifname=ifname,
        index=index,
        mtu=mtu,
        master=master or None,
        peer_ifname=peer_ifname,
        peer_index=peer_index,
        peer_fd=peer_fd,
    )


def hairpin(index: int) -> bytes:
    return _HAIRPIN.encode(index=index)


def address(index: int, addr: str, plen: int) -> bytes:
    return _ADDRESS.encode(index=index, addr=addr, plen=plen)


def route(dst: str, gateway: str, oif: int, proto: int, onlink: bool = False) -> bytes:
    """A main-table route via a gateway; `dst` is a network or `default`."""
    net = None if dst == "default" else IPv4Network(dst)
    return _ROUTE.encode(
        dst=None if net is None else str(net.network_address),
        dst_len=0 if net is None else net.prefixlen,
        gateway=gateway,
        oif=oif,
        proto=proto,
        flags=RTNH_F_ONLINK if onlink else 0,
    )


def link_mtu(index: int, mtu: int) -> bytes:
    """A link's MTU (rare: only where a lab's underlay is smaller than its hosts think)."""
    msg = ifinfmsg()
    msg["index"] = index
    msg["attrs"] = [("IFLA_MTU", mtu)]
    return encode(msg)


def link_address(index: int, mac: str) -> bytes:
    """`ip link set IFNAME address MAC` (Calico's ee:ee:ee:ee:ee:ee on each cali veth)."""
    msg = ifinfmsg()
    msg["index"] = index
    msg["attrs"] = [("IFLA_ADDRESS", mac)]
    return encode(msg)


def device_route(dst: str, oif: int, proto: int) -> bytes:
    """`ip route replace DST dev DEV` (scope link): flannel v0.7-v0.8's network route on
    flannel.1 (made once a node: not worth a template)."""
    net = IPv4Network(dst)
    msg = rtmsg()
    msg["family"], msg["table"], msg["proto"] = socket.AF_INET, RT_TABLE_MAIN, proto
    msg["scope"], msg["type"], msg["dst_len"] = RT_SCOPE_LINK, RTN_UNICAST, net.prefixlen
    msg["attrs"] = [("RTA_DST", str(net.network_address)), ("RTA_OIF", oif)]
    return encode(msg)


def fdb(index: int, mac: str, dst: str) -> bytes:
    return _FDB.encode(index=index, mac=mac, dst=dst)


def neigh(index: int, dst: str, mac: str, state: int) -> bytes:
    return _NEIGH.encode(index=index, dst=dst, mac=mac, state=state)
