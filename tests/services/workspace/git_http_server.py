"""A local smart-HTTP git server on 127.0.0.1 (the real `git http-backend` behind a tiny HTTP
server) that demands Basic auth `x-access-token:<token>`, so tests prove the token reaches git
through the credential helper. While each request is being served it scans every process's
command line for the token in every form it could take there (`token_forms`: raw, the Basic
credential `base64("x-access-token:" + token)`, `base64(token)`, and base64 of the token at any
alignment): `requests[i].token_in_argv` proves it never rides on argv (e.g. as `-c
http.extraHeader=Authorization: Basic ...`). Every
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


USERNAME = "x-access-token"  # what the server demands; gitenv.GIT_USERNAME must say the same


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def token_forms(token: str) -> tuple[str, ...]:
    """The token as it could be written down: raw, the Basic credential git would send,
    base64 of the token alone, and the stretch of base64 text that encodes the token whatever the
    length of what precedes it (3 alignments; the partial groups at both ends are left out)."""
    raw = token.encode()
    forms = [token, _b64(f"{USERNAME}:{token}".encode()), _b64(raw)]
    for pad in range(3):
        encoded = _b64(b"\0" * pad + raw)
        start = 4 if pad else 0  # the first group mixes in the preceding bytes
        end = len(encoded) - (4 if (pad + len(raw)) % 3 else 0)  # the last group may be partial
        forms.append(encoded[start:end])
    return tuple(dict.fromkeys(f for f in forms if len(f) >= 8))


def text_has_token(text: str | bytes, token: str) -> bool:
    """True when `text` holds the token in any of its `token_forms`."""
    data = text.encode(errors="replace") if isinstance(text, str) else text
    return any(form.encode() in data for form in token_forms(token))


def token_in_any_cmdline(token: str) -> bool:
    """True when some process's argv holds the token in any of its forms."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if text_has_token(fh.read(), token):
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
                                        token_in_any_cmdline(srv.token),
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
            "REMOTE_USER": USERNAME,  # enables receive-pack (push)
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
        self.expected_auth = "Basic " + _b64(f"{USERNAME}:{token}".encode())
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
