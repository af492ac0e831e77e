"""A local smart-HTTP git server on 127.0.0.1 (the real `git http-backend` behind a tiny HTTP
server) that demands Basic auth `x-access-token:<token>`, so tests prove the token reaches git
through the credential helper. While each request is being served it scans every process's
command line for the token: `requests[i].token_in_argv` proves it never rides on argv. Every
request's raw `Authorization` header is kept too, so a second server can play the attacker and
show what a client tried to hand it (`srv.received_token(token)`).
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class SeenRequest:
    method: str
    path: str
    authorized: bool
    token_in_argv: bool
    authorization: str = ""

    def carries(self, token: str) -> bool:
        """True when this request's Basic credentials (or raw header) contain `token`."""
        raw = self.authorization
        scheme, _, value = raw.partition(" ")
        if scheme.lower() == "basic":
            try:
                raw += " " + base64.b64decode(value).decode(errors="replace")
            except ValueError:
                pass
        return token in raw


def _token_in_any_cmdline(token: str) -> bool:
    needle = token.encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if needle in fh.read():
                        return True
            except OSError:
                continue
    return False


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        srv = self.server
        authorized = self.headers.get("Authorization") == srv.expected_auth
        srv.requests.append(SeenRequest(self.command, self.path, authorized,
                                        _token_in_any_cmdline(srv.token),
                                        self.headers.get("Authorization", "")))
        if not authorized:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        url = urlsplit(self.path)
        body = self._body()
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "GIT_PROJECT_ROOT": str(srv.project_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": url.path,
            "QUERY_STRING": url.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "x-access-token",  # enables receive-pack (push)
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
        }
        proc = subprocess.Popen(["git", "http-backend"], env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            out, _ = proc.communicate(body, timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            self.send_error(504)
            return
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, project_root: Path, token: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.project_root = project_root
        self.token = token
        self.expected_auth = "Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()
        self.requests: list[SeenRequest] = []


class GitHttpServer:
    """`with GitHttpServer(root, token) as srv:` serves the bare repos under `root`;
    `srv.url("remote.git")` is the clone URL; `srv.requests` what was asked."""

    def __init__(self, project_root: Path, token: str) -> None:
        self._server = _Server(project_root, token)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def requests(self) -> list[SeenRequest]:
        return self._server.requests

    def received_token(self, token: str) -> bool:
        return any(r.carries(token) for r in self.requests)

    def url(self, repo: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/{repo}"

    def __enter__(self) -> GitHttpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
