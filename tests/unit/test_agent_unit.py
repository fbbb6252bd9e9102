"""The agent's pure parts: flannel's lease value byte for byte, subnet choice, and how a
watch stream from etcd is read."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
import time
from ipaddress import IPv4Network

import pytest

from labnet.daemons.flannel import store
from labnet.daemons.flannel.lease import Lease, free_subnets
from labnet.daemons.flannel.store import _watch_events


def test_lease_value_is_flannel_v07_json():
    lease = Lease(IPv4Network("172.16.57.0/24"), "10.46.181.146", "d6:51:2e:80:5c:69")
    assert lease.key_name == "172.16.57.0-24"
    assert lease.to_json() == (
        '{"PublicIP":"10.46.181.146","BackendType":"vxlan",'
        '"BackendData":{"VtepMAC":"d6:51:2e:80:5c:69"}}'
    )
    assert Lease.parse("/coreos.com/network/subnets/172.16.57.0-24", lease.to_json()) == lease


def test_free_subnets_skip_the_first_and_taken_ones():
    config = {"Network": "172.16.0.0/16", "SubnetLen": 24}
    free = free_subnets(config, {IPv4Network("172.16.1.0/24")})
    assert free[0] == IPv4Network("172.16.2.0/24")
    assert len(free) == 100
    assert IPv4Network("172.16.0.0/24") not in free


def test_free_subnets_respect_min_and_max():
    config = {
        "Network": "10.10.0.0/16",
        "SubnetLen": 24,
        "SubnetMin": "10.10.5.0",
        "SubnetMax": "10.10.6.0",
    }
    assert free_subnets(config, set()) == [IPv4Network("10.10.5.0/24"), IPv4Network("10.10.6.0/24")]
    assert free_subnets(config, {IPv4Network("10.10.5.0/24"), IPv4Network("10.10.6.0/24")}) == []


def test_host_gw_lease_has_no_backend_data():
    """flannel's LeaseAttrs omits an empty BackendData: host-gw leases are PublicIP + type."""
    lease = Lease(IPv4Network("172.16.2.0/24"), "10.46.1.2", None, "host-gw")
    assert lease.to_json() == '{"PublicIP":"10.46.1.2","BackendType":"host-gw"}'
    assert Lease.parse("/coreos.com/network/subnets/172.16.2.0-24", lease.to_json()) == lease


def test_unparsable_lease_keys_are_refused():
    value = '{"PublicIP":"10.0.0.1","BackendType":"host-gw"}'
    for key in ("172.16.5-24", "172.16.5.1-24", "x-24", "172.16.5.0-33"):
        with pytest.raises(ValueError):
            Lease.parse(f"/coreos.com/network/subnets/{key}", value)


def _chunked(*parts: bytes) -> list[bytes]:
    return [b"%x\r\n%s\r\n" % (len(p), p) for p in parts]


def _answer(sock: socket.socket) -> http.client.HTTPResponse:
    resp = http.client.HTTPResponse(sock)
    resp.begin()
    return resp


def test_a_watch_stream_is_read_as_lines_and_lines_arriving_together_are_batched():
    """etcd's gateway streams a watch as chunks, one JSON line each; they are split anywhere."""
    ours, etcd = socket.socketpair()
    with ours, etcd:
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        wire = head + b"".join(_chunked(b'{"result":{"a":1}}\n', b'{"result":', b'{"b":2}}\n'))
        for i in range(0, len(wire), 7):  # in pieces of 7 bytes, as TCP may deliver them
            etcd.sendall(wire[i : i + 7])
        batches = store.batches(_answer(ours), ours)
        assert next(batches) == [b'{"result":{"a":1}}', b'{"result":{"b":2}}']

        def later() -> None:
            time.sleep(store.BATCH_WAIT / 5)
            etcd.sendall(b"".join(_chunked(b'{"c":3}\n')))

        etcd.sendall(b"".join(_chunked(b'{"d":4}\n')))
        threading.Thread(target=later).start()
        assert next(batches) == [b'{"d":4}', b'{"c":3}']  # within BATCH_WAIT: one batch
        time.sleep(store.BATCH_WAIT * 2)
        etcd.sendall(b"".join(_chunked(b'{"e":5}\n')))
        assert next(batches) == [b'{"e":5}']  # after BATCH_WAIT: a batch of its own
        etcd.sendall(b"0\r\n\r\n")
        assert list(batches) == []  # the end of the stream


def test_a_batch_ends_after_batch_wait_while_the_stream_stays_open():
    ours, etcd = socket.socketpair()
    with ours, etcd:
        etcd.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        etcd.sendall(b"".join(_chunked(b'{"a":1}\n')))
        started = time.monotonic()
        assert next(store.batches(_answer(ours), ours)) == [b'{"a":1}']
        assert store.BATCH_WAIT <= time.monotonic() - started < 1.0


def test_watch_events_keep_their_order_and_deletions():
    def line(*events: dict) -> bytes:
        return json.dumps({"result": {"events": list(events)}}).encode()

    def kv(key: str, value: str | None = None) -> dict:
        out = {"key": base64.b64encode(key.encode()).decode()}
        if value is not None:
            out["value"] = base64.b64encode(value.encode()).decode()
        return {"kv": out} | ({} if value is not None else {"type": "DELETE"})

    lines = [line(kv("/a", "1"), kv("/b")), line(kv("/c", "3"))]
    events, canceled = _watch_events(lines)
    assert events == [("/a", b"1"), ("/b", None), ("/c", b"3")] and not canceled
    events, canceled = _watch_events([line(kv("/a", "1")), b'{"result":{"canceled":true}}'])
    assert events == [("/a", b"1")] and canceled


def _store_on(monkeypatch, ours: socket.socket) -> store.V3Store:
    """A V3Store whose connections are one end of a socket pair: the test plays etcd."""
    conn = http.client.HTTPConnection("etcd", 2379)
    conn.sock = ours
    s = store.V3Store([("etcd", 2379)])
    monkeypatch.setattr(s.http, "connection", lambda timeout: conn)
    return s


def test_a_refused_watch_is_an_error(monkeypatch):
    ours, etcd = socket.socketpair()
    with ours, etcd:
        s = _store_on(monkeypatch, ours)
        etcd.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
        with pytest.raises(OSError, match="503"):
            s.watch("/coreos.com/network/subnets/", 7, lambda events: None)
        request = etcd.recv(4096)
        assert request.startswith(b"POST /v3/watch HTTP/1.1\r\n")
        body = json.loads(request.split(b"\r\n\r\n", 1)[1])
        assert body["create_request"]["start_revision"] == "8"


def test_requests_share_a_kept_alive_connection(monkeypatch):
    ours, etcd = socket.socketpair()
    with ours, etcd:
        s = _store_on(monkeypatch, ours)
        value = base64.b64encode(b'{"Network":"172.16.0.0/16"}').decode()
        for _ in range(2):
            answer = json.dumps({"kvs": [{"value": value}]}).encode()
            etcd.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
            assert s.get("/coreos.com/network/config") == b'{"Network":"172.16.0.0/16"}'
        requests = etcd.recv(8192)
        assert requests.count(b"POST /v3/kv/range HTTP/1.1\r\n") == 2
