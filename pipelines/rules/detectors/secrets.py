"""Secrets and opaque identifiers: URL credentials and tokens, `name=value` credentials,
`Bearer` tokens, long opaque ids, and encoded blobs.

`find_tokens` reports the secret part of what it sees (a token's value, a capability link's
opaque path segment), so the words around it stay. `find_opaque_ids` reports runs of 20 or more
id characters that mix letters and digits: session ids, hashes, API keys, base64 tokens.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

from pipelines.rules.detectors.detector import Spans, TextDetector
from pipelines.rules.detectors.normalise import outermost

if TYPE_CHECKING:
    from pipelines.rules.detectors.settings import DetectorSettings

__all__ = [
    "BLOB",
    "OPAQUE_ID",
    "OPAQUE_ID_MIN_LENGTH",
    "SECRET_URL",
    "TOKEN",
    "find_opaque_ids",
    "find_tokens",
]
_SECRET_PARAMETER = re.compile(
    r"(?<![\w.-])[\w.-]*?(?:token|passw(?:or)?d|pwd|api[_-]?key|secret|signature|sig)"
    r"=[^\s&#\"'<>,;)\]}]+",
    re.IGNORECASE,
)
_URL_CREDENTIALS = re.compile(r"(?<![\w+.-])[A-Za-z][\w+.-]*://[^\s/?#@:]*:[^\s/?#@]+@[\w.-]+")


def _find_secret_urls(text: str, settings: DetectorSettings) -> Spans:
    for pattern in (_SECRET_PARAMETER, _URL_CREDENTIALS):
        for match in pattern.finditer(text):
            yield match.span()


@functools.lru_cache(maxsize=16)
def _blob_patterns(min_base64: int, min_hex: int) -> tuple[re.Pattern[str], re.Pattern[str]]:
    return (
        re.compile(rf"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{{{min_base64},}}+={{0,2}}"),
        re.compile(rf"(?<![A-Za-z0-9])[0-9A-Fa-f]{{{min_hex},}}+(?![A-Za-z0-9])"),
    )


def _find_blobs(text: str, settings: DetectorSettings) -> Spans:
    base64, hexadecimal = _blob_patterns(settings.blob_min_base64, settings.blob_min_hex)
    spans = []
    for match in base64.finditer(text):
        run = match.group()
        # Words and paths rarely mix all three classes; encoded bytes almost always do.
        if re.search("[A-Z]", run) and re.search("[a-z]", run) and re.search("[0-9]", run):
            spans.append(match.span())
    spans.extend(match.span() for match in hexadecimal.finditer(text))
    yield from outermost(spans)


# Parameter and key names that carry a credential. Matched as a whole name or as a part of
# one between "_", "-" or "." (access_token, X-Amz-Signature, download.token).
_SECRET_NAMES = (
    "token|tk|tok|access|auth|authorization|bearer|key|apikey|secret|sig|signature|"
    "password|passwd|pwd|pw|pass|passcode|pin|otp|code|session|sessionid|sid|ticket|"
    "credential|credentials|jwt|nonce|hash|hmac|cookie"
)
_STRONG_NAME = re.compile(
    r"(?i)(?:^|[_.\-])(?:token|tk|apikey|secret|password|passwd|pwd|passcode|otp|jwt|"
    r"credentials?|signature|sig)(?:$|[_.\-])"
)
_SECRET_NAME = re.compile(rf"(?i)(?:^|[_.\-])(?:{_SECRET_NAMES})(?:$|[_.\-])")
# A URL and, inside it, each query or fragment parameter and each path segment.
_URL = re.compile(r"(?i)\b(?:[a-z][a-z0-9+.\-]*://|www\.)[^\s<>\"'`]+")
_PARAMETER = re.compile(r"[?&#;]([^=&#;?\s]+)=([^&#;\s]+)")
_SEGMENT = re.compile(r"/([^/?#\s]+)")
# `name = value` or `name: value` outside URLs, for the credential names above.
_ASSIGNMENT = re.compile(
    rf"(?i)(?<![\w.\-])((?:[\w.\-]*[_.\-])?(?:{_SECRET_NAMES})(?:[_.\-][\w.\-]*)?)"
    r"[\"']?\s*[:=]\s*[\"']?([^\s\"'&,;<>]+)"
)
_BEARER = re.compile(r"(?i)\b(?:bearer|basic|token)\s+([A-Za-z0-9._~+/\-]{8,}=*)")
_LETTER = re.compile(r"[^\W\d_]")
_DIGIT = re.compile(r"\d")


def _opaque(value: str, length: int) -> bool:
    """A value of at least `length` characters that mixes letters and digits."""
    return len(value) >= length and bool(_LETTER.search(value)) and bool(_DIGIT.search(value))


# What a redaction left behind is not a secret (consented.py writes these markers).
_MARKER = "[REDACTED:"


def _url_secrets(url: re.Match[str]) -> Spans:
    text = url.group()
    scheme_end = text.find("://")
    host_end = text.find("/", scheme_end + 3) if scheme_end >= 0 else text.find("/")
    query_start = min((i for i in (text.find("?"), text.find("#")) if i >= 0), default=len(text))
    if host_end >= 0:
        for segment in _SEGMENT.finditer(text, host_end, query_start):
            # A capability link names its file by an id nobody could guess.
            if _opaque(segment.group(1), 8):
                yield url.start() + segment.start(1), url.start() + segment.end(1)
    for parameter in _PARAMETER.finditer(text, query_start if query_start < len(text) else 0):
        name, value = parameter.group(1), parameter.group(2)
        if value.startswith(_MARKER):
            continue
        if _SECRET_NAME.search(name) or _opaque(value, 6) or len(value) >= 16:
            yield url.start() + parameter.start(2), url.start() + parameter.end(2)


def find_tokens(text: str) -> Spans:
    """Secret values: URL parameters and capability path segments, `name=value` credentials,
    `Bearer` tokens."""
    spans: list[tuple[int, int]] = []
    for url in _URL.finditer(text):
        spans.extend(_url_secrets(url))
    for assignment in _ASSIGNMENT.finditer(text):
        value = assignment.group(2)
        if value.startswith(_MARKER):
            continue
        # "key: Tuesday" is speech; "key: k8s-prod-7" or "password: sunshine" is not.
        strong = _STRONG_NAME.search(assignment.group(1))
        if strong or _DIGIT.search(value) or len(value) >= 8:
            spans.append(assignment.span(2))
    for bearer in _BEARER.finditer(text):
        if _DIGIT.search(bearer.group(1)) or len(bearer.group(1)) >= 16:
            spans.append(bearer.span(1))
    yield from outermost(spans)


# 20 characters of letters and digits hold over 100 bits: an id made to be unique, never a
# word. Shorter ids (ticket numbers, order ids) are common in ordinary speech.
OPAQUE_ID_MIN_LENGTH = 20
# Base64 pads with "=" only at the end: inside, "=" separates a name from its value.
_ID_RUN = re.compile(rf"(?<![\w+/\-])[\w+/\-]{{{OPAQUE_ID_MIN_LENGTH},}}=*")
_ID_PART = re.compile(r"[^\W_]+")
_UUID = re.compile(
    r"(?i)(?<![0-9a-f])[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}(?![0-9a-f])"
)


def find_opaque_ids(text: str) -> Spans:
    """Long ids: a run of 20+ id characters with a part of 8+ that mixes letters and digits
    (so hyphenated words like "state-of-the-art-2026-plan" stay), and UUIDs."""
    spans = [match.span() for match in _UUID.finditer(text)]
    for match in _ID_RUN.finditer(text):
        # A path ("rec/download/abc123") is judged piece by piece; base64 has at most one "/"
        # in a row of 20 characters more often than not, so a lone "/" stays inside the run.
        pieces = match.group().split("/") if match.group().count("/") >= 2 else [match.group()]
        offset = match.start()
        for piece in pieces:
            run = piece.rstrip("=-_")
            if len(run) >= OPAQUE_ID_MIN_LENGTH and any(
                _opaque(part, 8) for part in _ID_PART.findall(run)
            ):
                padded = len(piece.rstrip("-_"))  # base64 padding goes with its token
                spans.append((offset, offset + padded))
            offset += len(piece) + 1
    yield from outermost(spans)


SECRET_URL = TextDetector(
    "secret_url",
    _find_secret_urls,
    lambda settings: (
        r"(?i:token|passw(?:or)?d|pwd|api[_\-]?key|secret|signature|sig)="
        r"|://[^/?#@]*:[^/?#@]*@"
    ),
)
BLOB = TextDetector(
    "blob",
    _find_blobs,
    lambda settings: (
        f"[A-Za-z0-9+/_\\-]{{{settings.blob_min_base64}}}|[0-9A-Fa-f]{{{settings.blob_min_hex}}}"
    ),
)
TOKEN = TextDetector(
    "token",
    lambda text, settings: find_tokens(text),
    lambda settings: r"://|(?i:www\.)|[:=]|(?i:bearer|basic|token)\s",
)
OPAQUE_ID = TextDetector(
    "opaque_id",
    lambda text, settings: find_opaque_ids(text),
    lambda settings: rf"[\w+/\-]{{{OPAQUE_ID_MIN_LENGTH}}}|[0-9A-Fa-f]{{8}}-",
)
