"""The real client address behind Cloudflare / ngrok / a local proxy, for rate limiting.

Forwarding headers are believed only when the direct peer is a trusted proxy (TRUSTED_PROXIES: IPs
or CIDR networks). Then:
1. `X-Forwarded-For`, read right to left, skipping trusted hops: the first untrusted address is the
   client. Right to left because each proxy *appends* what it saw, so only the right end is written
   by infrastructure we trust; the left end is whatever the client chose to send.
2. else `CF-Connecting-IP` (set by Cloudflare's edge, which overwrites any client value).
XFF is preferred because it is robust behind both: Cloudflare also appends the client to XFF, while
behind ngrok a client-sent CF-Connecting-IP passes through untouched and could be forged to dodge
the limit. Anything unparsable falls back to the peer, so a forged header can never make two
clients share a key or one client spread over many keys beyond what the proxy itself reports.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.requests import Request

from app.errors import ConfigError

_Net = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[2001:db8::1]:443"
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "203.0.113.7:51234"
        value = value.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    # An IPv4-mapped IPv6 peer (::ffff:127.0.0.1 on dual-stack sockets) is the IPv4 address.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@dataclass(frozen=True)
class TrustedProxies:
    """Parsed TRUSTED_PROXIES. A peer that is not an IP address (Starlette's "testclient") is never
    trusted."""

    networks: tuple[_Net, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> TrustedProxies:
        """Parse TRUSTED_PROXIES; raises ConfigError naming an entry that is not an IP or CIDR."""
        nets: list[_Net] = []
        for entry in entries:
            try:
                nets.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                raise ConfigError(
                    f"TRUSTED_PROXIES: {entry!r} is not an IP address or CIDR network"
                ) from None
        return cls(networks=tuple(nets))

    def trusts(self, address: str | None) -> bool:
        if not address:
            return False
        ip = _parse_ip(address)
        if ip is None:
            return False
        return any(ip.version == net.version and ip in net for net in self.networks)


def real_client_ip(peer: str | None, headers: Headers, trusted: TrustedProxies) -> str:
    """The address to key the rate limit on."""
    peer = peer or "unknown"
    if not trusted.trusts(peer):
        return peer
    hops = [h.strip() for line in headers.getlist("x-forwarded-for") for h in line.split(",")]
    hops = [h for h in hops if h]
    if hops:
        found = peer
        for hop in reversed(hops):
            ip = _parse_ip(hop)
            if ip is None:
                break  # garbage: keep the last address a trusted hop vouched for
            found = str(ip)
            if not trusted.trusts(found):
                return found
        return found
    cf = headers.get("cf-connecting-ip")
    if cf and (ip := _parse_ip(cf)) is not None:
        return str(ip)
    return peer


def make_key_func(trusted: TrustedProxies) -> Callable[[Request], str]:
    """The rate limits' key (app/intake/rate_limit.py): request → real client address."""

    def key_func(request: Request) -> str:
        peer = request.client.host if request.client else None
        return real_client_ip(peer, request.headers, trusted)

    return key_func
