"""Secrets family: API keys by issuer shape, credentials written out; trace ids and build
hashes are software, not secrets."""

from __future__ import annotations

import pytest

from pipelines.rules.detectors import DetectorSettings, scan_text

DEFAULTS = DetectorSettings.default()


def spans(text: str, detector: str) -> list[str]:
    return [text[f.start : f.end] for f in scan_text(text, DEFAULTS, detectors=(detector,))]


# Shapes made up for these tests: the prefixes are real, the random parts are not.
KEYS = [
    ("stripe_live", "key sk_live_4eC39HqLyjWDarjtT1zdp7dc used", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),  # noqa: E501
    ("stripe_restricted", "rk_test_51Hx2abcDEF3ghi4JKL", "rk_test_51Hx2abcDEF3ghi4JKL"),
    ("aws_key_id", "id=AKIAIOSFODNN7EXAMPLE ok", "AKIAIOSFODNN7EXAMPLE"),
    ("github_pat", "auth ghp_1a2B3c4D5e6F7g8H9i0JkLmNoPqRsTuVwXyZ ok",
     "ghp_1a2B3c4D5e6F7g8H9i0JkLmNoPqRsTuVwXyZ"),
    ("slack_bot", "slack xoxb-1234567890-abcdefGHIJ here", "xoxb-1234567890-abcdefGHIJ"),
    ("slack_webhook", "post https://hooks.slack.com/services/T000/B000/XXXX1234 x",
     "hooks.slack.com/services/T000/B000/XXXX1234"),
    ("google", "k AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUv done",
     "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUv"),
    ("jwt", "t eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig_abc-123 end",
     "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig_abc-123"),
    ("private_key", "-----BEGIN RSA PRIVATE KEY----- MIIE", "-----BEGIN RSA PRIVATE KEY-----"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "key"), [c[1:] for c in KEYS], ids=[c[0] for c in KEYS])
def test_api_key_found(text: str, key: str) -> None:
    assert spans(text, "api_key") == [key]


CREDENTIALS = [
    ("password_colon", "login failed password: hunter2 for user", "hunter2"),
    ("password_equals", "db password=S3cr3t!x", "S3cr3t!x"),
    ("jwt_param", "cb jwt=eyJhbGciOi.payload.sig", "eyJhbGciOi.payload.sig"),
    ("quoted_json", '{"client_secret": "abc123xyz"}', "abc123xyz"),
    ("basic_auth", "Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
    ("bearer", "Authorization: Bearer 9f8e7d6c5b4a", "9f8e7d6c5b4a"),
    ("api_key_assignment", "api_key: k8s-prod-7", "k8s-prod-7"),
]


@pytest.mark.parametrize(
    ("text", "value"), [c[1:] for c in CREDENTIALS], ids=[c[0] for c in CREDENTIALS]
)
def test_credential_found(text: str, value: str) -> None:
    assert spans(text, "credential") == [value]


CREDENTIAL_MISSES = [
    ("status_word", "token: expired"),
    ("masked", "password: ********"),
    ("prose_token", "token refresh scheduled"),
    ("basic_word", "basic setup complete"),
    ("error_code", "error code: 403"),
]


@pytest.mark.parametrize(
    "text", [c[1] for c in CREDENTIAL_MISSES], ids=[c[0] for c in CREDENTIAL_MISSES]
)
def test_credential_near_misses(text: str) -> None:
    assert spans(text, "credential") == []


SOFTWARE_HEX = [
    ("traceparent", "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    ("trace_id", "trace_id=4bf92f3577b34da6a3ce929d0e0e4736"),
    ("build_hash", "build 9fceb02d0ae598e95dc970b74767f19372d61af8 deployed"),
    ("commit_hash", "client commit=9fceb02d0ae598e95dc970b74767f19372d61af8"),
]


@pytest.mark.parametrize("text", [c[1] for c in SOFTWARE_HEX], ids=[c[0] for c in SOFTWARE_HEX])
def test_trace_ids_and_build_hashes_are_not_findings(text: str) -> None:
    assert scan_text(text, DEFAULTS) == []


@pytest.mark.parametrize(
    "run", ["4bf92f3577b34da6a3ce929d0e0e4736", "9fceb02d0ae598e95dc970b74767f19372d61af8"]
)
def test_unlabelled_hex_key_is_still_a_blob(run: str) -> None:
    assert spans(f"key material {run} x", "blob") == [run]
