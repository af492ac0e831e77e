"""A small real reverse proxy on 127.0.0.1 that rewrites `Host` the way nginx does by default
(`proxy_set_header Host $proxy_host; proxy_set_header Connection close;`): every request reaches the
service with `Host: <upstream name>` (e.g. `auto-code:3001`, the name in `proxy_pass`), whatever the
browser sent. Everything else, the body and the answer (streamed, so SSE works) pass through as bytes.

One request per client connection: the upstream is asked to close (`Connection: close`), so the
client opens a new connection, whose request is rewritten too. `heads` records the request heads
as forwarded, so a test can show the service really saw the rewritten Host.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

HOP_BY_HOP = (b"host", b"connection", b"keep-alive", b"proxy-connection")
MAX_HEAD = 65536


@dataclass
class HostRewritingProxy:
    url: str
    host_header: str
    heads: list[bytes] = field(default_factory=list)

    def hosts_seen(self) -> list[str]:
        return [line.split(b":", 1)[1].strip().decode() for head in self.heads
                for line in head.split(b"\r\n") if line.lower().startswith(b"host:")]


def _rewrite(head: bytes, host_header: str) -> bytes:
    request_line, *lines = head.split(b"\r\n")
    kept = [line for line in lines if line and line.split(b":", 1)[0].strip().lower() not in HOP_BY_HOP]
    return b"\r\n".join([request_line, f"Host: {host_header}".encode(), *kept, b"Connection: close",
                         b"", b""])


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def host_rewriting_proxy(upstream_port: int, host_header: str = "auto-code:3001",
                         port: int = 0) -> Iterator[HostRewritingProxy]:
    """Serve on 127.0.0.1:`port` (0: any free one), forward to 127.0.0.1:`upstream_port` with
    `Host: host_header`."""
    heads: list[bytes] = []

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            client: socket.socket = self.request
            buffered = b""
            while b"\r\n\r\n" not in buffered:
                chunk = client.recv(65536)
                if not chunk or len(buffered) > MAX_HEAD:
                    return
                buffered += chunk
            head, rest = buffered.split(b"\r\n\r\n", 1)
            forwarded = _rewrite(head, host_header)
            heads.append(forwarded)
            with socket.create_connection(("127.0.0.1", upstream_port)) as upstream:
                upstream.sendall(forwarded + rest)
                body = threading.Thread(target=_pump, args=(client, upstream), daemon=True)
                body.start()
                _pump(upstream, client)  # until the service closes (Connection: close)

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, name="host-proxy", daemon=True)
    thread.start()
    try:
        yield HostRewritingProxy(url=f"http://127.0.0.1:{server.server_address[1]}",
                                 host_header=host_header, heads=heads)
    finally:
        server.shutdown()
        server.server_close()
