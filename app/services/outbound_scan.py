"""The outbound check: no secret value leaves the service, whatever the agent wrote.

One rule: every secret the service knows is searched for in everything that leaves (the change
before commit, the commits before push, the PR's title and body, every Jira comment) and in every
text the run store writes. `SecretScanner` holds the values:
- from Settings: every `SecretStr` field whose value is at least `MIN_LENGTH` characters, named by
  its environment name (GH_TOKEN, ANTHROPIC_API_KEY, ...), and the password inside DATABASE_URL;
- at run time: `scanner.add("MODEL_PROXY_TOKEN", value)` (e.g. per-run capability tokens).
Each value is searched in the forms it can be written in without the agent doing real work to
hide it: raw; base64, standard and URL-safe, at each of the three alignments the value can have
inside a longer base64 stream (an `Authorization: Basic` header encodes `user:token`), keeping the
characters that depend on the value alone; URL-encoded (`quote`, `quote_plus`); hex (lower and upper
case). An encryption or a reversed string is not caught: this check stops leaks by mistake and by
the obvious routes, it is not a proof.

`find(text)` names the variables found, never the values; `find_forms(text)` also says which form;
`redact(text)` replaces every hit with `[redacted:<NAME>]`. Bytes are read as latin-1 (one char per
byte, so every ASCII form is found wherever it is in a binary file).
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import quote, quote_plus, unquote, urlsplit

from pydantic import SecretStr

if TYPE_CHECKING:
    from app.config import Settings

MIN_LENGTH = 8  # shorter values would match ordinary text; no real secret of ours is that short
_NAME_RE = re.compile(r"[A-Z][A-Z0-9_]*")


def base64_needles(value: bytes) -> list[str]:
    """The parts of base64 text that encode `value` whatever precedes and follows it: for each of
    the 3 alignments, the characters fully determined by the value's own bits (standard and
    URL-safe alphabets)."""
    out: list[str] = []
    n = len(value)
    for offset in range(3):
        start = -(-8 * offset // 6)  # first char with no bit of the `offset` bytes before
        end = (8 * (offset + n)) // 6  # last char with no bit of what follows
        for enc in (base64.b64encode, base64.urlsafe_b64encode):
            text = enc(b"\0" * offset + value).decode("ascii")[start:end]
            if len(text) >= MIN_LENGTH:
                out.append(text)
    return out


def forms(value: str) -> dict[str, str]:
    """needle -> form name, for every form of `value` the scanner searches."""
    raw = value.encode("utf-8")
    found: dict[str, str] = {}

    def put(needle: str, form: str) -> None:
        if len(needle) >= MIN_LENGTH:
            found.setdefault(needle, form)

    put(value, "raw")
    put(raw.decode("latin-1"), "raw")  # the same bytes, as a binary file read as latin-1 shows them
    for needle in base64_needles(raw):
        put(needle, "base64")
    for encoded in (quote(value, safe=""), quote(value), quote_plus(value, safe=""), quote_plus(value)):
        put(encoded, "url-encoded")
    put(binascii.hexlify(raw).decode("ascii"), "hex")
    put(binascii.hexlify(raw).decode("ascii").upper(), "hex")
    return found


def settings_secrets(settings: Settings) -> dict[str, str]:
    """NAME -> value of every secret in `settings` (environment names; empty values left out)."""
    out: dict[str, str] = {}
    for field, info in type(settings).model_fields.items():
        value = getattr(settings, field, None)
        if isinstance(value, SecretStr) and value.get_secret_value():
            out[(info.alias or field).upper()] = value.get_secret_value()
    url = getattr(settings, "database_url", None)
    storage = getattr(settings, "rate_limit_storage_url", None)
    # A URL's password alone is a secret too (the whole URL is one already when it is a SecretStr).
    for name, value in (("DATABASE_URL", url), ("RATE_LIMIT_STORAGE_URL_PASSWORD",
                        storage.get_secret_value() if isinstance(storage, SecretStr) else None)):
        if not value:
            continue
        try:
            password = urlsplit(value).password
        except ValueError:
            password = None
        if password:
            out[name] = unquote(password)
    return out


class SecretScanner:
    """Searches text for the service's secret values (module docstring). Thread-safe: the store
    redacts in worker threads while the runner registers run-time values."""

    def __init__(self, secrets: dict[str, str] | None = None) -> None:
        self._values: dict[str, set[str]] = {}  # one name may hold several values (concurrent runs)
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None
        self._needles: dict[str, tuple[str, str]] = {}  # needle -> (NAME, form)
        for name, value in (secrets or {}).items():
            self.add(name, value)

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretScanner:
        return cls(settings_secrets(settings))

    @property
    def names(self) -> list[str]:
        return sorted(self._values)

    def add(self, name: str, value: str | None) -> None:
        """Register a value under `name` (added to its other values: two runs' tokens can share
        a name); values shorter than MIN_LENGTH are ignored."""
        if not _NAME_RE.fullmatch(name):
            raise ValueError(f"secret names are environment-style names, not {name!r}")
        if not value or len(value) < MIN_LENGTH:
            return
        with self._lock:
            self._values.setdefault(name, set()).add(value)
            self._rebuild()

    def remove(self, name: str, value: str | None = None) -> None:
        """Forget one value of `name` (e.g. a run's token once the run is over), or all of them."""
        with self._lock:
            if value is None:
                self._values.pop(name, None)
            else:
                self._values.get(name, set()).discard(value)
                if not self._values.get(name):
                    self._values.pop(name, None)
            self._rebuild()

    def _rebuild(self) -> None:
        needles: dict[str, tuple[str, str]] = {}
        for name, values in sorted(self._values.items()):
            for value in sorted(values):
                for needle, form in forms(value).items():
                    needles.setdefault(needle, (name, form))
        # Longest first, so a longer form wins over a shorter one at the same position.
        ordered = sorted(needles, key=len, reverse=True)
        self._needles = needles
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def find_forms(self, text: str | bytes) -> list[tuple[str, str]]:
        """(NAME, form) of every secret found in `text`, sorted, each pair once."""
        pattern, needles = self._pattern, self._needles
        if pattern is None:
            return []
        if isinstance(text, bytes):
            text = text.decode("latin-1")
        return sorted({needles[m.group(0)] for m in pattern.finditer(text)})

    def find(self, text: str | bytes) -> list[str]:
        """The NAMES of the secrets found in `text` (never their values), sorted."""
        return sorted({name for name, _ in self.find_forms(text)})

    def redact(self, text: str) -> str:
        """`text` with every hit replaced by `[redacted:<NAME>]`."""
        pattern, needles = self._pattern, self._needles
        if pattern is None or not text:
            return text
        return pattern.sub(lambda m: f"[redacted:{needles[m.group(0)][0]}]", text)

    def redact_all(self, value: object) -> object:
        """`redact` applied to every string inside JSON-like data (dicts, lists, tuples)."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {k: self.redact_all(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_all(v) for v in value]
        return value


def describe(hits: Iterable[tuple[str, str]]) -> str:
    """'GH_TOKEN (base64), OPERATOR_TOKEN (raw)': names and forms, for an error message."""
    grouped: dict[str, list[str]] = {}
    for name, form in hits:
        grouped.setdefault(name, []).append(form)
    return ", ".join(f"{name} ({', '.join(sorted(set(fs)))})" for name, fs in sorted(grouped.items()))
