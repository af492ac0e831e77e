"""The egress proxy: an allowlisting HTTP proxy for a setup step that must download."""

from app.services.egress_proxy.allowlist import Refused, is_public, normalize_host
from app.services.egress_proxy.base import EgressProxy, Resolver
from app.services.egress_proxy.server import EgressProxyServer

__all__ = ["EgressProxy", "EgressProxyServer", "Refused", "Resolver", "is_public", "normalize_host"]
