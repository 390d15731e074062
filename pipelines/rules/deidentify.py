"""Keyed pseudonyms, generalisation and field drops for records bound for training.

Pseudonyms are HMAC-SHA256 of the value under the run's key, so the same identifier gets the
same pseudonym in every table and every run with that key, and nobody without the key can
recompute or reverse them. Each distinct value is hashed once per column batch.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.errors import ConfigError

__all__ = [
    "KEY_ENV",
    "MIN_KEY_BYTES",
    "Pseudonymizer",
    "country_of",
    "key_fingerprint",
    "key_from_env",
    "pseudonymizer_from_env",
]

KEY_ENV = "CONSENTGATE_PSEUDONYM_KEY"
MIN_KEY_BYTES = 32
_CACHE_ENTRIES = 1_000_000
_BLOCK = 64  # SHA-256's block size in bytes
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))
_COUNTRY = re.compile(r"\(\s*([A-Za-z]{2})\s*\)\s*$")


def key_from_env(environ: dict[str, str] | None = None) -> bytes:
    """The pseudonymisation key from the environment; refuses a missing or short key."""
    env = os.environ if environ is None else environ
    value = env.get(KEY_ENV)
    if not value:
        raise ConfigError(
            f"{KEY_ENV} is not set: export a secret of at least {MIN_KEY_BYTES} bytes "
            "(the key is read from the environment only and never written anywhere)"
        )
    key = value.encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            f"{KEY_ENV} is {len(key)} bytes long; it must be at least {MIN_KEY_BYTES} bytes"
        )
    return key


def pseudonymizer_from_env(settings: Any) -> Pseudonymizer:
    """A Pseudonymizer with the key from the environment and the config's format
    (`settings` is the config's DeidentifySettings)."""
    return Pseudonymizer(key_from_env(), settings.pseudonym_prefix, settings.pseudonym_hex_chars)


def key_fingerprint(key: bytes) -> str:
    """A short, keyed fingerprint that tells keys apart in manifests without revealing them."""
    return hmac.new(key, b"consentgate key fingerprint v1", hashlib.sha256).hexdigest()[:12]


class Pseudonymizer:
    """Turns identifier values into `<prefix><hex>` keyed pseudonyms."""

    def __init__(self, key: bytes, prefix: str, hex_chars: int) -> None:
        self._key = key
        self.prefix = prefix
        self.hex_chars = hex_chars
        self.pattern = f"^{re.escape(prefix)}[0-9a-f]{{{hex_chars}}}$"
        # Ids repeat across chunks (accounts, meetings, participants): hash each once per worker.
        self._cache: dict[str, str] = {}
        # HMAC (RFC 2104) with its keyed pads hashed once: each value then costs two copies of
        # a SHA-256 state, half of what `hmac.digest` pays to key itself every call.
        block = key if len(key) <= _BLOCK else hashlib.sha256(key).digest()
        block = block.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(block.translate(_IPAD))
        self._outer = hashlib.sha256(block.translate(_OPAD))

    def __repr__(self) -> str:  # never show the key
        return f"Pseudonymizer(prefix={self.prefix!r}, hex_chars={self.hex_chars})"

    def __reduce__(self) -> tuple:
        raise TypeError("Pseudonymizer holds the key and must not be pickled; build it in setup()")

    @property
    def key_fingerprint(self) -> str:
        """The fingerprint of the key these pseudonyms are made with (see `key_fingerprint`)."""
        return key_fingerprint(self._key)

    def one(self, value: str) -> str:
        return self.many([value])[0]

    def many(self, values: list[str], *, remember: bool = True) -> list[str]:
        """The pseudonym of each value, in order. `remember=False` for values that do not
        come back (event ids): they neither look in the worker's cache nor fill it."""
        cache: dict[str, str] = self._cache if remember else {}
        inner, outer = self._inner, self._outer
        prefix, size = self.prefix, self.hex_chars
        out = []
        for value in values:
            pseudonym = cache.get(value)
            if pseudonym is None:
                hashed = inner.copy()
                hashed.update(value.encode("utf-8"))
                keyed = outer.copy()
                keyed.update(hashed.digest())
                pseudonym = prefix + keyed.hexdigest()[:size]
                if remember and len(cache) < _CACHE_ENTRIES:
                    cache[value] = pseudonym
            out.append(pseudonym)
        return out

    def array(self, values: pa.Array | pa.ChunkedArray, *, remember: bool = True) -> pa.Array:
        """Pseudonymise a string column (or a list-of-strings column); nulls stay null.
        `remember`: as for `many`."""
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if pa.types.is_list(values.type):
            flat = self.array(values.flatten(), remember=remember)
            return pa.ListArray.from_arrays(values.offsets, flat, mask=values.is_null())
        encoded = values.dictionary_encode()
        uniques = encoded.dictionary.to_pylist()
        mapped = pa.array(self.many(uniques, remember=remember), pa.string())
        return mapped.take(encoded.indices)


def country_of(locations: pa.Array | pa.ChunkedArray) -> pa.Array:
    """`City (CC)` -> `CC`; anything that does not end in a two-letter code becomes null."""
    extracted = pc.extract_regex(locations, r"\(\s*(?P<cc>[A-Za-z]{2})\s*\)\s*$")
    return pc.utf8_upper(pc.struct_field(extracted, "cc"))


def redact_spans(text: str, spans: list[tuple[int, int, str]]) -> str:
    """Replace each (start, end, detector) span with `[REDACTED:detector]`; overlaps merge."""
    merged: list[list] = []
    for start, end, detector in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
            continue
        merged.append([start, end, detector])
    out = []
    last = 0
    for start, end, detector in merged:
        out.append(text[last:start])
        out.append(f"[REDACTED:{detector}]")
        last = end
    out.append(text[last:])
    return "".join(out)
