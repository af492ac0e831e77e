"""The egress proxy's policy: which `host:port` may be reached, and at which addresses.

Hosts are compared after normalisation (IDNA, lower case, no trailing dot; IP literals in canonical
form) against the configured entries; a hostname is resolved once and only the addresses that pass
(public, unless the operator named the address or `localhost` itself) are returned, so the proxy
connects to exactly what was checked. The rules are stated on `EgressProxy` (base.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from app.services.egress_proxy.base import Resolver

_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$"
)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(Exception):
    """A request the proxy will not carry: `status` and a one-line reason for the client."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason
        self.host: str | None = None  # the refused destination, when known (set by the server's _with_host)


def normalize_host(raw: str) -> str:
    """Lower-case ASCII (IDNA) form without a trailing dot, or an IP literal's canonical text.
    Raises ValueError for anything that is neither a hostname nor an IP address."""
    text = raw.strip()
    if text.startswith("[") and text.endswith("]"):
        return str(ipaddress.IPv6Address(text[1:-1]))
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(text))
    text = text.removesuffix(".").lower()
    try:
        ascii_name = text.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise ValueError(f"not a valid hostname: {raw!r}") from exc
    if not _HOSTNAME_RE.match(ascii_name):
        raise ValueError(f"not a valid hostname: {raw!r}")
    return ascii_name


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_public(address: IPAddress) -> bool:
    """Not loopback, link-local, private, shared, reserved, multicast or unspecified (an IPv4
    address mapped into IPv6 is judged as the IPv4 address)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class Entry:
    """One allowlist entry, normalised."""

    text: str  # as configured
    host: str  # normalised host, or the suffix ".example.com" of a wildcard
    wildcard: bool = False
    ip: IPAddress | None = None

    @property
    def trusts_private(self) -> bool:
        """Addresses need not be public: the operator named the address (or localhost) itself."""
        return self.ip is not None or self.host == "localhost"

    @classmethod
    def parse(cls, raw: str) -> Entry:
        text = raw.strip()
        if text.startswith("*."):
            return cls(text=text, host="." + normalize_host(text[2:]), wildcard=True)
        host = normalize_host(text)
        return cls(text=text, host=host, ip=_ip(host))

    def matches(self, host: str, ip: IPAddress | None) -> bool:
        if self.ip is not None or ip is not None:
            return self.ip is not None and ip is not None and self.ip == ip
        if self.wildcard:
            return host.endswith(self.host) and len(host) > len(self.host)
        return host == self.host


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class Allowlist:
    """The configured entries and ports; `resolver` replaces the system resolver (tests, a pinned DNS)."""

    def __init__(
        self, allowed_hosts: Sequence[str], allowed_ports: Iterable[int], resolver: Resolver | None = None
    ) -> None:
        self.entries = tuple(Entry.parse(h) for h in allowed_hosts if h.strip())
        self.allowed_ports = frozenset(int(p) for p in allowed_ports)
        self._resolver: Resolver = resolver or system_resolver

    async def check(self, raw_host: str, port: int) -> list[str]:
        """The addresses `raw_host:port` may be reached at (first usable first); Refused if none."""
        try:
            host = normalize_host(raw_host)
        except ValueError:
            raise Refused(403, f"host {raw_host[:100]!r} is not a valid hostname") from None
        ip = _ip(host)
        entry = next((e for e in self.entries if e.matches(host, ip)), None)
        if entry is None:
            raise Refused(403, f"host {host} is not on the allowlist")
        if port not in self.allowed_ports:
            raise Refused(403, f"port {port} is not allowed")
        if ip is not None:
            return [str(ip)]
        try:
            found = self._resolver(host, port)
            addresses = list(await found if inspect.isawaitable(found) else found)
        except OSError as exc:
            raise Refused(502, f"cannot resolve {host}: {exc.strerror or type(exc).__name__}") from None
        usable = [
            a for a in addresses if (addr := _ip(a)) is not None and (entry.trusts_private or is_public(addr))
        ]
        if not usable:
            raise Refused(403, f"host {host} resolves to no public address")
        return usable
