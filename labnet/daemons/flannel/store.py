"""Where flannel keeps its config and leases: etcd's v3 API (flannel v0.18+) or
its v2 keys API (flannel before v0.18: keys with a TTL, which the article's `etcdctl ls` and
`curl .../v2/keys/...` show). The agent sees one small interface."""

from __future__ import annotations

import base64
import encodings.idna  # noqa: F401 - socket's host lookup imports it: once, before agents fork
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable

ETCD_TIMEOUT = 10  # seconds a call may take: 50 agents starting at once load a 2-core machine
# seconds a watch waits after an event for more: each wake-up of an agent cost it about 2 ms
# of CPU, and its node's 49 leases arrive spread over a few seconds of a 50-node up
BATCH_WAIT = 0.05
JSON = {"Content-Type": "application/json"}
Changed = Callable[[list[tuple[str, bytes | None]]], None]  # (key, value; None: deleted)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _prefix_end(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class _Http:
    """Keep-alive HTTP/1.1 to one of the endpoints, one connection per thread (watch, renew
    and start-up run at once), TCP_NODELAY (or each request waits 40 ms for an ACK). A failed
    call moves the store to the next member of a cluster. Written and read straight on the
    socket: http.client cost 2.4-3.2 ms of CPU a request here, this 0.9-1.1 ms, and an agent
    makes five before its node's subnet.env is written."""

    def __init__(self, endpoints: list[tuple[str, int]]) -> None:
        self.endpoints = endpoints
        self._at = 0
        self._local = threading.local()

    def connect(self, timeout: float | None) -> socket.socket:
        sock = socket.create_connection(self.endpoints[self._at], timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def failover(self) -> None:
        self._at = (self._at + 1) % len(self.endpoints)

    def send(self, sock: socket.socket, method: str, path: str, body: str | None,
             headers: dict[str, str]) -> None:  # fmt: skip
        host, port = self.endpoints[self._at]
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        data = (body or "").encode()
        if body is not None:
            lines.append(f"Content-Length: {len(data)}")
        sock.sendall("\r\n".join(lines).encode() + b"\r\n\r\n" + data)

    def request(
        self,
        method: str,
        path: str,
        body: str | None,
        headers: dict[str, str],
        timeout: float | None = ETCD_TIMEOUT,
    ) -> tuple[int, bytes]:
        """(status, body). With no timeout (a long poll) on a connection of its own."""
        kept = timeout is not None
        sock = getattr(self._local, "sock", None) if kept else None
        for attempt in (1, 2):  # a kept-alive connection the server closed: once more, anew
            try:
                if sock is None:
                    sock = self.connect(timeout)
                    if kept:
                        self._local.sock = sock
                self.send(sock, method, path, body, headers)
                resp = HttpResponse(sock)
                data = resp.read()
                if not kept or resp.close:
                    self._drop(sock)
                return resp.status, data
            except OSError:
                if sock is not None:
                    self._drop(sock)
                sock = None
                if attempt == 2:
                    self.failover()
                    raise
        raise OSError("unreachable")

    def _drop(self, sock: socket.socket) -> None:
        sock.close()
        if getattr(self._local, "sock", None) is sock:
            self._local.sock = None


class V3Store:
    """etcd's v3 API (what flannel v0.18+ uses), through etcd's JSON gateway: the same
    requests as gRPC (range, txn, lease grant and keep-alive, watch), as JSON over HTTP/1.1.

    Measured on a 50-node lab: with python-etcd3's gRPC client each agent had 13 threads and
    spent 0.46 s of CPU getting its lease; now it has 4 threads and, with raw netlink
    instead of pyroute2's IPRoute and raw HTTP instead of http.client, about 0.03 s."""

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
        self._call("/v3/lease/keepalive", {"ID": self.lease_id})

    def watch(self, prefix: str, revision: int, changed: Changed) -> None:
        """One streamed POST /v3/watch; returns when etcd ends or cancels the stream. Events
        that arrive together (within BATCH_WAIT of the first) are handed over together."""
        create = {
            "key": _b64(prefix),
            "range_end": _b64(_prefix_end(prefix)),
            "start_revision": str(revision + 1),
        }
        body = json.dumps({"create_request": create})
        try:
            with self.http.connect(None) as sock:
                self.http.send(sock, "POST", "/v3/watch", body, JSON)
                stream = HttpResponse(sock)
                while lines := stream.lines():
                    events, canceled = _watch_events(lines)
                    if events:
                        changed(events)
                    if canceled:  # e.g. the revision was compacted: list again
                        return
        except OSError:
            self.http.failover()
            raise


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


class HttpResponse:
    """An HTTP/1.1 response read straight from its socket: whole (read), or as the lines of a
    stream as they arrive (lines: a watch, chunked as etcd's gateway sends it; http.client's
    reader took about 0.3 ms a line, and a node of a 50-node lab reads dozens as the lab
    comes up)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.raw = b""  # as received after the headers: chunk sizes and data
        self.body = b""  # the data, not yet handed out
        self.status = 0  # 0 until the headers are in
        self.close = False  # the server closes the connection after this response
        self.chunked = False
        self.length: int | None = None  # Content-Length, when given
        self.ended = False

    def read(self) -> bytes:
        """The whole body (the socket's own timeout applies to each wait)."""
        while not self.ended:
            self._receive()
        return self.body

    def lines(self) -> list[bytes]:
        """Waits for a complete line, then takes the lines arriving within BATCH_WAIT.
        Empty at the end of the stream; OSError on an answer other than 200."""
        self.sock.settimeout(None)
        while b"\n" not in self.body and not self.ended:
            self._receive()
        if self.status != 200:
            raise OSError(f"etcd watch: HTTP {self.status} {self.body[:200]!r}")
        deadline = time.monotonic() + BATCH_WAIT
        while not self.ended and (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                self._receive()
            except TimeoutError:
                break
            finally:
                self.sock.settimeout(None)
        *complete, self.body = self.body.split(b"\n")
        return [line for line in complete if line.strip()]

    def _receive(self) -> None:
        data = self.sock.recv(1 << 16)
        if not data:
            if not self.status or self.chunked or self.length is not None:
                raise ConnectionError("etcd closed the connection mid-answer")
            self.ended = True  # a body that runs until the connection closes
            return
        self.raw += data
        try:
            self._parse()
        except ValueError as exc:  # a chunk size or Content-Length that is not a number
            raise ConnectionError(f"not a valid HTTP answer: {exc}") from None

    def _parse(self) -> None:
        if not self.status and not self._head():
            return
        if not self.chunked:
            self.body, self.raw = self.body + self.raw, b""
            if self.length is not None and len(self.body) >= self.length:
                self.body, self.ended = self.body[: self.length], True
            return
        while not self.ended:
            size_line, sep, rest = self.raw.partition(b"\r\n")
            if not sep:
                return
            size = int(size_line.split(b";")[0], 16)
            if size == 0:  # the last chunk: then trailers, if any, and an empty line
                if rest.startswith(b"\r\n") or b"\r\n\r\n" in rest:
                    self.ended = True  # read to its very end: the next answer starts clean
                return
            if len(rest) < size + 2:
                return
            self.body += rest[:size]
            self.raw = rest[size + 2 :]

    def _head(self) -> bool:
        head, sep, rest = self.raw.lstrip(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            return False
        status_line, *fields = head.split(b"\r\n")
        parts = status_line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            raise ConnectionError(f"not an HTTP answer: {status_line[:100]!r}")
        self.status = int(parts[1])
        for field in fields:
            name, _, value = field.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                self.length = int(value)
            elif name == b"transfer-encoding":
                self.chunked = b"chunked" in value
            elif name == b"connection":
                self.close = value == b"close"
        self.raw = rest
        return True


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
        status, data = self.http.request("GET", f"/v2/keys{prefix}?{query}", None, {}, None)
        return status, json.loads(data or b"{}")

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
