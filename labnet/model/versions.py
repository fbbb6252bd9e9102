"""The releases a lab can run, and what each changes that a learner sees on a node.

A topology's `versions:` block names one release of flannel, docker and kube-proxy; the
etcd API follows flannel's release. Each release's traits come from its own code at the tag
named here (the project's reference notes and tests/goldens/ give the sources); a lab shows
what a node of those releases shows, never a mix of eras.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Flannel:
    version: str  # as a topology writes it
    tag: str  # the upstream tag labnet follows
    date: str
    mode: str  # miss: L3 misses answered by the agent; static: entries per lease
    address: str  # network: <subnet>.0/<network prefix>; host-route: /32 + the network's
    # route; host: /32 and a route per remote lease
    etcd_api: str  # v2 (keys with a TTL) or v3 (etcd leases)
    lease_form: str  # v0.5: {"PublicIP","BackendType","BackendData":{"VtepMAC"}};
    # v0.15: adds "PublicIPv6":null and BackendData's "VNI"
    ipmasq: str  # three | four | chain (FLANNEL-POSTRTG)
    forward: bool  # FORWARD ACCEPT rules for the pod network (v0.9.1+)
    recheck: float | None  # seconds between checks that its rules are still there
    lost_lease: str  # reacquire | exit ("Lease has been revoked")
    changes: str


@dataclass(frozen=True)
class Docker:
    version: str
    tag: str
    date: str
    bridge: str  # the bridge pods are plugged into
    forward_policy: str  # what it sets the FORWARD policy to
    rules: bool  # False: no docker; the CNI bridge plugin writes no rules (ipMasq false)
    changes: str


@dataclass(frozen=True)
class KubeProxy:
    version: str
    tag: str
    date: str
    era: str  # the rule layout: "1.5" (the article's) or "today"
    changes: str


FLANNEL = {
    f.version: f
    for f in (
        Flannel(
            "0.6", "v0.6.2", "2016-08", "miss", "network", "v2", "v0.5", "three", False, None,
            "reacquire",
            "flannel.1 holds <subnet>.0 with the network's prefix (the article's "
            "`172.16.0.0/16 ... proto kernel` route); L3 misses answered from the leases in "
            "memory; etcd v2; ip-masq: 3 rules; a revoked lease is taken again",
        ),
        Flannel(
            "0.7", "v0.7.1", "2017-04", "miss", "host-route", "v2", "v0.5", "three", False, None,
            "reacquire",
            "flannel.1 holds <subnet>.0/32 and flannel adds the route `172.16.0.0/16 dev "
            "flannel.1` itself",
        ),
        Flannel(
            "0.8", "v0.8.0", "2017-07", "miss", "host-route", "v2", "v0.5", "four", False, None,
            "exit",
            "ip-masq gains `! -s <network> -d <own subnet> -j RETURN`; a revoked lease ends "
            "flanneld (\"Lease has been revoked. Shutting down daemon.\")",
        ),
        Flannel(
            "0.9", "v0.9.1", "2017-11", "static", "host", "v2", "v0.5", "four", True, 5.0,
            "exit",
            "no more L3 misses: a neighbour, FDB entry and route per lease; FORWARD ACCEPT "
            "rules for the pod network (docker 1.13 drops forwarded traffic), re-checked "
            "every 5 s",
        ),
        Flannel(
            "0.28", "v0.28.9", "2026-08", "static", "host", "v3", "v0.15", "chain", True, 5.0,
            "exit",
            "etcd v3 leases; lease JSON with \"PublicIPv6\" and \"VNI\"; FLANNEL-POSTRTG and "
            "FLANNEL-FWD chains with comments, MASQUERADE --random-fully; kube-flannel's "
            "--ip-masq",
        ),
    )
}  # fmt: skip

# flannel's udp backend (backend/udp: the TUN device flannel0, the agent as the data path),
# its first backend and the one its code picks for a config without "Backend" (subnet/
# config.go parseBackendType, to this day), is in every release above: v0.6.2 to v0.28.9
# (amd64 only from v0.10). flannel0 holds <subnet>.0 with the network's prefix up to v0.10;
# from v0.11 (commit ed425bdd) a /32, and flannel routes the network to it itself.
UDP_RELEASES = ("0.6", "0.7", "0.8", "0.9", "0.28")
UDP_NETWORK_PREFIX = ("0.6", "0.7", "0.8", "0.9")

DOCKER = {
    d.version: d
    for d in (
        Docker(
            "1.12", "v1.12.6", "2017-01", "docker0", "ACCEPT", True,
            "docker0 with --bip from subnet.env; MASQUERADE and FORWARD rules inserted at the "
            "top; with FLANNEL_IPMASQ=true, mk-docker-opts.sh gives it --ip-masq=false",
        ),
        Docker(
            "1.13", "v1.13.1", "2017-02", "docker0", "DROP", True,
            "sets the FORWARD policy to DROP (it finds forwarding off at boot): a new "
            "connection arriving on flannel.1 for a pod is dropped unless flannel (v0.9.1+) "
            "accepts the pod network",
        ),
        Docker(
            "none", "-", "-", "cni0", "ACCEPT", False,
            "no docker: the CNI bridge plugin's cni0 (ipMasq false, flannel masquerades)",
        ),
    )
}  # fmt: skip

KUBE_PROXY = {
    k.version: k
    for k in (
        KubeProxy(
            "1.5", "v1.5.8", "2016-12", "1.5",
            "unnamed ports are `ns/svc:`; SVC rules commented `ns/svc:port`, probabilities "
            "%0.5f; KUBE-MARK-MASQ --set-xmark; one KUBE-POSTROUTING rule",
        ),
        KubeProxy(
            "1.37", "v1.37", "2026-08", "today",
            "unnamed ports are `ns/svc`; `-> ip:port` comments; KUBE-EXT- chains for "
            "NodePorts; three KUBE-POSTROUTING rules with --random-fully; filter chains",
        ),
    )
}  # fmt: skip

ARTICLE = {"flannel": "0.6", "docker": "1.12", "kube-proxy": "1.5"}
TODAY = {"flannel": "0.28", "docker": "none", "kube-proxy": "1.37"}
KNOWN = {"flannel": FLANNEL, "docker": DOCKER, "kube-proxy": KUBE_PROXY}


@dataclass(frozen=True)
class Versions:
    flannel: Flannel
    docker: Docker
    kube_proxy: KubeProxy

    @classmethod
    def of(cls, raw: dict[str, str]) -> Versions:
        """Releases by name; what `raw` leaves out is today's."""
        pick = {c: KNOWN[c][str(raw.get(c, TODAY[c]))] for c in KNOWN}
        return cls(pick["flannel"], pick["docker"], pick["kube-proxy"])

    def as_dict(self) -> dict[str, str]:
        return {
            "flannel": self.flannel.version,
            "docker": self.docker.version,
            "kube-proxy": self.kube_proxy.version,
        }

    @property
    def summary(self) -> str:
        """`flannel v0.6.2, docker v1.12.6, kube-proxy v1.5.8, etcd v2`."""
        docker = "no docker (cni0)" if not self.docker.rules else f"docker {self.docker.tag}"
        return (
            f"flannel {self.flannel.tag}, {docker}, kube-proxy {self.kube_proxy.tag}, "
            f"etcd {self.flannel.etcd_api}"
        )
