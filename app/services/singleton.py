"""`per_settings`: the one caching rule every service factory uses.

DESIGN: factories are `functools.cache` singletons called only from the lifespan. `Settings` is not
hashable, so the cache is keyed on the identity of the arguments; it keeps them alive so an id
cannot be reused by a later object. Tests build a fresh Settings per app (so they get fresh
clients) or call the factory's `cache_clear()`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class PerSettings(Generic[P, T]):
    """A factory memoised on the identity of its arguments, with `cache_clear()`."""

    def __init__(self, build: Callable[P, T]) -> None:
        self._build = build
        self._cache: dict[tuple[int, ...], tuple[tuple[Any, ...], T]] = {}
        self._lock = threading.Lock()
        functools.update_wrapper(self, build)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T:
        key = tuple(id(a) for a in args) + tuple(id(v) for v in kwargs.values())
        with self._lock:
            hit = self._cache.get(key)
            if hit is None:
                hit = ((*args, *kwargs.values()), self._build(*args, **kwargs))
                self._cache[key] = hit
        return hit[1]

    def cache_clear(self) -> None:
        with self._lock:
            self._cache.clear()


def per_settings(build: Callable[P, T]) -> PerSettings[P, T]:
    return PerSettings(build)
