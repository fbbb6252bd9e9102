"""flannel's udp backend, its pure parts: the model (config, MTU, port, the releases that
have it), the lease JSON, the proxy's packet surgery and table, the predicted hops, and the
dissection of UDP 8285."""

from __future__ import annotations

import json
import socket
import struct
from ipaddress import IPv4Network
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.utils import wrpcap

from labnet import model
from labnet.daemons.flannel import udp
from labnet.daemons.flannel.lease import Lease
from labnet.errors import TopologyError
from labnet.model import checks
from labnet.plan import path
from labnet.probe import capture
from labnet.render import terminal

ROOT = Path(__file__).resolve().parents[2]
UDP_LAB = ROOT / "topologies" / "flannel-udp.yaml"
SUBNETS = {"master": "172.16.99.0/24", "minion": "172.16.57.0/24"}


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "lab.yaml"
    p.write_text(text)
    return p


# ---------------------------------------------------------------- the model


def test_the_shipped_lab_is_flannels_udp_backend():
    topo = model.load(UDP_LAB)
    fl = topo.flannel
    assert (fl.backend, fl.port, fl.device) == ("udp", 8285, "flannel0")
    assert topo.flannel_mtu == 1500 - 28  # outer IP 20 + UDP 8
    assert json.loads(fl.config_json())["Backend"] == {"Type": "udp", "Port": 8285}
    assert '"Backend":{"Type":"udp","Port":8285}' in fl.config_json()
    assert fl.summary == "udp"
    assert topo.versions.as_dict() == {"flannel": "0.6", "docker": "1.12", "kube-proxy": "1.5"}
    assert topo.description


def test_port_defaults_to_8285_and_may_be_set(tmp_path):
    base = "name: x\nnodes: [{name: a}]\nflannel: {backend: {type: udp%s}}\n"
    assert model.load(write(tmp_path, base % "")).flannel.port == 8285
    topo = model.load(write(tmp_path, base % ", port: 7890"))
    assert json.loads(topo.flannel.config_json())["Backend"] == {"Type": "udp", "Port": 7890}


@pytest.mark.parametrize("key", ["vni: 2", "mode: static"])
def test_vxlan_settings_are_refused_with_udp(tmp_path, key):
    text = f"name: x\nnodes: [{{name: a}}]\nflannel: {{backend: {{type: udp, {key}}}}}\n"
    with pytest.raises(TopologyError) as err:
        model.load(write(tmp_path, text))
    assert err.value.field == f"flannel.backend.{key.split(':')[0]}"


@pytest.mark.parametrize("release", ["0.6", "0.7", "0.8", "0.9", "0.28"])
def test_every_release_labnet_runs_has_the_udp_backend(tmp_path, release):
    text = f'name: x\nversions: {{flannel: "{release}"}}\nnodes: [{{name: a}}]\n'
    text += "flannel: {backend: {type: udp}}\n"
    assert model.load(write(tmp_path, text)).flannel.backend == "udp"


def test_a_release_without_udp_is_refused_naming_the_ones_with_it(tmp_path, monkeypatch):
    monkeypatch.setattr(checks, "UDP_RELEASES", ("0.6", "0.7", "0.8", "0.9"))
    text = 'name: x\nversions: {flannel: "0.28"}\nnodes: [{name: a}]\n'
    text += "flannel: {backend: {type: udp}}\n"
    with pytest.raises(TopologyError) as err:
        model.load(write(tmp_path, text))
    assert err.value.field == "flannel.backend.type"
    assert "flannel 0.28 has no udp backend" in err.value.message
    assert "0.6, 0.7, 0.8, 0.9" in err.value.hint


# ---------------------------------------------------------------- lease and device


def test_udp_lease_json_is_flannels_publicip_only():
    """backend/udp's LeaseAttrs{PublicIP}: BackendType and BackendData are omitted (empty)."""
    subnet = IPv4Network("172.16.99.0/24")
    old = Lease(subnet, "10.46.181.145", None, "udp")
    assert old.to_json() == '{"PublicIP":"10.46.181.145"}'
    new = Lease(subnet, "10.46.181.145", None, "udp", form="v0.15")
    assert new.to_json() == '{"PublicIP":"10.46.181.145","PublicIPv6":null}'
    assert Lease.parse("/coreos.com/network/subnets/172.16.99.0-24", old.to_json()) == old


def test_flannel0_prefix_follows_the_release():
    net = IPv4Network("172.16.0.0/16")
    assert [udp.tun_prefix(r, net) for r in ("0.6", "0.7", "0.8", "0.9")] == [16] * 4
    assert udp.tun_prefix("0.28", net) == 32


# ---------------------------------------------------------------- the proxy


def _packet(ttl: int = 64, proto=ICMP) -> bytearray:
    pkt = IP(src="172.16.99.8", dst="172.16.57.15", ttl=ttl) / proto()
    return bytearray(bytes(pkt))


def test_ttl_is_decremented_and_the_checksum_stays_valid():
    for ttl in (64, 2, 255):
        buf = _packet(ttl)
        assert udp.decrement_ttl(buf)
        assert buf[8] == ttl - 1
        assert udp.checksum(buf[:20]) == 0  # a valid header sums to zero
    for ttl in (1, 0):
        assert not udp.decrement_ttl(_packet(ttl))


def test_checksum_edge_carries_around():
    for check in range(0xFE00, 0x10000, 0x37):
        buf = bytearray(_packet())
        buf[10:12] = struct.pack("!H", check)
        before = udp.checksum(buf[:20])
        udp.decrement_ttl(buf)
        assert udp.checksum(buf[:20]) in (before, 0xFFFF if before == 0 else before)


def test_net_unreachable_as_proxy_c_writes_it():
    offender = bytes(IP(src="172.16.99.8", dst="172.16.200.5") / UDP(sport=4000, dport=53))
    reply = IP(udp.net_unreachable("172.16.99.0", offender))
    assert (reply.src, reply.dst, reply.ttl) == ("172.16.99.0", "172.16.99.8", 8)
    assert (reply[ICMP].type, reply[ICMP].code) == (3, 0)
    raw = udp.net_unreachable("172.16.99.0", offender)
    assert udp.checksum(raw[:20]) == 0 and udp.checksum(raw[20:]) == 0
    assert raw[28:] == offender[:28]  # its IP header and 8 bytes of what follows
    assert udp.net_unreachable("172.16.99.0", bytes(_packet())) is None  # no ICMP about ICMP


class _Table(udp.UdpProxy):
    def __init__(self) -> None:
        self.udp_port, self.proxy_routes, self.proxy_masks = 8285, {}, ()


def test_the_proxy_table_maps_a_subnet_to_its_node():
    table = _Table()
    lease = Lease(IPv4Network("172.16.57.0/24"), "10.46.181.146", None, "udp")
    table.proxy_route_set(lease)
    hit = int.from_bytes(socket.inet_aton("172.16.57.15"), "big")
    miss = int.from_bytes(socket.inet_aton("172.16.58.1"), "big")
    assert table.next_hop(hit) == ("10.46.181.146", 8285)
    assert table.next_hop(miss) is None
    table.proxy_route_del(lease)
    assert table.next_hop(hit) is None


# ---------------------------------------------------------------- the predicted path


def _udp_model() -> path.NetModel:
    topo = model.load(UDP_LAB)
    return path.build(topo, SUBNETS, {p.name: str(p.address) for p in topo.pods})


def _places(p: path.Path) -> list[str]:
    return [f"{h.netns.removeprefix('flannel-udp-')}/{h.ifname}/{h.direction}" for h in p.hops]


def test_pod_to_pod_leaves_the_kernel_into_the_agent_and_back():
    fwd, back = path.predict(
        _udp_model(), "flannel-udp-pod1", "172.16.99.8", "172.16.57.15", "icmp", None
    )
    assert _places(fwd) == [
        "pod1/eth0/out",
        "master/docker0/in",
        "master/flannel0/out",
        "master/eth0/out",
        "underlay/ul-minion/out",
        "minion/eth0/in",
        "minion/flannel0/in",
        "minion/docker0/out",
        "pod3/eth0/in",
    ]
    into, enc, out = fwd.hops[2], fwd.hops[3], fwd.hops[6]
    assert "read by the agent" in into.note and "MASQUERADE" in into.note
    assert out.note == "written by the agent"
    assert enc.outer == path.Outer("10.46.181.145", "10.46.181.146", 8285, None)
    assert (enc.src, enc.dst) == ("172.16.99.0", "172.16.57.15")  # docker's MASQUERADE
    assert _places(back)[2:7] == [
        "minion/flannel0/out",
        "minion/eth0/out",
        "underlay/ul-master/out",
        "master/eth0/in",
        "master/flannel0/in",
    ]
    assert (back.hops[-1].src, back.hops[-1].dst) == ("172.16.57.15", "172.16.99.8")


def test_pods_of_one_node_never_reach_the_agent():
    fwd, _ = path.predict(
        _udp_model(), "flannel-udp-pod1", "172.16.99.8", "172.16.99.9", "icmp", None
    )
    assert "flannel0" not in {h.ifname for h in fwd.hops}


def test_the_expected_hop_has_no_vni():
    hop = path.Hop("n", "eth0", "out", "172.16.99.0", "172.16.57.15", "icmp", None,
                   outer=path.Outer("10.46.181.145", "10.46.181.146", 8285, None))  # fmt: skip
    assert terminal._expected(hop) == (
        "outer 10.46.181.145 > 10.46.181.146 udp/8285 | inner 172.16.99.0 > 172.16.57.15 icmp"
    )


# ---------------------------------------------------------------- captures


def test_udp_8285_is_opened_to_its_inner_packet(tmp_path):
    inner = IP(src="172.16.99.0", dst="172.16.57.15") / ICMP(type=8)
    outer = (
        IP(src="10.46.181.145", dst="10.46.181.146") / UDP(sport=8285, dport=8285) / bytes(inner)
    )
    error = IP(src="10.46.181.146", dst="10.46.181.145") / ICMP(type=3, code=3) / bytes(outer)[:28]
    pcap = tmp_path / "eth0.pcap"
    wrpcap(str(pcap), [outer, error], linktype=101)
    seen = capture.read(pcap)
    assert seen[0].outer == ("10.46.181.145", "10.46.181.146", 8285, None)
    assert (seen[0].src, seen[0].dst, seen[0].proto, seen[0].icmp_type) == (
        "172.16.99.0",
        "172.16.57.15",
        "icmp",
        8,
    )
    assert seen[0].describe().startswith("outer 10.46.181.145 > 10.46.181.146 udp/8285 | inner")
    assert seen[1].outer is None and seen[1].icmp_type == 3  # an ICMP error is not unwrapped


def test_a_tun_capture_is_bare_ip(tmp_path):
    """tcpdump on flannel0 writes LINKTYPE_RAW: no link-layer header at all."""
    pcap = tmp_path / "flannel0.pcap"
    wrpcap(str(pcap), [IP(src="172.16.99.0", dst="172.16.57.15") / ICMP()], linktype=101)
    (seen,) = capture.read(pcap)
    assert (seen.src, seen.dst, seen.outer) == ("172.16.99.0", "172.16.57.15", None)
