"""Keyed pseudonyms, generalisation, and the key's handling."""

from __future__ import annotations

import hashlib
import hmac
import pickle

import pyarrow as pa
import pytest

from pipelines.errors import ConfigError
from pipelines.rules.deidentify import (
    KEY_ENV,
    Pseudonymizer,
    country_of,
    key_fingerprint,
    key_from_env,
)

KEY = b"k" * 32
OTHER = b"o" * 32


def make(key: bytes = KEY) -> Pseudonymizer:
    return Pseudonymizer(key, "ps_", 32)


def test_pseudonyms_are_stable_for_a_key_and_differ_across_keys():
    assert make().one("p-alice") == make().one("p-alice")
    assert make().one("p-alice") != make(OTHER).one("p-alice")
    assert make().one("p-alice") != make().one("p-bob")


@pytest.mark.parametrize("key", [KEY, b"x" * 64, b"y" * 65, bytes(range(256)) * 2])
def test_a_pseudonym_is_the_values_hmac_sha256_under_the_key(key: bytes) -> None:
    """Keys shorter than, as long as and longer than SHA-256's block (hashed first)."""
    values = ["", "p-alice", "Zoë Ünïcödé 名前", "x" * 5_000, "p-alice"]

    got = Pseudonymizer(key, "ps_", 32).many(values)

    assert got == ["ps_" + hmac.digest(key, v.encode(), hashlib.sha256).hex()[:32] for v in values]


def test_pseudonym_format():
    value = make().one("alice@example.com")
    assert value.startswith("ps_") and len(value) == 35
    assert all(c in "0123456789abcdef" for c in value[3:])


def test_array_maps_each_value_like_one_and_keeps_nulls():
    p = make()
    column = pa.array(["a", None, "b", "a"])
    assert p.array(column).to_pylist() == [p.one("a"), None, p.one("b"), p.one("a")]


def test_list_columns_are_pseudonymised_element_by_element():
    p = make()
    column = pa.array([["a", "b"], None, [], ["a"]], pa.list_(pa.string()))
    assert p.array(column).to_pylist() == [[p.one("a"), p.one("b")], None, [], [p.one("a")]]


def test_values_that_do_not_come_back_get_the_same_pseudonyms_and_stay_out_of_the_cache():
    """Event ids are pseudonymised without the worker's cache: unique ids would fill it and
    leave no room for the account and meeting ids that do repeat."""
    p = make()
    ids = pa.array(["ev-1", "ev-2", None, "ev-1"])

    assert p.array(ids, remember=False).to_pylist() == make().array(ids).to_pylist()
    assert p.many(["ev-3"], remember=False) == [make().one("ev-3")]
    assert p._cache == {}


def test_chunked_arrays_are_accepted():
    p = make()
    column = pa.chunked_array([["a"], ["b", None]])
    assert p.array(column).to_pylist() == [p.one("a"), p.one("b"), None]


def test_the_pseudonymizer_refuses_to_pickle_and_hides_the_key():
    p = make()
    with pytest.raises(TypeError, match="must not be pickled"):
        pickle.dumps(p)
    assert "k" * 32 not in repr(p)


@pytest.mark.parametrize(
    ("location", "country"),
    [
        ("Lyon (FR)", "FR"),
        ("São Paulo (br)", "BR"),
        ("Berlin ( DE ) ", "DE"),
        ("Lyon", None),
        ("Lyon (France)", None),
        (None, None),
    ],
    ids=["plain", "lower", "spaces", "no code", "long name", "null"],
)
def test_location_generalises_to_its_country(location, country):
    assert country_of(pa.array([location], pa.string())).to_pylist() == [country]


def test_key_from_env_requires_a_long_enough_key():
    assert key_from_env({KEY_ENV: "x" * 32}) == b"x" * 32
    with pytest.raises(ConfigError, match="is not set"):
        key_from_env({})
    with pytest.raises(ConfigError, match="at least 32 bytes") as err:
        key_from_env({KEY_ENV: "short-secret-value"})
    assert "short-secret-value" not in str(err.value)


def test_fingerprint_tells_keys_apart_without_showing_them():
    assert key_fingerprint(KEY) != key_fingerprint(OTHER)
    assert key_fingerprint(KEY) == key_fingerprint(KEY)
    assert "k" * 8 not in key_fingerprint(KEY)


@pytest.mark.parametrize(
    ("text", "spans", "expected"),
    [
        ("mail a@b.io now", [(5, 11, "email")], "mail [REDACTED:email] now"),
        (
            "x 1.2.3.4 y a@b.io",
            [(12, 18, "email"), (2, 9, "ip_address")],
            "x [REDACTED:ip_address] y [REDACTED:email]",
        ),
        ("abcdef", [(0, 4, "blob"), (2, 6, "email")], "[REDACTED:blob]"),
    ],
    ids=["one", "two out of order", "overlap merges"],
)
def test_redact_spans(text, spans, expected):
    from pipelines.rules.deidentify import redact_spans

    assert redact_spans(text, spans) == expected
