"""The rate-limit key: the real client, believing forwarding headers only from trusted proxies."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from app.errors import ConfigError
from app.intake.client_ip import TrustedProxies, real_client_ip

TRUSTED = TrustedProxies.parse(["127.0.0.1", "::1", "10.0.0.0/8"])


def key(peer: str | None, headers: list[tuple[str, str]] | None = None) -> str:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or [])]
    return real_client_ip(peer, Headers(raw=raw), TRUSTED)


class TestUntrustedPeer:
    def test_headers_from_an_untrusted_peer_are_ignored(self) -> None:
        assert key("203.0.113.9", [("X-Forwarded-For", "1.1.1.1"), ("CF-Connecting-IP", "2.2.2.2")]) == \
            "203.0.113.9"

    def test_no_peer(self) -> None:
        assert key(None) == "unknown"


class TestTrustedPeer:
    def test_cf_connecting_ip(self) -> None:
        assert key("127.0.0.1", [("CF-Connecting-IP", "198.51.100.4")]) == "198.51.100.4"

    def test_xff_single(self) -> None:
        assert key("10.1.2.3", [("X-Forwarded-For", "198.51.100.4")]) == "198.51.100.4"

    def test_xff_first_untrusted_hop_from_the_right(self) -> None:
        # client forged "6.6.6.6"; the real client 198.51.100.4 was appended by the first proxy
        xff = "6.6.6.6, 198.51.100.4, 10.0.0.5"
        assert key("127.0.0.1", [("X-Forwarded-For", xff)]) == "198.51.100.4"

    def test_xff_over_several_header_lines(self) -> None:
        assert key("127.0.0.1", [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "198.51.100.4")]) == \
            "198.51.100.4"

    def test_xff_preferred_over_cf_header(self) -> None:
        # behind ngrok a client can send CF-Connecting-IP itself; the appended XFF hop cannot be forged
        headers = [("CF-Connecting-IP", "6.6.6.6"), ("X-Forwarded-For", "198.51.100.4")]
        assert key("127.0.0.1", headers) == "198.51.100.4"

    def test_all_hops_trusted_gives_leftmost(self) -> None:
        assert key("127.0.0.1", [("X-Forwarded-For", "10.0.0.7, 10.0.0.5")]) == "10.0.0.7"

    def test_garbage_hop_stops_the_walk(self) -> None:
        assert key("127.0.0.1", [("X-Forwarded-For", "1.1.1.1, not-an-ip")]) == "127.0.0.1"
        assert key("127.0.0.1", [("X-Forwarded-For", "nonsense, 10.0.0.9")]) == "10.0.0.9"

    def test_garbage_cf_header_falls_back_to_peer(self) -> None:
        assert key("127.0.0.1", [("CF-Connecting-IP", "'; drop table")]) == "127.0.0.1"

    def test_ports_and_brackets(self) -> None:
        assert key("127.0.0.1", [("X-Forwarded-For", "198.51.100.4:5555")]) == "198.51.100.4"
        assert key("127.0.0.1", [("X-Forwarded-For", "[2001:db8::1]:443")]) == "2001:db8::1"

    def test_ipv6_peer_and_mapped_ipv4(self) -> None:
        assert key("::1", [("X-Forwarded-For", "2001:db8::7")]) == "2001:db8::7"
        assert key("::ffff:127.0.0.1", [("X-Forwarded-For", "198.51.100.4")]) == "198.51.100.4"

    def test_no_forwarding_headers(self) -> None:
        assert key("127.0.0.1") == "127.0.0.1"


def test_non_ip_peer_is_never_trusted() -> None:
    assert key("testclient", [("X-Forwarded-For", "1.1.1.1")]) == "testclient"


@pytest.mark.parametrize("entry", ["localhost", "10.0.0.0/33", "1.2.3"])
def test_bad_trusted_proxy_entry_is_a_config_error(entry: str) -> None:
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        TrustedProxies.parse([entry])
