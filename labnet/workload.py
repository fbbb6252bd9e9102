"""The built-in workload: a tiny TCP / HTTP / UDP server whose reply is one line,

    <name> <client ip>:<client port>

so load balancing (which pod answered) and NAT (which source it saw) show in every reply.
Also the client side used by tests and tasks: one request from inside a lab namespace.
Standard library only: it starts fast in every container.
"""

from __future__ import annotations

import http.server
import socket
import socketserver
import sys
import threading
from datetime import datetime, timezone

from . import netns


def reply_line(name: str, client: tuple[str, int]) -> str:
    return f"{name} {client[0]}:{client[1]}\n"


def _log(text: str) -> None:
    stamp = datetime.now(timezone.utc).strftime("%H:%M:%S.%f")[:-3]
    sys.stdout.write(f"{stamp} {text}\n")
    sys.stdout.flush()


def _tcp_handler(name: str) -> type:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.sendall(reply_line(name, self.client_address).encode())
            _log(f"tcp  {self.client_address[0]}:{self.client_address[1]}")

    return Handler


def _http_handler(name: str) -> type:
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "labnet"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            body = reply_line(name, self.client_address).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args: object) -> None:
            _log(f"http {self.client_address[0]}:{self.client_address[1]} {fmt % args}")

    return Handler


def _udp_handler(name: str) -> type:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            _data, sock = self.request
            sock.sendto(reply_line(name, self.client_address).encode(), self.client_address)
            _log(f"udp  {self.client_address[0]}:{self.client_address[1]}")

    return Handler


class _TCPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128


class _HTTPServer(http.server.ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128

    def server_bind(self) -> None:
        # HTTPServer's own server_bind asks DNS for its name (getfqdn): in a lab namespace
        # there is no resolver, and each start would wait out its 5 s timeout.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def serve(name: str, listeners: list[tuple[str, int]]) -> int:
    """Serve every (proto, port) until killed. Binds all addresses of the namespace."""
    servers = []
    for proto, port in listeners:
        if proto == "http":
            servers.append(_HTTPServer(("0.0.0.0", port), _http_handler(name)))
        elif proto == "tcp":
            servers.append(_TCPServer(("0.0.0.0", port), _tcp_handler(name)))
        else:
            servers.append(socketserver.ThreadingUDPServer(("0.0.0.0", port), _udp_handler(name)))
        _log(f"listening {proto}:{port} as {name}")
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return 0


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
    """python -m labnet.workload NAME PROTO:PORT... (what a container runs)."""
    name, specs = argv[0], argv[1:]
    return serve(name, [(p, int(n)) for p, n in (s.split(":") for s in specs)])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
