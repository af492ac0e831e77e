"""The egress proxy interface: the one way out for a setup step that must download dependencies.

An HTTP proxy on a Unix socket (the sandbox relay makes it `127.0.0.1:<port>` inside; the setup
command gets `HTTPS_PROXY`/`HTTP_PROXY` pointing there). It speaks `CONNECT host:port` (TLS
tunnels) and absolute-form `GET`/`HEAD http://host/...`, and only to the hosts on its allowlist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol

# (host, port) -> the IP addresses to connect to; sync or async. The default is the system resolver.
Resolver = Callable[[str, int], Sequence[str] | Awaitable[Sequence[str]]]


class EgressProxy(Protocol):
    """Allowlist rules (the constructor's `allowed_hosts`):
    - `example.com` allows exactly that host; `*.example.com` allows its subdomains only (not
      `example.com` itself). Compared case-insensitively after IDNA and trailing-dot normalisation.
    - An IP literal is allowed only when listed exactly (as an IP literal).
    - Ports: 443 and 80 unless the constructor says otherwise.
    - Every address an allowed hostname resolves to must be public (not loopback, link-local,
      private, multicast, reserved or unspecified), unless the entry that allowed it is an IP
      literal or `localhost`: DNS cannot point the proxy at the service's database. The proxy
      connects to the address it checked (no second lookup).
    A refused request gets 403 with a one-line reason and is logged (`egress_refused`, host)."""

    socket_path: Path

    def start(self) -> None:
        """Bind `socket_path` (mode 0600) and serve on the proxy's own thread and loop; idempotent."""
        ...

    def close(self) -> None:
        """Stop serving, drop open tunnels, remove the socket; idempotent."""
        ...
