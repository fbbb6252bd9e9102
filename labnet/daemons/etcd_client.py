"""The orchestrator's etcd client: python-etcd3 (etcd's v3 API over gRPC) on the unix socket
a lab's etcd listens on in the lab's directory, used from the root namespace, where nothing
listens. The v2 keys API (flannel before v0.18), which python-etcd3 lacks, goes over HTTP
on the same socket.

Two settings must be in place before grpc and protobuf are first imported, so this module
sets them before it imports python-etcd3:
- PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python: python-etcd3's generated code predates
  today's protobuf, whose C implementation refuses it.
- GRPC_ENABLE_FORK_SUPPORT=0: `up` forks the agents after writing to etcd. With gRPC's fork
  support, a forked child inherits gRPC's threads and aborts once it closes their
  descriptors, as every daemon does. A client is closed before any fork (`with Etcd(...)`).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

import etcd3  # noqa: E402 - after the settings above
import grpc  # noqa: E402
from etcd3.exceptions import Etcd3Exception  # noqa: E402

from labnet.daemons.etcd import socket_path  # noqa: E402
from labnet.errors import LabFailure  # noqa: E402

CALL_TIMEOUT = 2.0  # seconds a call may take on a loaded machine
READY_PROBE = 0.05  # seconds a readiness probe waits: a local etcd answers within 1 ms
# gRPC waits a second before reconnecting by default; a lab's etcd comes up in about 0.1 s
FAST_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 10),
    ("grpc.min_reconnect_backoff_ms", 10),
    ("grpc.max_reconnect_backoff_ms", 100),
]
ERRORS = (Etcd3Exception, grpc.RpcError, OSError, http.client.HTTPException)


class Etcd:
    """One lab's etcd member, reached on its unix socket. Close it before forking."""

    def __init__(self, lab_dir: Path, member: str = "etcd") -> None:
        self.path = socket_path(lab_dir, member)  # `<member>.sock:2379`
        self._host, _, self._port = f"unix:{self.path}".rpartition(":")
        self._client: etcd3.Etcd3Client | None = None

    def __enter__(self) -> Etcd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self, timeout: float) -> etcd3.Etcd3Client:
        return etcd3.client(
            host=self._host, port=self._port, timeout=timeout, grpc_options=FAST_RECONNECT
        )

    @property
    def client(self) -> etcd3.Etcd3Client:
        if self._client is None:
            self._client = self._connect(CALL_TIMEOUT)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # ------------------------------------------------------------ readiness

    def ready(self) -> bool:
        """Whether etcd answers now (one quick try while it starts). No channel is opened
        before the socket exists: gRPC would then wait a second before trying again."""
        if not self.path.exists():
            return False
        probe = self._connect(READY_PROBE)
        try:
            probe.status()
            return True
        except ERRORS:
            return False
        finally:
            probe.close()

    def wait_ready(self, timeout: float, alive: Callable[[], bool] = lambda: True) -> None:
        """Until etcd answers (a leader is elected: etcd serves nothing before)."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            if not alive():
                raise LabFailure("etcd exited while starting", "see its log with: inv logs etcd")
            if time.monotonic() > deadline:
                raise LabFailure(
                    f"etcd not ready after {timeout:.0f} s", "see its log with: inv logs etcd"
                )
            time.sleep(0.005)

    # ------------------------------------------------------------ the v3 API

    def put(self, key: str, value: str) -> None:
        self.client.put(key, value)

    def get(self, key: str) -> str | None:
        value, _ = self.client.get(key)
        return None if value is None else value.decode()

    def delete(self, key: str) -> bool:
        return self.client.delete(key)

    def leases(self, prefix: str) -> dict[str, dict]:
        """key -> {"value", "lease" (its id, 0 for none), "ttl" (seconds left, or None)}
        of every key under `prefix`: one range, and one time-to-live per lease."""
        rows = [(m.key.decode(), v.decode(), m.lease_id) for v, m in self.client.get_prefix(prefix)]
        ttls = {}
        for lease in {lease for *_, lease in rows if lease}:
            ttl = self.client.get_lease_info(lease).TTL
            ttls[lease] = ttl if ttl >= 0 else None
        return {k: {"value": v, "lease": lease, "ttl": ttls.get(lease)} for k, v, lease in rows}

    # ------------------------------------------------------------ the v2 keys API, over HTTP

    def _v2(self, method: str, key: str, query: str = "", form: dict | None = None) -> tuple:
        conn = _UnixHTTPConnection(str(self.path), CALL_TIMEOUT)
        try:
            body = urllib.parse.urlencode(form) if form else None
            headers = {"Content-Type": "application/x-www-form-urlencoded"} if form else {}
            conn.request(method, f"/v2/keys{key}{query}", body, headers)
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"{}")
        finally:
            conn.close()

    def put_v2(self, key: str, value: str) -> None:
        """A key as flannel before v0.18 read its config: `curl -XPUT .../v2/keys/KEY`."""
        status, data = self._v2("PUT", key, form={"value": value})
        if status not in (200, 201):
            raise LabFailure(f"etcd v2 PUT {key}: HTTP {status} {data}")

    def delete_v2(self, key: str) -> bool:
        status, _ = self._v2("DELETE", key)
        return status == 200

    def leases_v2(self, prefix: str) -> dict[str, dict]:
        """key -> {"value", "ttl"} of the keys in a v2 directory."""
        status, data = self._v2("GET", prefix.rstrip("/"), "?recursive=true")
        nodes = data.get("node", {}).get("nodes", []) if status == 200 else []
        return {n["key"]: {"value": n.get("value", ""), "ttl": n.get("ttl")} for n in nodes}


class _UnixHTTPConnection(http.client.HTTPConnection):
    """http.client on a unix socket (etcd's JSON and v2 APIs share the gRPC listener)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)
