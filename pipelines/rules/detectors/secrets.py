"""Secrets and opaque identifiers: URL credentials and tokens, `name=value` credentials,
`Bearer` tokens, long opaque ids, and encoded blobs.

`find_tokens` reports the secret part of what it sees (a token's value, a capability link's
opaque path segment), so the words around it stay. `find_opaque_ids` reports runs of 20 or more
id characters that mix letters and digits: session ids, hashes, API keys, base64 tokens.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from typing import TYPE_CHECKING

from pipelines.rules.detectors.detector import Spans, TextDetector
from pipelines.rules.detectors.normalise import outermost

if TYPE_CHECKING:
    from pipelines.rules.detectors.settings import DetectorSettings

__all__ = [
    "API_KEY",
    "BLOB",
    "CREDENTIAL",
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


# Hex runs that name software, not a person: a W3C trace context ("00-<32 hex>-<16 hex>-01")
# and a trace or span id labelled as one; a 40-hex run labelled as a commit or build (SHA-1).
# Unlabelled, the same runs are blobs: 128 or 160 random bits are as good a key as a hash.
_TRACEPARENT = re.compile(
    r"(?<![0-9a-f])[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}(?![0-9a-f])"
)
_TRACE_LABEL = re.compile(r"(?i)\b(?:trace|span)[_\- ]?id[\"']?\s*[:=]?\s*[\"']?$")
_BUILD_LABEL = re.compile(
    r"(?i)\b(?:build|commit|sha1?|rev(?:ision)?|git|version|ref)[\"']?(?:\s*[:=#@]\s*|\s+)[\"']?$"
)
_BUILD_HASH_LENGTH = 40
_TRACE_ID_LENGTH = 32
_LABEL_REACH = 24  # characters before a run that may hold its label


def _software_hex(text: str, start: int, end: int) -> bool:
    """Is the hex run text[start:end] a trace id or a build hash?"""
    before = text[max(0, start - _LABEL_REACH) : start]
    if end - start == _BUILD_HASH_LENGTH:
        return bool(_BUILD_LABEL.search(before))
    if end - start == _TRACE_ID_LENGTH:
        if _TRACE_LABEL.search(before):
            return True
        return any(
            m.span(1) == (start, end) for m in _TRACEPARENT.finditer(text, max(0, start - 3))
        )
    return False


def _find_blobs(text: str, settings: DetectorSettings) -> Spans:
    base64, hexadecimal = _blob_patterns(settings.blob_min_base64, settings.blob_min_hex)
    spans = []
    for match in base64.finditer(text):
        run = match.group()
        # Words and paths rarely mix all three classes; encoded bytes almost always do.
        if re.search("[A-Z]", run) and re.search("[a-z]", run) and re.search("[0-9]", run):
            spans.append(match.span())
    spans.extend(
        match.span()
        for match in hexadecimal.finditer(text)
        if not _software_hex(text, *match.span())
    )
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


# --------------------------------------------------------------------------- API keys

# Credentials whose issuer gives them a recognisable shape: the prefix says what they are, so
# any length of the random part counts.
_API_KEY = re.compile(
    r"(?<![\w-])(?:"
    r"(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{10,}"  # Stripe
    r"|(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}"  # AWS access key ids
    r"|gh[pousr]_[0-9A-Za-z]{20,}|github_pat_[0-9A-Za-z_]{20,}"  # GitHub
    r"|xox[abposr]-[0-9A-Za-z\-]{10,}"  # Slack tokens
    r"|AIza[0-9A-Za-z_\-]{30,}"  # Google API keys
    r"|glpat-[0-9A-Za-z_\-]{20,}|npm_[0-9A-Za-z]{30,}"  # GitLab, npm
    r"|eyJ[0-9A-Za-z_\-]{5,}\.eyJ[0-9A-Za-z_\-]{5,}\.[0-9A-Za-z_\-]*"  # JWT (header.payload.sig)
    r")(?![\w-])"
    r"|hooks\.slack\.com/services/[0-9A-Za-z/]+"  # Slack webhook URL
    r"|-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----"
    r"|(?i:aws_secret_access_key)[\"']?\s*[:=]\s*[\"']?[0-9A-Za-z/+]{40}"
)


def _find_api_keys(text: str, settings: DetectorSettings) -> Spans:
    yield from outermost([match.span() for match in _API_KEY.finditer(text)])


# --------------------------------------------------------------------------- credentials

# Values that say what happened to a credential, not what it is ("token: expired").
_STATUS_WORDS = frozenset(
    {"expired", "invalid", "missing", "null", "none", "empty", "true", "false", "undefined",
     "redacted", "revoked", "refreshed", "required", "set", "unset", "ok", "present", "absent"}
)  # fmt: skip
_WRITTEN_CREDENTIAL = re.compile(
    r"(?i)(?<![\w.\-])(?:[\w.\-]*[_.\-])?"
    r"(?:password|passwd|pwd|passcode|secret|client_secret|token|access_token|refresh_token"
    r"|apikey|api_key|api-key|jwt|credentials?|otp|private_key|access_key)"
    r"[\"']?\s*[:=]\s*[\"']?(?P<value>[^\s\"'&,;<>]+)"
)
_AUTH_SCHEME = re.compile(
    r"(?i)\b(?P<scheme>bearer|basic|digest)\s+(?P<value>[A-Za-z0-9._~+/\-]{6,}=*)"
)


def _basic_pair(value: str) -> bool:
    """Does a Basic credential decode to "user:password"?"""
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return b":" in decoded


def _find_credentials(text: str, settings: DetectorSettings) -> Spans:
    """Credentials written out: `password: hunter2`, `jwt=...`, `Authorization: Basic ...`,
    `Bearer ...`; the value only, so the words around it stay."""
    spans = []
    for match in _WRITTEN_CREDENTIAL.finditer(text):
        value = match.group("value")
        if (
            value.lower().strip(".") in _STATUS_WORDS
            or value.startswith(_MARKER)
            or set(value) <= {"*"}
        ):
            continue
        spans.append(match.span("value"))
    for match in _AUTH_SCHEME.finditer(text):
        value = match.group("value")
        scheme = match.group("scheme").lower()
        if (scheme == "basic" and _basic_pair(value)) or _DIGIT.search(value) or len(value) >= 16:
            spans.append(match.span("value"))
    yield from outermost(spans)


API_KEY = TextDetector(
    "api_key",
    _find_api_keys,
    lambda settings: (
        r"(?:sk|rk|pk)_(?:live|test)_|A(?:KIA|SIA|GPA|IDA|ROA|NPA)[0-9A-Z]{16}|gh[pousr]_"
        r"|github_pat_|xox[abposr]-|AIza|glpat-|npm_|eyJ|hooks\.slack\.com|PRIVATE KEY"
        r"|(?i:aws_secret_access_key)"
    ),
)
CREDENTIAL = TextDetector(
    "credential",
    _find_credentials,
    lambda settings: (
        r"(?i:passw(?:or)?d|pwd|passcode|secret|token|api[_\-]?key|jwt|credential|otp"
        r"|private_key|access_key)[\"']?\s*[:=]|(?i:bearer|basic|digest)\s"
    ),
)
