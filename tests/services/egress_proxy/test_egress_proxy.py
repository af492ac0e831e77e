"""The egress proxy over its real Unix socket; upstreams are local servers on 127.0.0.1 only, and
hostnames resolve through an injected resolver (no DNS, no other address is ever tried)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from app.services.egress_proxy import EgressProxyServer, Refused, is_public, normalize_host
from tests.services.model_proxy.relay import TcpToUnixRelay

PUBLIC = "93.184.215.14"  # a public address: resolved to in policy checks, never connected to


class EchoServer:
    """TCP echo on 127.0.0.1 (stands in for a TLS server behind CONNECT); counts connections."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0

    def start(self) -> EchoServer:
        threading.Thread(target=self._loop, daemon=True).start()
        return self

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def stop(self) -> None:
        self.sock.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer().start()
    yield server
    server.stop()


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="eg-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class FakeDNS:
    """The injected resolver: a fixed table, and a record of what was looked up."""

    def __init__(self, table: dict[str, Sequence[str]]) -> None:
        self.table, self.lookups = table, []

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.lookups.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


def make_proxy(
    sock_dir: Path, hosts: Sequence[str], *, ports: Sequence[int] = (443, 80), dns: FakeDNS | None = None
) -> EgressProxyServer:
    proxy = EgressProxyServer(
        sock_dir / "egress.sock", hosts, allowed_ports=ports, resolver=dns or FakeDNS({})
    )
    proxy.start()
    return proxy


def connect(proxy: EgressProxyServer, authority: str, payload: bytes = b"") -> tuple[bytes, socket.socket]:
    """Send `CONNECT authority` (plus `payload` in the same write); the answer head and the socket."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(str(proxy.socket_path))
    s.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode() + payload)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            break
        head += chunk
    return head, s


def read_all(s: socket.socket) -> bytes:
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


# ----- CONNECT -----
def test_connect_to_an_exactly_listed_ip(sock_dir: Path, echo: EchoServer) -> None:
    proxy = make_proxy(sock_dir, ["127.0.0.1"], ports=[echo.port])
    try:
        head, s = connect(proxy, f"127.0.0.1:{echo.port}", payload=b"early bytes|")
        with s:
            assert head.startswith(b"HTTP/1.1 200 ")
            s.sendall(b"hello through the tunnel")
            got = b""
            while len(got) < len(b"early bytes|hello through the tunnel"):
                got += s.recv(65536)
            assert got == b"early bytes|hello through the tunnel"
    finally:
        proxy.close()
    assert not proxy.socket_path.exists()


def test_refused_host_gets_403_with_a_reason_and_a_log_line(
    sock_dir: Path, echo: EchoServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    dns = FakeDNS({"registry.npmjs.org": [PUBLIC], "evil.test": ["127.0.0.1"]})
    proxy = make_proxy(sock_dir, ["registry.npmjs.org"], ports=[echo.port, 443], dns=dns)
    try:
        head, s = connect(proxy, f"evil.test:{echo.port}")
        with s:
            rest = read_all(s)
        assert head.startswith(b"HTTP/1.1 403 ")
        assert rest == b"auto-code egress proxy: host evil.test is not on the allowlist\n"
    finally:
        proxy.close()
    assert echo.connections == 0 and dns.lookups == []  # refused before any lookup
    refused = [r for r in caplog.records if r.getMessage() == "egress_refused"]
    assert len(refused) == 1 and refused[0].host == "evil.test"  # type: ignore[attr-defined]


def test_ip_literals_only_when_listed_exactly(sock_dir: Path, echo: EchoServer) -> None:
    proxy = make_proxy(sock_dir, ["localhost", "*.0.0.1", "127.0.0.2"], ports=[echo.port])
    try:
        for authority in (f"127.0.0.1:{echo.port}", f"[::ffff:127.0.0.1]:{echo.port}", f"[::1]:{echo.port}"):
            head, s = connect(proxy, authority)
            s.close()
            assert head.startswith(b"HTTP/1.1 403 "), authority
    finally:
        proxy.close()
    assert echo.connections == 0


def test_port_not_allowed(sock_dir: Path, echo: EchoServer) -> None:
    proxy = make_proxy(sock_dir, ["127.0.0.1"])  # default ports 443, 80
    try:
        head, s = connect(proxy, f"127.0.0.1:{echo.port}")
        with s:
            assert head.startswith(b"HTTP/1.1 403 ") and read_all(s).endswith(
                f"port {echo.port} is not allowed\n".encode()
            )
    finally:
        proxy.close()
    assert echo.connections == 0


def test_hostname_resolving_to_a_private_address_is_refused(sock_dir: Path, echo: EchoServer) -> None:
    """DNS rebinding: an allowed name that points at 127.0.0.1 (e.g. the service's database port)."""
    dns = FakeDNS({"evil.localtest": ["127.0.0.1"], "localhost": ["127.0.0.1"]})
    proxy = make_proxy(sock_dir, ["evil.localtest", "localhost"], ports=[echo.port], dns=dns)
    try:
        head, s = connect(proxy, f"evil.localtest:{echo.port}")
        with s:
            assert head.startswith(b"HTTP/1.1 403 ")
            assert read_all(s).endswith(b"host evil.localtest resolves to no public address\n")
        assert echo.connections == 0
        # `localhost` is trusted to be local, because the operator listed it by name.
        head, s = connect(proxy, f"LocalHost.:{echo.port}")
        with s:
            assert head.startswith(b"HTTP/1.1 200 ")
            s.sendall(b"ping")
            assert s.recv(4) == b"ping"
    finally:
        proxy.close()
    assert dns.lookups == ["evil.localtest", "localhost"]


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "224.0.0.1",
        "::",
    ],
)
def test_non_public_addresses(address: str) -> None:
    import ipaddress

    assert not is_public(ipaddress.ip_address(address))


def test_policy_matching() -> None:
    """Wildcards, IDNA, case and trailing dots; checked with a resolver giving a public address."""
    dns = FakeDNS(
        {
            h: [PUBLIC]
            for h in (
                "a.example.test",
                "b.a.example.test",
                "example.test",
                "evilexample.test",
                "xn--bcher-kva.example",
                "pypi.org",
                "files.pythonhosted.org",
            )
        }
    )
    proxy = EgressProxyServer(
        Path("/nonexistent.sock"),
        ["*.example.test", "Bücher.Example.", "PyPI.org", "files.pythonhosted.org."],
        resolver=dns,
    )

    def verdict(host: str, port: int = 443) -> int:
        try:
            asyncio.run(proxy.check(host, port))
            return 200
        except Refused as exc:
            return exc.status

    assert verdict("a.example.test") == 200
    assert verdict("B.A.Example.Test.") == 200
    assert verdict("example.test") == 403  # subdomains only
    assert verdict("evilexample.test") == 403
    assert verdict("xn--bcher-kva.example") == 200
    assert verdict("BÜCHER.example") == 200
    assert verdict("pypi.org") == 200 and verdict("pypi.org.") == 200 and verdict("pypi.org", 80) == 200
    assert verdict("pypi.org", 8443) == 403
    assert verdict("files.pythonhosted.org") == 200
    assert verdict("sub.pypi.org") == 403
    assert verdict("pypi.org..") == 403 and verdict("pypi org") == 403 and verdict("") == 403
    assert normalize_host("[::1]") == "::1" and normalize_host("Ex.COM.") == "ex.com"
    for bad in ("http://x.com", "exa mple.com", "*.", "a/b"):
        with pytest.raises(ValueError):
            EgressProxyServer(Path("/x.sock"), [bad])


def test_async_resolver_and_mixed_answers() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["10.1.2.3", PUBLIC, "::1"]

    proxy = EgressProxyServer(Path("/x.sock"), ["mixed.test"], resolver=resolver)
    assert asyncio.run(proxy.check("mixed.test", 443)) == [PUBLIC]  # only the public one is used


def test_unresolvable_host_is_a_502(sock_dir: Path) -> None:
    proxy = make_proxy(sock_dir, ["nowhere.test"], dns=FakeDNS({}))
    try:
        head, s = connect(proxy, "nowhere.test:443")
        s.close()
        assert head.startswith(b"HTTP/1.1 502 ")
    finally:
        proxy.close()


# ----- plain http forwarding -----
class _Origin(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, dict[str, str]]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        body = b"package tarball bytes"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def origin() -> Iterator[tuple[int, list[tuple[str, dict[str, str]]]]]:
    handler = type("Origin", (_Origin,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], handler.seen
    server.shutdown()
    server.server_close()


def test_absolute_form_get_through_a_real_client(sock_dir: Path, origin: tuple[int, list[Any]]) -> None:
    """httpx configured with the proxy (through a TCP->Unix relay, as inside the sandbox)."""
    port, seen = origin
    proxy = make_proxy(sock_dir, ["127.0.0.1"], ports=[port])
    try:
        with TcpToUnixRelay(proxy.socket_path) as relay, httpx.Client(proxy=relay.url, timeout=30) as client:
            r = client.get(f"http://127.0.0.1:{port}/pkg/a.tgz?v=1", headers={"x-keep": "1"})
            assert r.status_code == 200 and r.content == b"package tarball bytes"
            refused = client.get("http://other.test/pkg")
            assert refused.status_code == 403 and b"not on the allowlist" in refused.content
    finally:
        proxy.close()
    assert len(seen) == 1
    path, headers = seen[0]
    assert path == "/pkg/a.tgz?v=1"
    assert headers["host"] == f"127.0.0.1:{port}" and headers["x-keep"] == "1"
    assert headers["connection"] == "close" and "proxy-connection" not in headers


def test_other_methods_and_https_absolute_form(sock_dir: Path, origin: tuple[int, list[Any]]) -> None:
    port, seen = origin
    proxy = make_proxy(sock_dir, ["127.0.0.1"], ports=[port])
    try:
        for line, status in (
            (f"POST http://127.0.0.1:{port}/ HTTP/1.1", b"405"),
            (f"GET https://127.0.0.1:{port}/ HTTP/1.1", b"400"),
            ("GET /relative HTTP/1.1", b"400"),
            ("CONNECT 127.0.0.1 HTTP/1.1", b"400"),
            ("garbage\x01", b"400"),
        ):
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(30)
                s.connect(str(proxy.socket_path))
                s.sendall(line.encode() + b"\r\nHost: x\r\ncontent-length: 0\r\n\r\n")
                assert read_all(s).split(b" ")[1] == status, line
    finally:
        proxy.close()
    assert seen == []
