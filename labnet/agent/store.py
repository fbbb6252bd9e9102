"""Where flannel keeps its config and leases: etcd's v3 API (flannel v0.18+, python-etcd3) or
its v2 keys API (flannel before v0.18: keys with a TTL, which the article's `etcdctl ls` and
`curl .../v2/keys/...` show). The agent sees one small interface."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable

ETCD_TIMEOUT = 10  # seconds a call may take: 50 agents starting at once load a 2-core machine


class V3Store:
    """python-etcd3 over gRPC; a lease of TTL seconds carries the key. python-etcd3 talks to
    one endpoint: with a cluster, a failed call moves the client to the next member."""

    def __init__(self, endpoints: list[tuple[str, int]]) -> None:
        import etcd3

        self._etcd3 = etcd3
        self.endpoints = endpoints
        self._at = 0
        self.client = etcd3.client(*endpoints[0], timeout=ETCD_TIMEOUT)
        self.lease = None

    def failover(self) -> None:
        if len(self.endpoints) > 1:
            self._at = (self._at + 1) % len(self.endpoints)
            self.client = self._etcd3.client(*self.endpoints[self._at], timeout=ETCD_TIMEOUT)
            if self.lease is not None:  # the same lease, seen through another member
                self.lease = self._etcd3.Lease(self.lease.id, self.lease.ttl, self.client)

    def _try(self, call):
        try:
            return call()
        except Exception:
            self.failover()
            raise

    def get(self, key: str) -> bytes | None:
        value, _ = self._try(lambda: self.client.get(key))
        return value

    def list(self, prefix: str) -> tuple[dict[str, bytes], int]:
        resp = self._try(lambda: self.client.get_prefix_response(prefix))
        return {kv.key.decode(): kv.value for kv in resp.kvs}, resp.header.revision

    def write(self, key: str, value: str, ttl: int, create_only: bool) -> bool:
        self.lease = self._try(lambda: self.client.lease(ttl))
        if not create_only:
            self.client.put(key, value, lease=self.lease)
            return True
        tx = self.client.transactions
        ok, _ = self.client.transaction(
            compare=[tx.create(key) == 0],
            success=[tx.put(key, value, lease=self.lease)],
            failure=[],
        )
        return ok

    def refresh(self, key: str, value: str, ttl: int) -> None:
        self._try(self.lease.refresh)

    def watch(
        self,
        prefix: str,
        revision: int,
        put: Callable[[str, bytes], None],
        gone: Callable[[str], None],
    ) -> None:
        events, _cancel = self._try(
            lambda: self.client.watch_prefix(prefix, start_revision=revision + 1)
        )
        for ev in events:
            if isinstance(ev, self._etcd3.events.DeleteEvent):
                gone(ev.key.decode())
            else:
                put(ev.key.decode(), ev.value)


class V2Store:
    """etcd's v2 keys API over HTTP (TCP_NODELAY, or each request waits 40 ms for an ACK)."""

    def __init__(self, endpoints: list[tuple[str, int]]) -> None:
        self.host, self.port = endpoints[0]
        self._local = threading.local()

    def _conn(self, timeout: float | None = 5.0) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _call(
        self,
        method: str,
        key: str,
        params: dict | None = None,
        form: dict | None = None,
        timeout: float | None = 5.0,
    ) -> tuple[int, dict]:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        body = urllib.parse.urlencode(form) if form else None
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if form else {}
        conn = getattr(self._local, "conn", None) if timeout == 5.0 else None
        for attempt in (1, 2):
            if conn is None:
                conn = self._conn(timeout)
                if timeout == 5.0:
                    self._local.conn = conn
            try:
                conn.request(method, f"/v2/keys{key}{query}", body, headers)
                resp = conn.getresponse()
                data = resp.read()
                return resp.status, json.loads(data or b"{}")
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = self._local.conn = None
                if attempt == 2:
                    raise
        raise OSError("unreachable")

    def get(self, key: str) -> bytes | None:
        status, data = self._call("GET", key)
        return data["node"]["value"].encode() if status == 200 else None

    def list(self, prefix: str) -> tuple[dict[str, bytes], int]:
        status, data = self._call("GET", prefix.rstrip("/"), {"recursive": "true"})
        if status != 200:
            return {}, int(data.get("index", 0))
        nodes = data["node"].get("nodes", [])
        out = {n["key"]: n["value"].encode() for n in nodes if "value" in n}
        return out, max(
            [data["node"].get("modifiedIndex", 0)] + [n.get("modifiedIndex", 0) for n in nodes]
        )

    def write(self, key: str, value: str, ttl: int, create_only: bool) -> bool:
        params = {"prevExist": "false"} if create_only else None
        status, _ = self._call("PUT", key, params, {"value": value, "ttl": str(ttl)})
        return status in (200, 201)

    def refresh(self, key: str, value: str, ttl: int) -> None:
        self._call("PUT", key, {"prevExist": "true"}, {"ttl": str(ttl), "refresh": "true"})

    def watch(
        self,
        prefix: str,
        revision: int,
        put: Callable[[str, bytes], None],
        gone: Callable[[str], None],
    ) -> None:
        """Long-polling ?wait=true, as flannel's v2 watcher does."""
        index = revision + 1
        while True:
            try:
                status, data = self._call(
                    "GET",
                    prefix.rstrip("/"),
                    {"wait": "true", "recursive": "true", "waitIndex": str(index)},
                    timeout=None,
                )
            except (OSError, http.client.HTTPException):
                time.sleep(0.5)
                continue
            if status != 200 or "node" not in data:
                index = int(data.get("index", index)) + 1  # history cleared: go on from now
                continue
            node = data["node"]
            index = node.get("modifiedIndex", index) + 1
            if data.get("action") in ("delete", "expire", "compareAndDelete"):
                gone(node["key"])
            elif "value" in node:
                put(node["key"], node["value"].encode())


def open_store(api: str, endpoints: list[tuple[str, int]]) -> V3Store | V2Store:
    return V2Store(endpoints) if api == "v2" else V3Store(endpoints)
