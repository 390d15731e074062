"""Every string in training earns its place: a closed vocabulary, an approved or common value,
or an approved or common template; anything else is withheld (published as null, flagged).

A *template* is a value with its variable parts masked by type (`<num>`, `<hex>`, `<id>`,
`<path>`, `<quoted>`, `<ip>`, `<email>`, ...) and every other character kept. It is a pure
function of the value: no clustering, no mining, so the same value has the same template on
every worker, in every chunk, in any order. *Common* means that at least `k` distinct accounts
produced the value (or its template) in that field in this run; the unit is the account, so
one customer repeating a project name in all its meetings never qualifies.

Values and templates are counted as 64-bit hashes of (kind, field, text); the hashes stay in
memory and in the run's side inputs, never in an output. No Beam here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.contract import kept_per_schemas
from pipelines.errors import ConfigError
from pipelines.rules.arrays import hashes64, in_sorted, unique_pairs
from pipelines.sources.declared import compile_sources

__all__ = [
    "DEFAULT_K",
    "MASKS",
    "STANDS_DOWN_WHEN_COMMON",
    "WITHHELD_COLUMN",
    "QualifiedStrings",
    "StringRegistry",
    "account_keys",
    "cap_accounts",
    "closed_vocabularies",
    "common_rows",
    "field_key",
    "publish_column",
    "qualified_of",
    "string_hashes",
    "template_of",
]

# At least this many distinct accounts must have produced a value (or its template) in a field
# for it to be published: see README "Strings in training".
DEFAULT_K = 5
# Training column naming, per row, the fields whose value was withheld (published as null).
WITHHELD_COLUMN = "withheld_fields"
VALUE, TEMPLATE = "v", "t"

# Masks in the order they are tried at each position (leftmost match wins, then this order).
# Every mask consumes the whole variable part, and no mask matches a mask's own output, so
# `template_of(template_of(v)) == template_of(v)`.
_EXTENSIONS = (
    "xlsx?|xlsm|docx?|pptx?|pdf|csv|tsv|txt|rtf|odt|ods|json|xml|ya?ml|zip|7z|rar|gz|tar|"
    "png|jpe?g|gif|bmp|heic|webp|svg|mp[34]|m4a|wav|mov|avi|mkv|key|pages|numbers|md|log|"
    "html?|eml|msg|ics|vcf|sql|db|bak|dmp|tmp"
)
MASKS: tuple[tuple[str, str], ...] = (
    ("url", r"\b[A-Za-z][A-Za-z0-9+.-]{1,15}://[^\s\"'<>]+"),
    ("email", r"[^\s@<>\"'()\[\],;:]+@[^\s@<>\"'()\[\],;:]+"),
    (
        "quoted",
        r"\"[^\"\n]*\"|(?<!\w)'[^'\n]*'|`[^`\n]*`|\u201c[^\u201d\n]*\u201d"
        r"|\u2018[^\u2019\n]*\u2019|\u00ab[^\u00bb\n]*\u00bb|\u300c[^\u300d\n]*\u300d",
    ),
    ("path", r"(?:\b[A-Za-z]:|~|\.{1,2})?(?:[\\/][^\s\\/:\"'<>()\[\],;|]+){2,}[\\/]?"),
    ("file", rf"[^\s\\/:\"'<>()\[\],;|=]*[^\s\\/:\"'<>()\[\],;|=.]\.(?:{_EXTENSIONS})\b"),
    ("mac", r"\b(?:[0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}\b"),
    (
        "ip",
        r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b"
        r"|(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:/\d{1,3})?(?![\w:])",
    ),
    ("id", r"\b[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\b"),
    ("hex", r"\b(?:0[xX])?(?=[0-9A-Fa-f]*[0-9])[0-9A-Fa-f]{8,}\b"),
    # A percent escape (URL-encoded text): masked alone, so the words around it stay words.
    ("esc", r"%[0-9A-Fa-f]{2}"),
    ("id", r"\b(?=[\w-]*\d)(?=[\w-]*[^\W\d_])\w[\w-]{5,}"),
    ("num", r"\d+(?:[.,:]\d+)*"),
)
_MASK = re.compile("|".join(f"(?P<{kind}{i}>{p})" for i, (kind, p) in enumerate(MASKS)))
_KIND_OF = {f"{kind}{i}": kind for i, (kind, _) in enumerate(MASKS)}


# The same values are templated by several stages (run context, detectors, template summary,
# de-identification) and recur across chunks, and the mask is a backtracking regex of some
# 40 us a value: a worker keeps the templates of short values it has made, up to a bound.
_KEPT_TEMPLATES = 65_536
_KEPT_TEMPLATE_CHARS = 512
_templates: dict[str, str] = {}


def template_of(value: str) -> str:
    """The value with each variable part replaced by `<kind>`; the rest kept as it is."""
    template = _templates.get(value)
    if template is None:
        template = _MASK.sub(lambda m: f"<{_KIND_OF[m.lastgroup or '']}>", value)
        if len(value) <= _KEPT_TEMPLATE_CHARS:
            if len(_templates) >= _KEPT_TEMPLATES:
                _templates.clear()
            _templates[value] = template
    return template


def field_key(event_type: str, name: str) -> str:
    """How the registry and the counts name a field: `<event type>.<field>`."""
    return f"{event_type}.{name}"


def string_hashes(kind: str, key: str, texts: Sequence[str]) -> np.ndarray:
    """64-bit hashes of (kind, field, text), one per text, as uint64."""
    prefix = f"{kind}\x1f{key}\x1f".encode()
    return hashes64([prefix + text.encode("utf-8", "surrogatepass") for text in texts]).view(
        np.uint64
    )


def _account_hashes(accounts: Sequence[str | None]) -> np.ndarray:
    return string_hashes("a", "", [a or "" for a in accounts])


def account_keys(key: str, values: pa.Array | pa.ChunkedArray, accounts: pa.Array) -> pa.Table:
    """The distinct (string hash, account hash) pairs of one field's column: each value is
    counted under its own hash and under its template's hash. Nulls count for nothing.

    Each distinct value and each distinct account is hashed once (dictionary encoding).
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(accounts, pa.ChunkedArray):
        accounts = accounts.combine_chunks()
    valid = pc.is_valid(values)
    values, accounts = values.filter(valid), accounts.filter(valid)
    if not len(values):
        return _KEYS_SCHEMA.empty_table()
    encoded = values.dictionary_encode()
    distinct = encoded.dictionary.to_pylist()
    value_hash = string_hashes(VALUE, key, distinct)
    template_hash = string_hashes(TEMPLATE, key, [template_of(v) for v in distinct])
    by_account = accounts.dictionary_encode()
    account_hash = _account_hashes(by_account.dictionary.to_pylist())
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    account = account_hash[by_account.indices.to_numpy(zero_copy_only=False)]
    keys = np.concatenate([value_hash[codes], template_hash[codes]])
    owners = np.concatenate([account, account])
    return _distinct_pairs(keys, owners)


_KEYS_SCHEMA = pa.schema([pa.field("key", pa.uint64()), pa.field("account", pa.uint64())])


def _distinct_pairs(keys: np.ndarray, owners: np.ndarray) -> pa.Table:
    keys, owners = unique_pairs(keys, owners)
    return pa.table({"key": keys, "account": owners}, schema=_KEYS_SCHEMA)


def cap_accounts(tables: Iterable[pa.Table], k: int) -> pa.Table:
    """Many (key, account) tables as one: distinct pairs, at most `k` accounts per key (the
    smallest hashes, so the result does not depend on the order the parts came in)."""
    parts = [t for t in tables if t.num_rows]
    if not parts:
        return _KEYS_SCHEMA.empty_table()
    keys = np.concatenate([t["key"].to_numpy() for t in parts])
    owners = np.concatenate([t["account"].to_numpy() for t in parts])
    keys, owners = unique_pairs(keys, owners)  # sorted by key, then account
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    rank = np.arange(len(keys)) - np.repeat(starts, np.diff(np.r_[starts, len(keys)]))
    kept = rank < k
    return pa.table({"key": keys[kept], "account": owners[kept]}, schema=_KEYS_SCHEMA)


def qualified_of(capped: pa.Table, k: int) -> np.ndarray:
    """The sorted keys that at least `k` accounts produced."""
    if not capped.num_rows:
        return np.empty(0, np.uint64)
    keys, counts = np.unique(capped["key"].to_numpy(), return_counts=True)
    return keys[counts >= k]


@dataclass(frozen=True)
class QualifiedStrings:
    """The run's common strings: sorted hashes of values and templates that at least `k`
    accounts produced in their field."""

    hashes: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))

    def __contains__(self, digest: object) -> bool:
        return bool(self.contains(np.asarray([digest], np.uint64))[0])

    def contains(self, digests: np.ndarray) -> np.ndarray:
        return in_sorted(self.hashes, digests)

    def __len__(self) -> int:
        return len(self.hashes)


@dataclass(frozen=True)
class StringRegistry:
    """`configs/strings.json`: `k`, and per field the values and templates reviewed and
    approved ahead of any count (so small runs keep known telemetry)."""

    k: int = DEFAULT_K
    values: Mapping[str, frozenset[str]] = field(default_factory=dict)
    templates: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str) -> StringRegistry:
        k = data.get("k")
        if not isinstance(k, int) or isinstance(k, bool) or k < 2:
            raise ConfigError(f"{source}: k must be an integer >= 2, not {k!r}")
        fields = data.get("fields")
        if not isinstance(fields, Mapping):
            raise ConfigError(f"{source}: fields must be a JSON object")
        values: dict[str, frozenset[str]] = {}
        templates: dict[str, frozenset[str]] = {}
        for key, entry in fields.items():
            if not isinstance(entry, Mapping) or set(entry) - {"values", "templates"}:
                raise ConfigError(
                    f"{source}: fields.{key} must be an object with `values` and `templates`"
                )
            for name, into in (("values", values), ("templates", templates)):
                items = entry.get(name, [])
                if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                    raise ConfigError(f"{source}: fields.{key}.{name} must be a list of strings")
                into[key] = frozenset(items)
            bad = [t for t in templates[key] if template_of(t) != t]
            if bad:
                raise ConfigError(
                    f"{source}: fields.{key}.templates has {bad[0]!r}, which is not a template "
                    f"(its template is {template_of(bad[0])!r})"
                )
        return cls(k, values, templates)

    def approved(self, key: str, texts: Sequence[str], kind: str) -> np.ndarray:
        allowed = (self.values if kind == VALUE else self.templates).get(key, frozenset())
        return np.fromiter((t in allowed for t in texts), bool, len(texts))


def closed_vocabularies(schemas: Mapping[str, Mapping[str, Any]]) -> dict[str, frozenset[str]]:
    """`<event type>.<field>` -> the values its `enum` allows (contract or source schema)."""
    return dict(_closed_vocabularies(schemas))


@kept_per_schemas
def _closed_vocabularies(schemas: Mapping[str, Mapping[str, Any]]) -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}
    for path, schema in schemas.items():
        event_type = schema.get("x-event-type")
        if not path.startswith("events/") or not event_type:
            continue
        for name, spec in schema.get("properties", {}).items():
            enum = spec.get("enum")
            if isinstance(enum, list) and all(isinstance(v, str) for v in enum):
                out[field_key(event_type, name)] = frozenset(enum)
    # Vendor fields declared with an `enum` in schemas/sources/.
    for source in compile_sources(schemas).values():
        for kind in source.kinds.values():
            for decl in kind.fields.values():
                if decl.enum is not None:
                    out[field_key(kind.event_type, decl.name)] = decl.enum
    return out


def published_vocabularies(
    schemas: Mapping[str, Mapping[str, Any]],
) -> dict[str, frozenset[str]]:
    """`<event type>.<column>` -> every value a training column of a closed vocabulary may
    hold: the contract's enums, the record class and event type, and `withheld_fields` (the
    event type's field names)."""
    out = closed_vocabularies(schemas)
    fields_of = {
        s["x-event-type"]: frozenset(s.get("properties", {}))
        for s in schemas.values()
        if s.get("x-event-type")
    }
    # Vendor kinds (`<source>.<kind>`) are event types too: their columns as declared.
    fields_of.update(
        {
            kind.event_type: frozenset(c for f in kind.fields.values() for c, _ in f.columns())
            for source in compile_sources(schemas).values()
            for kind in source.kinds.values()
        }
    )
    types = frozenset(fields_of)
    for event_type, names in fields_of.items():
        out[field_key(event_type, "record_class")] = frozenset({"service_generated"})
        out[field_key(event_type, "event_type")] = types
        out[field_key(event_type, WITHHELD_COLUMN)] = names
    return out


def publish_column(
    key: str,
    values: pa.Array | pa.ChunkedArray,
    qualified: QualifiedStrings,
    registry: StringRegistry,
) -> tuple[pa.Array, np.ndarray, dict[str, int]]:
    """One field's column as it may be published: each value raw (common or approved), as its
    template (common or approved), or null. Returns the column, which rows were withheld, and
    how many values went each way (`value`, `template`, `withheld`)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    encoded = values.dictionary_encode()
    distinct = encoded.dictionary.to_pylist()
    templates = [template_of(v) for v in distinct]
    raw_ok = qualified.contains(string_hashes(VALUE, key, distinct)) | registry.approved(
        key, distinct, VALUE
    )
    template_ok = qualified.contains(string_hashes(TEMPLATE, key, templates)) | registry.approved(
        key, templates, TEMPLATE
    )
    published = [
        v if raw else (t if tpl else None)
        for v, t, raw, tpl in zip(distinct, templates, raw_ok, template_ok, strict=True)
    ]
    column = pa.array(published, pa.string()).take(encoded.indices)
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    present = codes >= 0
    way = np.where(raw_ok, 0, np.where(template_ok, 1, 2))
    per_row = np.where(present, way[np.maximum(codes, 0)] if len(way) else 0, -1)
    withheld = per_row == 2
    counts = {
        "value": int((per_row == 0).sum()),
        "template": int((per_row == 1).sum()),
        "withheld": int(withheld.sum()),
    }
    return column, withheld, counts


# Detectors that judge a value by what it resembles (a name of the run, prose) rather than by
# what it is (an email, a card number, a key): a value common across accounts is telemetry,
# not one person's name or words, so they stand down on it. The rest always fire.
STANDS_DOWN_WHEN_COMMON = frozenset({"known_identifier", "natural_language"})


def common_rows(
    key: str, values: pa.Array | pa.ChunkedArray, qualified: QualifiedStrings
) -> np.ndarray:
    """Per row: did at least k accounts produce this value, or its template, in this field?"""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not len(qualified) or not len(values):
        return np.zeros(len(values), bool)
    encoded = values.dictionary_encode()
    distinct = encoded.dictionary.to_pylist()
    if not distinct:
        return np.zeros(len(values), bool)
    common = qualified.contains(string_hashes(VALUE, key, distinct)) | qualified.contains(
        string_hashes(TEMPLATE, key, [template_of(v) for v in distinct])
    )
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    return (codes >= 0) & common[np.maximum(codes, 0)]


def published_ok(
    key: str, texts: Sequence[str], qualified: QualifiedStrings, registry: StringRegistry
) -> np.ndarray:
    """The gate's view of published strings of one field: is each a common or approved value,
    or a common or approved template?"""
    return (
        qualified.contains(string_hashes(VALUE, key, texts))
        | qualified.contains(string_hashes(TEMPLATE, key, texts))
        | registry.approved(key, texts, VALUE)
        | registry.approved(key, texts, TEMPLATE)
    )
