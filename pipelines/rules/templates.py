"""The run's templates as a reviewer may see them: how many accounts produced each, and its
masked form only where that form cannot carry one customer's words. No Beam here.

A template that fell short of `k` is a candidate for the reviewed registry
(`configs/strings.json`). Its masked form is shown only when it has at least one typed mask
(else the template *is* the value: a chat line, a device name) and every word left in it is a
word that at least `k` accounts used in that field, or a word of the registry's approved
strings for it. Otherwise only its reference is kept: a keyed hash (HMAC with the run's
pseudonym key), so nobody without the key can confirm a guessed text against a report. A
template that reached `k` is common across accounts, so its masked form is always kept.

Counting reuses the string rule's machinery (`rules/strings.py`): (hash, account hash) pairs,
at most `k` accounts per hash. Words are counted the same way, under their own kind.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.rules.arrays import ranges, unique_pairs
from pipelines.rules.strings import (
    TEMPLATE,
    VALUE,
    QualifiedStrings,
    StringRegistry,
    cap_accounts,
    string_hashes,
    template_of,
)

__all__ = [
    "NO_VARIABLE_PART",
    "SUMMARY_SCHEMA",
    "TEMPLATES_PATH",
    "UNCOMMON_WORDS",
    "approved_words",
    "merge_summaries",
    "summary_rows",
    "template_names",
    "template_pairs",
    "template_reference",
    "word_pairs",
    "words_of",
]

WORD = "w"
# Where a run keeps its template summary, under its staged folder (owner-only on local disks,
# like audit: the masked forms of templates below k are for reviewers, not model builders).
TEMPLATES_PATH = "strings/templates.parquet"
# Why a template's masked form is not shown (the reference is, instead).
NO_VARIABLE_PART = "no_variable_part"  # nothing was masked: the template is the value itself
UNCOMMON_WORDS = "uncommon_words"  # a word in it fewer than k accounts used in this field

# One row per (field, template) of the run; written to `<run>/strings/templates.parquet`.
SUMMARY_SCHEMA = pa.schema(
    [
        pa.field("field", pa.string(), nullable=False),  # `<event type>.<field>`
        pa.field("ref", pa.string(), nullable=False),  # keyed hash of (field, template)
        pa.field("accounts", pa.int32(), nullable=False),  # distinct accounts, capped at k
        pa.field("qualified", pa.bool_(), nullable=False),  # at least k accounts
        pa.field("approved", pa.bool_(), nullable=False),  # in configs/strings.json
        pa.field("masked", pa.string()),  # the template, where it may be shown
        pa.field("hidden_because", pa.string()),  # why not, where it may not
    ]
)
# Rows of one chunk, before they are counted: `key` is the counting hash (in memory only).
_NAMES_SCHEMA = pa.schema(
    [
        pa.field("key", pa.uint64(), nullable=False),
        *(SUMMARY_SCHEMA.field(n) for n in ("field", "ref", "approved", "masked")),
        SUMMARY_SCHEMA.field("hidden_because"),
    ]
)
_PAIRS_SCHEMA = pa.schema([pa.field("key", pa.uint64()), pa.field("account", pa.uint64())])
_MASK_TOKEN = re.compile(r"<[a-z]+>")
_WORD = re.compile(r"[^\W_]+")


def words_of(template: str) -> list[str]:
    """The distinct words a template keeps (letters and digits between its masks), in order."""
    return list(dict.fromkeys(_WORD.findall(_MASK_TOKEN.sub(" ", template))))


def template_reference(key: bytes, field: str, template: str) -> str:
    """A keyed hash naming a template of a field: `tpl_` and 16 hex digits."""
    message = f"consentgate template v1\x1f{field}\x1f{template}".encode("utf-8", "surrogatepass")
    return "tpl_" + hmac.digest(key, message, hashlib.sha256).hex()[:16]


def _distinct(values: pa.Array | pa.ChunkedArray, accounts: pa.Array | pa.ChunkedArray):
    """(distinct non-null values, value code per row, account hash per row)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(accounts, pa.ChunkedArray):
        accounts = accounts.combine_chunks()
    valid = pc.is_valid(values)
    values, accounts = values.filter(valid), accounts.filter(valid)
    encoded = values.dictionary_encode()
    by_account = accounts.dictionary_encode()
    account_hash = string_hashes("a", "", [a or "" for a in by_account.dictionary.to_pylist()])
    return (
        encoded.dictionary.to_pylist(),
        encoded.indices.to_numpy(zero_copy_only=False),
        account_hash[by_account.indices.to_numpy(zero_copy_only=False)],
    )


def _pairs(keys: np.ndarray, owners: np.ndarray) -> pa.Table:
    if not len(keys):
        return _PAIRS_SCHEMA.empty_table()
    keys, owners = unique_pairs(keys, owners)
    return pa.table({"key": keys, "account": owners}, schema=_PAIRS_SCHEMA)


def template_pairs(
    field: str, values: pa.Array | pa.ChunkedArray, accounts: pa.Array | pa.ChunkedArray
) -> pa.Table:
    """Distinct (template hash, account hash) pairs of one field's column; the hashes are
    the string rule's, so a template counts here exactly as it counts there."""
    distinct, codes, owners = _distinct(values, accounts)
    hashes = string_hashes(TEMPLATE, field, [template_of(v) for v in distinct])
    return _pairs(hashes[codes] if len(distinct) else np.empty(0, np.uint64), owners)


def word_pairs(
    field: str, values: pa.Array | pa.ChunkedArray, accounts: pa.Array | pa.ChunkedArray
) -> pa.Table:
    """Distinct (word hash, account hash) pairs: the words each account's templates keep."""
    distinct, codes, owners = _distinct(values, accounts)
    words = [words_of(template_of(value)) for value in distinct]
    counts = np.array([len(w) for w in words], np.int64)
    if not counts.sum():
        return _PAIRS_SCHEMA.empty_table()
    hashes = string_hashes(WORD, field, [word for value_words in words for word in value_words])
    # Each distinct (value, account) once, then one pair per word of the value.
    pair_codes, pair_owners = unique_pairs(codes.astype(np.uint64), owners)
    code = pair_codes.astype(np.int64)
    per_pair = counts[code]
    starts = np.cumsum(counts) - counts
    return _pairs(hashes[ranges(starts[code], per_pair)], np.repeat(pair_owners, per_pair))


def approved_words(registry: StringRegistry, field: str) -> frozenset[str]:
    """Words of the values and templates the registry approves for a field."""
    approved = registry.values.get(field, frozenset()) | registry.templates.get(field, frozenset())
    return frozenset(w for text in approved for w in words_of(template_of(text)))


def template_names(
    field: str,
    values: pa.Array | pa.ChunkedArray,
    *,
    common_words: QualifiedStrings,
    qualified: QualifiedStrings,
    registry: StringRegistry,
    key: bytes,
) -> pa.Table:
    """One row per distinct template of a field's column: its counting hash, reference,
    whether the registry approves it, and its masked form or why that is not shown.

    `qualified` holds the string rule's common hashes (templates that k accounts produced);
    `common_words` the word hashes that k accounts used in their templates.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    distinct = sorted({template_of(v) for v in pc.unique(values.drop_null()).to_pylist()})
    if not distinct:
        return _NAMES_SCHEMA.empty_table()
    hashes = string_hashes(TEMPLATE, field, distinct)
    common = qualified.contains(hashes)
    # A template with nothing masked is the value itself: approved as a value, approved.
    approved = registry.approved(field, distinct, TEMPLATE) | (
        registry.approved(field, distinct, VALUE)
        & np.fromiter((not _MASK_TOKEN.search(t) for t in distinct), bool, len(distinct))
    )
    registry_words = approved_words(registry, field)
    masked: list[str | None] = []
    hidden: list[str | None] = []
    for template, safe in zip(distinct, common | approved, strict=True):
        why = None if safe else _why_hidden(field, template, common_words, registry_words)
        masked.append(None if why else template)
        hidden.append(why)
    return pa.table(
        {
            "key": pa.array(hashes, pa.uint64()),
            "field": pa.array([field] * len(distinct), pa.string()),
            "ref": pa.array([template_reference(key, field, t) for t in distinct], pa.string()),
            "approved": pa.array(approved, pa.bool_()),
            "masked": pa.array(masked, pa.string()),
            "hidden_because": pa.array(hidden, pa.string()),
        },
        schema=_NAMES_SCHEMA,
    )


def _why_hidden(
    field: str, template: str, common_words: QualifiedStrings, registry_words: frozenset[str]
) -> str | None:
    if not _MASK_TOKEN.search(template):
        return NO_VARIABLE_PART
    words = [w for w in words_of(template) if w not in registry_words]
    if words and not common_words.contains(string_hashes(WORD, field, words)).all():
        return UNCOMMON_WORDS
    return None


def summary_rows(counted: Iterable[pa.Table], names: Iterable[pa.Table], k: int) -> pa.Table:
    """One bucket's summary: the templates `names` lists, with their account counts from the
    capped (key, account) tables `counted`. Sorted by field, then reference."""
    named = [t for t in names if t.num_rows]
    if not named:
        return SUMMARY_SCHEMA.empty_table()
    table = pa.concat_tables(named)
    # The same template named by several chunks: keep one row per (field, key).
    table = table.group_by(["field", "key"], use_threads=False).aggregate(
        [(c, "first") for c in ("ref", "approved", "masked", "hidden_because")]
    )
    table = table.rename_columns([n.removesuffix("_first") for n in table.column_names])
    # Distinct (key, account) pairs first: the same pair may come in more than one table.
    pairs = cap_accounts(counted, k)
    keys, counts = np.unique(pairs["key"].to_numpy(), return_counts=True)
    wanted = table["key"].to_numpy()
    at = np.minimum(np.searchsorted(keys, wanted), max(len(keys) - 1, 0))
    found = (keys[at] == wanted) if len(keys) else np.zeros(len(wanted), bool)
    accounts = np.where(found, np.minimum(counts[at] if len(keys) else 0, k), 0)
    out = pa.table(
        {
            "field": table["field"],
            "ref": table["ref"],
            "accounts": pa.array(accounts.astype(np.int32), pa.int32()),
            "qualified": pa.array(accounts >= k, pa.bool_()),
            "approved": table["approved"],
            "masked": table["masked"],
            "hidden_because": table["hidden_because"],
        },
        schema=SUMMARY_SCHEMA,
    )
    return out.sort_by([("field", "ascending"), ("ref", "ascending")])


def merge_summaries(parts: Sequence[pa.Table]) -> pa.Table:
    """The buckets' summaries as one table, sorted by field, then reference (order-free)."""
    kept = [p for p in parts if p.num_rows]
    if not kept:
        return SUMMARY_SCHEMA.empty_table()
    return pa.concat_tables(kept).sort_by([("field", "ascending"), ("ref", "ascending")])
