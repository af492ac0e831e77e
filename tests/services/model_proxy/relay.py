"""A minimal TCP -> Unix socket relay (what the sandbox's relay does): each connection accepted on
127.0.0.1:<port> is copied byte for byte, both ways, to a new connection to the Unix socket."""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path


class TcpToUnixRelay:
    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._stopping = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TcpToUnixRelay:
        threading.Thread(target=self._accept_loop, name="tcp-uds-relay", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def __enter__(self) -> TcpToUnixRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(str(self.socket_path))
            except OSError:
                client.close()
                continue
            pair = _Pair(client, upstream)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(src, dst, pair), daemon=True).start()


class _Pair:
    """Both sockets of one relayed connection; closed when both directions have ended."""

    def __init__(self, *socks: socket.socket) -> None:
        self.socks, self.open_directions, self.lock = socks, 2, threading.Lock()

    def direction_done(self) -> None:
        with self.lock:
            self.open_directions -= 1
            last = self.open_directions == 0
        if last:
            for s in self.socks:
                s.close()


def _pipe(src: socket.socket, dst: socket.socket, pair: _Pair) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            src.shutdown(socket.SHUT_RD)
        pair.direction_done()
