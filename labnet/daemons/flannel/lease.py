"""A flannel subnet lease as etcd holds it (key and JSON value), the free subnets an agent
picks from, and the agent's log: one line an event, with a timestamp (`inv logs NODE`)."""

from __future__ import annotations

import json
import socket
import sys
import time
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network


@dataclass(frozen=True)
class Lease:
    subnet: IPv4Network
    public_ip: str
    vtep_mac: str | None  # vxlan's flannel.1 MAC; host-gw has none
    backend: str = "vxlan"
    form: str = "v0.5"  # the release's LeaseAttrs: v0.5 (to v0.13) or v0.15 (and later)
    vni: int = 1

    @property
    def key_name(self) -> str:
        return f"{self.subnet.network_address}-{self.subnet.prefixlen}"

    @property
    def gateway(self) -> str:
        return str(self.subnet.network_address)

    def to_json(self) -> str:
        """The release's lease value, byte for byte as Go's json.Marshal writes LeaseAttrs
        (fields in struct order, no spaces; host-gw has no BackendData, omitted when empty;
        udp sets neither BackendType nor BackendData: backend/udp's LeaseAttrs has only
        PublicIP). v0.15 adds PublicIPv6 (null without IPv6) and vxlan's VNI (since v0.14)."""
        value: dict = {"PublicIP": self.public_ip}
        if self.form == "v0.15":
            value["PublicIPv6"] = None
        if self.backend != "udp":
            value["BackendType"] = self.backend
        if self.vtep_mac is not None:
            data = {"VNI": self.vni} if self.form == "v0.15" else {}
            value["BackendData"] = {**data, "VtepMAC": self.vtep_mac}
        return json.dumps(value, separators=(",", ":"))

    @classmethod
    def parse(cls, key: str, value: bytes | str) -> Lease:
        net, plen = key.rsplit("/", 1)[1].split("-")
        data = json.loads(value)
        backend = data.get("BackendType", "udp")  # only udp's leases name no backend
        mac = data["BackendData"]["VtepMAC"] if backend == "vxlan" else None
        try:  # from an int: parsing the text cost twice as much, for every lease event
            start = int.from_bytes(socket.inet_pton(socket.AF_INET, net), "big")
        except OSError:
            raise ValueError(f"not an IPv4 address: {net!r}") from None
        return cls(IPv4Network((start, int(plen))), data["PublicIP"], mac, backend)


def free_subnets(config: dict, taken: set[IPv4Network], limit: int = 100) -> list[IPv4Network]:
    """Up to `limit` free subnets from SubnetMin to SubnetMax, as flannel picks among them."""
    network = IPv4Network(config["Network"])
    plen = int(config.get("SubnetLen", 24))
    size = 1 << (32 - plen)
    lo = int(IPv4Address(config.get("SubnetMin", str(network.network_address + size))))
    hi = int(IPv4Address(config.get("SubnetMax", str(network.broadcast_address + 1 - size))))
    free = []
    for start in range(lo, hi + 1, size):
        net = IPv4Network(f"{IPv4Address(start)}/{plen}")
        if net not in taken:
            free.append(net)
            if len(free) == limit:
                break
    return free


_second = [-1, ""]  # the last whole second logged, as HH:MM:SS (UTC)


def log(event: str, **fields: object) -> None:
    now = time.time()
    whole = int(now)
    if whole != _second[0]:  # strftime once a second, not a datetime a line
        _second[:] = [whole, time.strftime("%H:%M:%S", time.gmtime(whole))]
    detail = " ".join(f"{k}={v}" for k, v in fields.items())
    sys.stdout.write(f"{_second[1]}.{int((now - whole) * 1000):03d} {event:<16} {detail}\n")
    sys.stdout.flush()
