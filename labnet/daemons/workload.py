"""The built-in workload: a tiny TCP / HTTP / UDP server whose reply is one line,

    <name> <client ip>:<client port>

so load balancing (which pod answered) and NAT (which source it saw) show in every reply.
Also the client side used by tests and tasks: one request from inside a lab namespace.
Standard library only: it starts fast in every container.
"""

from __future__ import annotations

import selectors
import socket
import sys
from datetime import datetime, timezone

from labnet.kernel import netns


def reply_line(name: str, client: tuple[str, int]) -> str:
    return f"{name} {client[0]}:{client[1]}\n"


def _log(text: str) -> None:
    stamp = datetime.now(timezone.utc).strftime("%H:%M:%S.%f")[:-3]
    sys.stdout.write(f"{stamp} {text}\n")
    sys.stdout.flush()


HTTP_REPLY = (
    "HTTP/1.0 200 OK\r\nServer: labnet\r\nContent-Type: text/plain\r\n"
    "Content-Length: {length}\r\nConnection: close\r\n\r\n"
)


def _listen(proto: str, port: int) -> socket.socket:
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    sock = socket.socket(socket.AF_INET, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", port))
    if proto != "udp":
        sock.listen(128)
    sock.setblocking(False)
    return sock


def _http_answer(name: str, conn: socket.socket, client: tuple[str, int], head: bytes) -> None:
    request_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
    body = reply_line(name, client).encode()
    conn.setblocking(True)
    conn.sendall(HTTP_REPLY.format(length=len(body)).encode() + body)
    conn.close()
    _log(f'http {client[0]}:{client[1]} "{request_line}" 200 -')


def serve(name: str, listeners: list[tuple[str, int]]) -> int:
    """Serve every (proto, port) until killed. Binds all addresses of the namespace.

    One thread and one selector for all listeners: a lab runs hundreds of these, and a
    thread per socket would cost each of them its own stack and malloc arena.
    """
    sel = selectors.DefaultSelector()
    for proto, port in listeners:
        sock = _listen(proto, port)
        sel.register(sock, selectors.EVENT_READ, (proto, None, b""))
        _log(f"listening {proto}:{port} as {name}")
    while True:
        for key, _ in sel.select():
            proto, client, head = key.data
            sock = key.fileobj
            if proto == "udp":
                _data, addr = sock.recvfrom(2048)
                sock.sendto(reply_line(name, addr).encode(), addr)
                _log(f"udp  {addr[0]}:{addr[1]}")
            elif proto == "tcp":
                conn, addr = sock.accept()
                conn.setblocking(True)
                conn.sendall(reply_line(name, addr).encode())
                conn.close()
                _log(f"tcp  {addr[0]}:{addr[1]}")
            elif proto == "http":  # a new connection: wait for its request head
                conn, addr = sock.accept()
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ, ("http-request", addr, b""))
            else:
                _read_request(sel, name, sock, client, head)


def _read_request(
    sel: selectors.BaseSelector, name: str, conn: socket.socket, client: tuple, head: bytes
) -> None:
    try:
        chunk = conn.recv(4096)
    except OSError:
        chunk = b""
    head += chunk
    if chunk and b"\r\n\r\n" not in head and len(head) < 65536:
        sel.modify(conn, selectors.EVENT_READ, ("http-request", client, head))
        return
    sel.unregister(conn)
    if chunk:
        _http_answer(name, conn, client, head)
    else:
        conn.close()


# ---------------------------------------------------------------- the client side


def _socket(ns: str | None, kind: int) -> socket.socket:
    if ns is None:
        return socket.socket(socket.AF_INET, kind)
    with netns.entered(ns):
        return socket.socket(socket.AF_INET, kind)


def request(ns: str | None, proto: str, ip: str, port: int, timeout: float = 3.0) -> str:
    """One request from inside namespace `ns`; returns the server's reply line (stripped)."""
    if proto == "udp":
        with _socket(ns, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(b"?\n", (ip, port))
            return s.recv(512).decode().strip()
    with _socket(ns, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect((ip, port))
        if proto == "http":
            s.sendall(f"GET / HTTP/1.0\r\nHost: {ip}\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    text = data.decode()
    if proto == "http":
        head, _, body = text.partition("\r\n\r\n")
        if not head.startswith("HTTP/1.0 200") and not head.startswith("HTTP/1.1 200"):
            raise OSError(f"HTTP answer: {head.splitlines()[0] if head else 'none'}")
        text = body
    return text.strip()


def main(argv: list[str]) -> int:
    """python -m labnet.daemons.workload NAME PROTO:PORT... (what a container runs)."""
    name, specs = argv[0], argv[1:]
    return serve(name, [(p, int(n)) for p, n in (s.split(":") for s in specs)])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
