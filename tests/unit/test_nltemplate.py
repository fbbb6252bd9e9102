"""Re-filled netlink templates give exactly pyroute2's bytes, or fall back to pyroute2."""

from __future__ import annotations

import random

import pytest
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.ndmsg import ndmsg

from labnet.kernel import messages, netlink, nltemplate, query
from labnet.kernel.netlink import NLMSGHDR

RNG = random.Random(7)


def _ip() -> str:
    return ".".join(str(RNG.randrange(256)) for _ in range(4))


def _mac() -> str:
    return ":".join(f"{RNG.randrange(256):02x}" for _ in range(6))


def _name() -> str:
    return "".join(RNG.choice("abcxyz0123456789-._") for _ in range(RNG.randrange(1, 16)))


def _index() -> int:
    return RNG.randrange(1, 2**31)


def _cases() -> list[tuple[nltemplate.Template, dict]]:
    return [
        (messages._LINK_UP, {"index": _index(), "alias": RNG.choice([None, _name()])}),
        (messages._BRIDGE, {"ifname": _name(), "index": _index(), "mtu": RNG.randrange(68, 9001)}),
        (
            messages._VETH,
            {
                "ifname": _name(),
                "index": _index(),
                "mtu": RNG.randrange(68, 9001),
                "master": RNG.choice([None, _index()]),
                "peer_ifname": _name(),
                "peer_index": _index(),
                "peer_fd": RNG.randrange(1 << 20),
            },
        ),
        (messages._HAIRPIN, {"index": _index()}),
        (messages._ADDRESS, {"index": _index(), "addr": _ip(), "plen": RNG.randrange(33)}),
        (
            messages._ROUTE,
            {
                "dst": RNG.choice([None, _ip()]),
                "dst_len": RNG.randrange(33),
                "gateway": _ip(),
                "oif": _index(),
                "proto": RNG.randrange(256),
                "flags": RNG.choice([0, messages.RTNH_F_ONLINK]),
            },
        ),
        (messages._FDB, {"index": _index(), "mac": _mac(), "dst": _ip()}),
        (
            messages._NEIGH,
            {"index": _index(), "dst": _ip(), "mac": _mac(), "state": RNG.choice([2, 0x80])},
        ),
    ]


def test_every_request_kind_is_byte_for_byte_pyroute2s():
    for _ in range(200):
        for template, values in _cases():
            direct = nltemplate.encode(template.build(**values))
            assert template.encode(**values) == direct, (template.build.__name__, values)


def test_each_kind_learns_its_shapes_instead_of_falling_back():
    for template, values in _cases():
        template.encode(**values)
        assert template._shapes and None not in template._shapes.values(), template.build.__name__


def _mtu_as_text(ifname: str, mtu: int):
    """A value written in a width of its own: it cannot be re-filled."""
    msg = ifinfmsg()
    msg["attrs"] = [("IFLA_IFNAME", ifname), ("IFLA_IFALIAS", str(mtu))]
    return msg


@pytest.mark.parametrize("mtu", [9, 1450, 65535])
def test_a_shape_whose_fields_cannot_be_told_apart_is_left_to_pyroute2(mtu):
    template = nltemplate.Template(_mtu_as_text, ifname=nltemplate.NAME, mtu=nltemplate.U32)
    assert template.encode(ifname="eth0", mtu=mtu) == nltemplate.encode(_mtu_as_text("eth0", mtu))
    assert list(template._shapes.values()) == [None]


def test_a_batch_numbers_its_requests_and_sets_their_type_and_flags():
    batch = netlink.Batch("lab-node")
    batch.fdb(5, "aa:bb:cc:dd:ee:ff", "10.0.0.2")
    batch.fdb(5, "aa:bb:cc:dd:ee:01", "10.0.0.3", delete=True)
    headers = [NLMSGHDR.unpack_from(data) for _, data in batch.messages]
    assert [(t, f, seq) for _, t, f, seq, _ in headers] == [
        (netlink.RTM_NEWNEIGH, netlink.REPLACE, 1),
        (netlink.RTM_DELNEIGH, netlink.CHANGE, 2),
    ]
    assert [h[0] for h in headers] == [len(data) for _, data in batch.messages]


def test_a_value_in_another_form_is_left_to_pyroute2():
    messages._FDB.encode(index=5, mac="aa:bb:cc:dd:ee:ff", dst="10.0.0.1")  # the shape is known
    with pytest.raises(OSError):  # pyroute2 refuses it; the template must not write 3 bytes
        messages._FDB.encode(index=5, mac="a:b:c:d:e:f", dst="10.0.0.1")
    upper = {"index": 5, "mac": "AA:BB:CC:DD:EE:FF", "dst": "10.0.0.1"}
    assert messages._FDB.encode(**upper) == nltemplate.encode(messages._FDB.build(**upper))
    with pytest.raises(OSError):
        messages._FDB.encode(index=5, mac="aa:bb:cc:dd:ee:ff", dst="10.0.0.256")


def test_a_first_request_in_another_form_teaches_nothing():
    template = nltemplate.Template(
        messages._fdb_msg, index=nltemplate.U32, mac=nltemplate.MAC, dst=nltemplate.IPV4
    )
    upper = {"index": 5, "mac": "AA:BB:CC:DD:EE:FF", "dst": "10.0.0.1"}
    with pytest.raises(OSError):  # pyroute2's refusal, not the template's
        template.encode(index=5, mac="a:b:c:d:e:f", dst="10.0.0.1")
    assert not template._shapes
    assert template.encode(**upper) == nltemplate.encode(messages._fdb_msg(**upper))
    assert list(template._shapes.values()) != [None]


def _neighbour_reply(index: int, attrs: list) -> bytes:
    msg = ndmsg()
    msg["family"], msg["ifindex"], msg["state"] = messages.AF_BRIDGE, index, 0x80
    msg["attrs"] = attrs
    return nltemplate.encode(msg)


def test_fdb_entries_are_read_as_pyroute2_decodes_them():
    """`up` reads FDB dumps by hand; pyroute2 decoding the same bytes is the reference."""
    for _ in range(200):
        index = _index()
        attrs = [("NDA_LLADDR", _mac())]
        if RNG.random() < 0.8:
            attrs.append(
                ("NDA_DST", _ip() if RNG.random() < 0.7 else "fd00::" + str(RNG.randrange(99)))
            )
        if RNG.random() < 0.5:
            attrs.insert(0, ("NDA_VNI", RNG.randrange(1, 2**24)))
        data = _neighbour_reply(index, attrs)
        ref = ndmsg(data)
        ref.decode()
        assert query.fdb_entry(data, index) == (
            ref.get_attr("NDA_LLADDR"),
            ref.get_attr("NDA_DST"),
        )
        assert query.fdb_entry(data, index + 1) is None  # another device's entry


def test_links_are_read_as_pyroute2_decodes_them():
    """`get_link` reads replies by hand; pyroute2 decoding the same bytes is the reference."""
    for _ in range(200):
        msg = ifinfmsg()
        msg["index"] = _index()
        attrs = [("IFLA_IFNAME", _name()), ("IFLA_MTU", RNG.randrange(68, 65536))]
        if RNG.random() < 0.8:
            attrs.append(("IFLA_ADDRESS", _mac()))
        if RNG.random() < 0.5:
            attrs.append(("IFLA_IFALIAS", _name()))
        kind = RNG.choice([None, "veth", "bridge", "vxlan"])
        if kind == "vxlan":
            data = [
                ("IFLA_VXLAN_ID", RNG.randrange(1, 2**24)),
                ("IFLA_VXLAN_LOCAL", _ip()),
                ("IFLA_VXLAN_PORT", RNG.randrange(1, 65536)),
            ]
            info = {"attrs": [("IFLA_INFO_KIND", kind), ("IFLA_INFO_DATA", {"attrs": data})]}
            attrs.append(("IFLA_LINKINFO", info))
        elif kind:
            attrs.append(("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", kind)]}))
        RNG.shuffle(attrs)
        msg["attrs"] = attrs
        raw = nltemplate.encode(msg)
        ref = ifinfmsg(raw)
        ref.decode()
        link = query.link_of(raw)
        assert (link.index, link.ifname, link.mtu, link.mac, link.alias, link.kind) == (
            ref["index"],
            ref.get_attr("IFLA_IFNAME"),
            ref.get_attr("IFLA_MTU"),
            ref.get_attr("IFLA_ADDRESS"),
            ref.get_attr("IFLA_IFALIAS"),
            ref.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND"),
        )
        vxlan = ref.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA")
        if kind == "vxlan":
            want = tuple(vxlan.get_attr(f"IFLA_VXLAN_{k}") for k in ("ID", "PORT", "LOCAL"))
            assert link.vxlan == want
        else:
            assert link.vxlan is None
