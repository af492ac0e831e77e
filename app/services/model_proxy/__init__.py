"""The model proxy: the sandboxed agent's only route to the model, with per-run tokens and metering."""

from app.services.model_proxy.base import ModelProxy, Usage
from app.services.model_proxy.pricing import Price, cost_usd, price_for
from app.services.model_proxy.server import ModelProxyServer
from app.services.model_proxy.serving import UnixSocketServer

__all__ = [
    "ModelProxy",
    "ModelProxyServer",
    "Price",
    "UnixSocketServer",
    "Usage",
    "cost_usd",
    "price_for",
]
