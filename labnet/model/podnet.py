"""Where pods get their addresses: flannel's network, or Calico's pool (the calico section),
and what a node's pinned subnet is checked against."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network

from .source import Locator
from .topology import Calico, Flannel


def build_calico(data: dict, loc: Locator) -> Calico | None:
    raw = data.get("calico")
    if raw is None:
        return None
    if "flannel" in data:
        raise loc.error(
            ("calico",),
            "a lab runs flannel or Calico, not both",
            "remove the flannel section, or the calico one",
        )
    docker = data.get("versions", {}).get("docker", "none")
    if docker != "none":
        raise loc.error(
            ("versions", "docker"),
            f"a Calico lab runs no docker (docker {docker} would bring docker0 and its rules)",
            'set versions.docker to "none"',
        )
    pool = IPv4Network(raw.get("pool", "192.168.0.0/16"))
    size = raw.get("block_size", 26)
    if size < pool.prefixlen:
        raise loc.error(
            ("calico", "block_size"), f"a /{size} block does not fit in the pool {pool}"
        )
    names = [n["name"] for n in data["nodes"]]
    reflectors = tuple(raw.get("route_reflectors", []))
    for i, name in enumerate(reflectors):
        if name not in names:
            raise loc.error(
                ("calico", "route_reflectors", i),
                f"no node named {name!r}",
                f"nodes are: {', '.join(names)}",
            )
    return Calico(pool, size, raw.get("as", 64512), reflectors)


@dataclass(frozen=True)
class PodNetwork:
    """What a node's pinned subnet is checked against: flannel's network and subnet length,
    or Calico's pool and block size."""

    network: IPv4Network
    prefixlen: int
    what: str  # "the flannel network" / "the Calico pool"
    unit: str  # "flannel subnet_len" / "Calico block_size"
    pinned: bool  # every node must pin its subnet (Calico: the lab has no IPAM)


def pod_network(flannel: Flannel | None, calico: Calico | None) -> PodNetwork:
    if calico:
        return PodNetwork(
            calico.pool, calico.block_size, "the Calico pool", "Calico block_size", True
        )
    return PodNetwork(
        flannel.network, flannel.subnet_len, "the flannel network", "flannel subnet_len", False
    )
