"""Where flannel keeps its config and leases: etcd's v3 API (flannel v0.18+) or
its v2 keys API (flannel before v0.18: keys with a TTL, which the article's `etcdctl ls` and
`curl .../v2/keys/...` show). The agent sees one small interface."""

from __future__ import annotations

import base64
import encodings.idna  # noqa: F401 - socket's host lookup imports it: once, before agents fork
import http.client
import json
import select
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator

ETCD_TIMEOUT = 10  # seconds a call may take: 50 agents starting at once load a 2-core machine
# seconds a watch waits after an event for more: each wake-up costs an agent CPU, and a
# node's 49 leases arrive spread over the seconds of a 50-node up
BATCH_WAIT = 0.05
JSON = {"Content-Type": "application/json"}
Changed = Callable[[list[tuple[str, bytes | None]]], None]  # (key, value; None: deleted)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _prefix_end(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class _Http:
    """Keep-alive HTTP/1.1 (http.client) to one of the endpoints, one connection per thread
    (watch, renew and start-up run at once). A failed call moves the store to the next
    member of a cluster."""

    def __init__(self, endpoints: list[tuple[str, int]]) -> None:
        self.endpoints = endpoints
        self._at = 0
        self._local = threading.local()

    def connection(self, timeout: float | None) -> http.client.HTTPConnection:
        """A new connection to the current endpoint (a watch keeps one of its own)."""
        host, port = self.endpoints[self._at]
        return _NoDelayConnection(host, port, timeout=timeout)

    def failover(self) -> None:
        self._at = (self._at + 1) % len(self.endpoints)

    def request(
        self, method: str, path: str, body: str | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        """(status, body), on this thread's kept-alive connection."""
        for attempt in (1, 2):  # a kept-alive connection the server closed: once more, anew
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = self.connection(ETCD_TIMEOUT)
            try:
                conn.request(method, path, body, headers)
                resp = conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self._drop()
                return resp.status, data
            except (OSError, http.client.HTTPException):
                self._drop()
                if attempt == 2:
                    self.failover()
                    raise
        raise OSError("unreachable")

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class _NoDelayConnection(http.client.HTTPConnection):
    """TCP_NODELAY: without it each request waits 40 ms for the ACK of its headers."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class V3Store:
    """etcd's v3 API (what flannel v0.18+ uses), through etcd's JSON gateway: the same
    requests as gRPC (range, txn, lease grant and keep-alive, watch), as JSON over HTTP/1.1.
    The agents use it rather than python-etcd3: they are forked from `up`, which has imported
    gRPC, and gRPC does not work in such a child (docs/architecture.md)."""

    def __init__(self, endpoints: list[tuple[str, int]]) -> None:
        self.http = _Http(endpoints)
        self.lease_id: str | None = None

    def _call(self, path: str, body: dict) -> dict:
        status, data = self.http.request("POST", path, json.dumps(body), JSON)
        if status != 200:
            raise OSError(f"etcd {path}: HTTP {status} {data[:200]!r}")
        return json.loads(data)

    def get(self, key: str) -> bytes | None:
        kvs = self._call("/v3/kv/range", {"key": _b64(key)}).get("kvs", [])
        return base64.b64decode(kvs[0].get("value", "")) if kvs else None

    def list(self, prefix: str) -> tuple[dict[str, bytes], int]:
        data = self._call(
            "/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(_prefix_end(prefix))}
        )
        kvs = {
            base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", ""))
            for kv in data.get("kvs", [])
        }
        return kvs, int(data["header"]["revision"])

    def write(self, key: str, value: str, ttl: int, create_only: bool) -> bool:
        self.lease_id = self._call("/v3/lease/grant", {"TTL": ttl})["ID"]
        put = {"key": _b64(key), "value": _b64(value), "lease": self.lease_id}
        if not create_only:
            self._call("/v3/kv/put", put)
            return True
        data = self._call(
            "/v3/kv/txn",
            {
                "compare": [{"key": _b64(key), "target": "CREATE", "create_revision": "0"}],
                "success": [{"request_put": put}],
            },
        )
        return bool(data.get("succeeded"))

    def refresh(self, key: str, value: str, ttl: int) -> None:
        """flannel's renewal: a new etcd lease of the full TTL, and the key put again with
        it (the old lease runs out on its own)."""
        self.write(key, value, ttl, create_only=False)

    def watch(self, prefix: str, revision: int, changed: Changed) -> None:
        """One streamed POST /v3/watch; returns when etcd ends or cancels the stream. Events
        that arrive together (within BATCH_WAIT of the first) are handed over together."""
        create = {
            "key": _b64(prefix),
            "range_end": _b64(_prefix_end(prefix)),
            "start_revision": str(revision + 1),
        }
        conn = self.http.connection(None)  # a stream of its own, with no timeout
        try:
            conn.request("POST", "/v3/watch", json.dumps({"create_request": create}), JSON)
            sock = conn.sock  # waited on between lines, never read from directly
            resp = conn.getresponse()
            if resp.status != 200:
                raise OSError(f"etcd watch: HTTP {resp.status} {resp.read()[:200]!r}")
            for lines in batches(resp, sock):
                events, canceled = _watch_events(lines)
                if events:
                    changed(events)
                if canceled:  # e.g. the revision was compacted: list again
                    return
        except (OSError, http.client.HTTPException) as exc:
            self.http.failover()
            raise OSError(f"etcd watch: {exc}") from exc
        finally:
            conn.close()


def batches(
    resp: http.client.HTTPResponse, sock: socket.socket, wait: float = BATCH_WAIT
) -> Iterator[list[bytes]]:
    """The lines of a streamed answer on `sock`, those that arrive within `wait` of the first
    of them together: each batch is one wake-up and one netlink batch for the agent."""
    while line := resp.readline():
        batch, deadline = [line], time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0 and _waiting(resp, sock, left):
            line = resp.readline()
            if not line:
                break
            batch.append(line)
        if lines := [x.strip() for x in batch if x.strip()]:
            yield lines
        if not line:
            return


def _waiting(resp: http.client.HTTPResponse, sock: socket.socket, wait: float) -> bool:
    """Whether more of the answer is buffered, or arrives within `wait` seconds. The buffer
    is peeked at with the socket non-blocking: nothing is consumed, nothing waited for."""
    sock.setblocking(False)
    try:
        buffered = resp.fp.peek(3)
    finally:
        sock.setblocking(True)
    if len(buffered) > 2:  # more than the CRLF that ends the chunk just read
        return True
    return bool(select.select([sock], [], [], wait)[0])


def _watch_events(lines: list[bytes]) -> tuple[list[tuple[str, bytes | None]], bool]:
    """(key, value; None when deleted) of each event in some of a watch's response lines,
    and whether etcd canceled the watch."""
    events: list[tuple[str, bytes | None]] = []
    for line in lines:
        result = json.loads(line).get("result", {})
        if result.get("canceled"):
            return events, True
        for ev in result.get("events", []):
            key = base64.b64decode(ev["kv"]["key"]).decode()
            deleted = ev.get("type") == "DELETE"
            events.append((key, None if deleted else base64.b64decode(ev["kv"].get("value", ""))))
    return events, False


class V2Store:
    """etcd's v2 keys API over HTTP: keys with a TTL, as flannel before v0.18 kept them."""

    def __init__(self, endpoints: list[tuple[str, int]]) -> None:
        self.http = _Http(endpoints)

    def _call(
        self, method: str, key: str, params: dict | None = None, form: dict | None = None
    ) -> tuple[int, dict]:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        body = urllib.parse.urlencode(form) if form else None
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if form else {}
        status, data = self.http.request(method, f"/v2/keys{key}{query}", body, headers)
        return status, json.loads(data or b"{}")

    def _wait(self, prefix: str, index: int) -> tuple[int, dict]:
        """One long poll (?wait=true), on a connection of its own with no timeout."""
        query = urllib.parse.urlencode({"wait": "true", "recursive": "true", "waitIndex": index})
        conn = self.http.connection(None)
        try:
            conn.request("GET", f"/v2/keys{prefix}?{query}")
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"{}")
        except http.client.HTTPException as exc:
            raise OSError(f"etcd v2 watch: {exc}") from exc
        finally:
            conn.close()

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
        """flannel's renewal: the value set again with a fresh TTL, on the existing key."""
        self._call("PUT", key, {"prevExist": "true"}, {"value": value, "ttl": str(ttl)})

    def watch(self, prefix: str, revision: int, changed: Changed) -> None:
        """Long-polling ?wait=true, as flannel's v2 watcher does: one event at a time."""
        index = revision + 1
        while True:
            try:
                status, data = self._wait(prefix.rstrip("/"), index)
            except OSError:
                time.sleep(0.5)
                continue
            if status != 200 or "node" not in data:
                index = int(data.get("index", index)) + 1  # history cleared: go on from now
                continue
            node = data["node"]
            index = node.get("modifiedIndex", index) + 1
            if data.get("action") in ("delete", "expire", "compareAndDelete"):
                changed([(node["key"], None)])
            elif "value" in node:
                changed([(node["key"], node["value"].encode())])


def open_store(api: str, endpoints: list[tuple[str, int]]) -> V3Store | V2Store:
    return V2Store(endpoints) if api == "v2" else V3Store(endpoints)
