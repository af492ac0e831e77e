"""Model prices (USD per million tokens) and the cost of one request's usage.

Public Anthropic list prices. A prompt-cache write costs 1.25x the input price for the 5-minute
cache and 2x for the 1-hour cache; a cache read costs 0.1x. Models are matched by substring of the
request's `model`, first entry first (the specific older models before their family). A model that
matches nothing is priced as the most expensive entry and logged once as a warning, so an
unfamiliar name can never make a run cheaper than it is.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)

CACHE_WRITE_5M_FACTOR = 1.25
CACHE_WRITE_1H_FACTOR = 2.0
CACHE_READ_FACTOR = 0.1


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float

    @property
    def cache_write_5m(self) -> float:
        return self.input * CACHE_WRITE_5M_FACTOR

    @property
    def cache_write_1h(self) -> float:
        return self.input * CACHE_WRITE_1H_FACTOR

    @property
    def cache_read(self) -> float:
        return self.input * CACHE_READ_FACTOR


OPUS = Price(input=5.0, output=25.0)  # Opus 4.5 and later
OPUS_LEGACY = Price(input=15.0, output=75.0)  # Opus 4, 4.1, Claude 3 Opus
SONNET = Price(input=3.0, output=15.0)  # Sonnet 3.5 - 4.x (base rate, prompts up to 200k tokens)
HAIKU = Price(input=1.0, output=5.0)  # Haiku 4.5
HAIKU_3_5 = Price(input=0.8, output=4.0)
HAIKU_3 = Price(input=0.25, output=1.25)

# (substring of the lower-cased model name, price); the first match wins.
PRICES: tuple[tuple[str, Price], ...] = (
    ("opus-4-1", OPUS_LEGACY),
    ("opus-4-0", OPUS_LEGACY),
    ("opus-4-2025", OPUS_LEGACY),  # claude-opus-4-20250514
    ("3-opus", OPUS_LEGACY),
    ("opus", OPUS),
    ("sonnet", SONNET),
    ("3-5-haiku", HAIKU_3_5),
    ("3-haiku", HAIKU_3),
    ("haiku", HAIKU),
)
MOST_EXPENSIVE: Price = max((p for _, p in PRICES), key=lambda p: (p.output, p.input))

_warned: set[str] = set()
_warned_lock = threading.Lock()


def price_for(model: str | None) -> Price:
    """The price of `model`; unknown (or missing) models cost as much as the dearest entry."""
    name = (model or "").lower()
    for needle, price in PRICES:
        if needle in name:
            return price
    with _warned_lock:
        first = name not in _warned
        _warned.add(name)
    if first:
        log.warning(
            "model_proxy_unknown_model_priced_as_most_expensive", extra={"model": (model or "")[:100]}
        )
    return MOST_EXPENSIVE


def cost_usd(
    price: Price,
    *,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cache_creation_input_tokens: int = 0,
    cache_creation_1h_input_tokens: int = 0,
    cache_read_input_tokens: int = 0,
) -> float:
    """Cost of one request. `cache_creation_1h_input_tokens` is the part of
    `cache_creation_input_tokens` written to the 1-hour cache (the rest is 5-minute)."""
    one_hour = min(cache_creation_1h_input_tokens, cache_creation_input_tokens)
    five_min = cache_creation_input_tokens - one_hour
    return (
        input_tokens * price.input
        + output_tokens * price.output
        + five_min * price.cache_write_5m
        + one_hour * price.cache_write_1h
        + cache_read_input_tokens * price.cache_read
    ) / 1_000_000
