"""The gate's checks that judge a row on its own, as functions that name the failing rows.

The gate (`staged.py`, the suites, the content cross-check) counts what they find in staged
files; the first line runs the very same functions on de-identified rows before it stages
them (`GateTwin`), and sends a failing row to quarantine as `gate_twin:<check>`. So a record
built to trip one of these checks is quarantined like any bad record, and the gate itself
only ever fails on a defect of consentgate. No Beam here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.contract import kept_per_object
from pipelines.gate.expectations import string_columns, suite_patterns
from pipelines.gate.fingerprint import fingerprints_of_many
from pipelines.rules import detectors
from pipelines.rules.arrays import in_sorted, ranges, sorted_union, sorted_unique
from pipelines.rules.consented import column_detectors, scanner_for
from pipelines.rules.nested import iter_strings
from pipelines.rules.strings import (
    STANDS_DOWN_WHEN_COMMON,
    QualifiedStrings,
    StringRegistry,
    common_rows,
    field_key,
    published_ok,
    published_vocabularies,
)

__all__ = [
    "TWIN_CHECKS",
    "TWIN_PREFIX",
    "GateTwin",
    "account_prints",
    "common_in",
    "detector_hits",
    "merge_prints",
    "pattern_hits",
    "print_hits",
    "unearned_strings",
]

# The row checks in the order the twin applies them; a row is quarantined for the first.
TWIN_CHECKS = ("strings_earned", "detectors_clean", "expectations", "content_fingerprints")
TWIN_PREFIX = "gate_twin:"
# Staged table label -> the kind of its expectation suite.
_SUITE_KIND = {"training": "service_generated", "consented_content": "consented_content"}


def string_leaves(column: pa.Array) -> Iterator[pa.Array]:
    """Every string array inside a column: the column itself, list items, struct fields."""
    if pa.types.is_string(column.type):
        yield column
    elif pa.types.is_list(column.type):
        yield from string_leaves(column.flatten())
    elif pa.types.is_struct(column.type):
        for i in range(column.type.num_fields):
            yield from string_leaves(column.field(i))


def _leaf_rows(column: pa.Array) -> Iterator[tuple[pa.Array, np.ndarray]]:
    """Each string leaf of a column with the table row of each of its values."""
    if pa.types.is_string(column.type):
        yield column, np.arange(len(column))
    elif pa.types.is_list(column.type):
        parents = pc.list_parent_indices(column).to_numpy()
        for leaf, rows in _leaf_rows(column.flatten()):
            yield leaf, parents[rows]
    elif pa.types.is_struct(column.type):
        for i in range(column.type.num_fields):
            yield from _leaf_rows(column.field(i))


def detector_hits(
    table: pa.Table,
    *,
    pseudonym_columns: Collection[str],
    content: bool,
    known: detectors.KnownIdentifiers | None,
    common: Callable[[str, pa.Array], np.ndarray] | None = None,
) -> Iterator[tuple[str, np.ndarray, list[str]]]:
    """`detectors_clean`: (column, rows, detectors) for every column with a finding.

    The gate's detectors are all of them with the shipped thresholds, whatever
    `configs/detectors.json` says, plus the run's known identifiers. Consented content is made
    of words: it is checked, with the first line's own scan (`rules/consented.py`), for what
    must have been redacted from it. Pseudonym columns are not scanned. `common(column,
    values)` says which values the run found common across accounts: there the known-identifier
    and natural-language detectors stand down, as they do on the first line.
    """
    settings = detectors.DetectorSettings()
    scanner = scanner_for(known) if content else None
    # Detectors judge a value alone, so each distinct value is scanned once: service columns
    # repeat a few codecs, versions and log templates across many rows.
    leaves = [
        (name, leaf, rows, pc.unique(leaf))
        for name in table.column_names
        if not (name in pseudonym_columns or (content and not column_detectors(name)))
        for leaf, rows in _leaf_rows(table[name].combine_chunks())
    ]
    found: list[dict[int, list[detectors.Finding]]]
    if scanner is not None:
        found = [
            dict(enumerate(scanner.scan_column(distinct, column_detectors(name))))
            for name, *_, distinct in leaves
        ]
    else:  # one scan of every column's distinct values end to end
        found = detectors.scan_columns(
            [(distinct, None) for *_, distinct in leaves], settings, known=known
        )
    flagged_rows: dict[str, list[np.ndarray]] = {}
    kinds: dict[str, set[str]] = {}
    for (name, leaf, rows, distinct), hits in zip(leaves, found, strict=True):
        if common is not None and hits:
            for i in np.flatnonzero(common(name, distinct)).tolist():
                if i in hits:
                    hits[i] = [f for f in hits[i] if f.detector not in STANDS_DOWN_WHEN_COMMON]
        flagged = [i for i, f in hits.items() if f]
        if not flagged:
            continue
        kinds.setdefault(name, set()).update(f.detector for i in flagged for f in hits[i])
        in_flagged = pc.is_in(leaf, value_set=distinct.take(pa.array(flagged)))
        flagged_rows.setdefault(name, []).append(rows[in_flagged.to_numpy(zero_copy_only=False)])
    for name, found_rows in flagged_rows.items():
        yield name, sorted_unique(np.concatenate(found_rows)), sorted(kinds[name])


# A generalised location: an ISO 3166 alpha-2 shape, nothing else.
_COUNTRY = re.compile(r"^[A-Z]{2}$")


def unearned_strings(
    table: pa.Table,
    *,
    event_type: str,
    pseudonym_columns: Collection[str],
    pseudonym_pattern: str,
    vocabularies: Mapping[str, frozenset[str]],
    strings: QualifiedStrings,
    registry: StringRegistry,
) -> Iterator[tuple[str, np.ndarray]]:
    """`strings_earned`: (column, rows) holding a string that has not earned its place in
    service training. Every string must be a pseudonym (in a pseudonym column), a value of the
    column's closed vocabulary, a country code (a generalised location), or a value or template
    that at least k accounts produced in that field or that the registry approves."""
    shape = re.compile(pseudonym_pattern)
    for name in table.column_names:
        key = field_key(event_type, name)
        bad_rows: list[np.ndarray] = []
        for leaf, rows in _leaf_rows(table[name].combine_chunks()):
            encoded = leaf.dictionary_encode()
            distinct = encoded.dictionary.to_pylist()
            if not distinct:
                continue
            if name in pseudonym_columns:
                ok = _shaped(encoded.dictionary, distinct, shape)
            elif key in vocabularies:
                ok = np.array([v in vocabularies[key] for v in distinct], bool)
            elif name.endswith("_country"):
                ok = np.array([_COUNTRY.match(v) is not None for v in distinct], bool)
            else:
                ok = published_ok(key, distinct, strings, registry)
            if ok.all():
                continue
            codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
            failing = (codes >= 0) & ~ok[np.maximum(codes, 0)]
            bad_rows.append(rows[failing])
        if bad_rows:
            yield name, sorted_unique(np.concatenate(bad_rows))


def _shaped(values: pa.Array, texts: list[str], shape: re.Pattern[str]) -> np.ndarray:
    """`shape.match(text) is not None` for each text, the pseudonym pattern judged in RE2 over
    the column. A pseudonym pattern RE2 accepts, Python accepts too (RE2's `$` is the end of
    the text, Python's also allows a final newline); what RE2 refuses, Python judges."""
    try:
        ok = np.array(pc.match_substring_regex(values, shape.pattern), bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # a prefix RE2 reads otherwise
        ok = np.zeros(len(texts), bool)
    for i in np.flatnonzero(~ok).tolist():
        ok[i] = shape.match(texts[i]) is not None
    return ok


def common_in(event_type: str, strings: QualifiedStrings) -> Callable[[str, pa.Array], np.ndarray]:
    """`detector_hits`' `common` for a service training table of `event_type`."""

    def common(name: str, values: pa.Array) -> np.ndarray:
        return common_rows(field_key(event_type, name), values, strings)

    return common


def pattern_hits(
    table: pa.Table, *, patterns: Sequence[str], pseudonym_columns: Sequence[str]
) -> Iterator[tuple[str, np.ndarray]]:
    """The suite's `expect_column_values_to_not_match_regex_list`: (column, rows) per column.

    Each string column is read as the suite reads it (list and struct cells as their strings
    joined by a newline) and every pattern is searched for, as `re.search` does.
    """
    if not patterns:
        return
    for name, values in string_columns(table, pseudonym_columns):
        distinct = pc.unique(values).drop_null()
        bad = np.zeros(len(distinct), bool)
        for pattern in patterns:
            bad |= _searched(distinct, pattern)
        if bad.any():
            matching = distinct.filter(pa.array(bad))
            rows = pc.is_in(values, value_set=matching).to_numpy(zero_copy_only=False)
            yield name, np.flatnonzero(rows)


# A lookaround group without groups inside it; RE2 has none, and dropping one only widens a
# pattern, so what is left is a sound prefilter for the Python search.
_LOOKAROUND = re.compile(r"\(\?<?[=!][^()]*\)")


def _searched(values: pa.Array, pattern: str) -> np.ndarray:
    """`re.search(pattern, v)` for each string, in RE2 where the pattern allows it."""
    # Python's \Z (end of text) is RE2's \z.
    for candidate, exact in ((pattern, True), (_LOOKAROUND.sub("", pattern), False)):
        try:
            hits = pc.match_substring_regex(values, candidate.replace("\\Z", "\\z"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        mask = hits.to_numpy(zero_copy_only=False)
        if exact:
            return mask
        break
    else:
        mask = np.ones(len(values), bool)
    compiled = re.compile(pattern)
    rows = np.flatnonzero(mask)
    found = np.zeros(len(values), bool)
    for row, text in zip(rows.tolist(), values.take(pa.array(rows)).to_pylist(), strict=True):
        found[row] = compiled.search(text) is not None
    return found


def account_prints(pairs: Iterator[tuple[str | None, Any]]) -> dict[str, np.ndarray]:
    """(account, content value) pairs -> account -> the sorted, distinct fingerprints of its
    content: every string inside each value, as the gate's content cross-check cuts them."""
    texts: dict[str, list[str]] = {}
    for account, value in pairs:
        if account:
            texts.setdefault(account, []).extend(iter_strings(value))
    # All accounts' texts in one pass, then cut back into each account's share: the hashes
    # of texts [first, last) are hashes[at[first]:at[last]].
    hashes, sizes = fingerprints_of_many([text for part in texts.values() for text in part])
    at = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
    bounds = at[np.concatenate([[0], np.cumsum(list(map(len, texts.values())), dtype=np.int64)])]
    return {
        account: sorted_unique(hashes[start:end])
        for account, start, end in zip(
            texts, bounds[:-1].tolist(), bounds[1:].tolist(), strict=True
        )
        if end > start
    }


def merge_prints(parts: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Many `account_prints` results as one."""
    gathered: dict[str, list[np.ndarray]] = {}
    for part in parts:
        for account, hashes in part.items():
            gathered.setdefault(account, []).append(hashes)
    return {a: sorted_union(hs) for a, hs in gathered.items()}


def print_hits(
    table: pa.Table,
    *,
    accounts: Sequence[str | None],
    prints: Mapping[str, np.ndarray],
    pseudonym_columns: Sequence[str],
) -> Iterator[tuple[str, np.ndarray]]:
    """`content_fingerprints`: (column, rows) whose string shares a word window with content
    of the row's own account. `accounts` are the raw account ids of the rows, in order."""
    for name in table.column_names:
        if name in pseudonym_columns or table.schema.field(name).type != pa.string():
            continue
        encoded = table[name].combine_chunks().dictionary_encode()
        hashes, sizes = fingerprints_of_many(encoded.dictionary.to_pylist())
        if not hashes.size:
            continue
        bad = _rows_sharing_prints(encoded, hashes, sizes, accounts, prints)
        if bad.size:
            yield name, bad


class _KnownPrints:
    """All accounts' prints in one sorted array, each print XORed with its account's salt, so
    that one `searchsorted` asks "is this print among this account's?" for many pairs at once.

    A salted match can, with odds of one in 2**64, be two accounts' prints meeting by chance;
    every match is confirmed against the account's own sorted prints, so none stands unearned.
    """

    def __init__(self, prints: Mapping[str, np.ndarray]) -> None:
        self.prints = prints
        self.salts = {name: _salt(name) for name in prints}
        salted = [hashes ^ self.salts[name] for name, hashes in prints.items()]
        self.salted = np.sort(np.concatenate(salted)) if salted else np.empty(0, np.int64)

    def holds(self, names: Sequence[str], owners: np.ndarray, hashes: np.ndarray) -> np.ndarray:
        """Per print: is it among the prints of its owner (`names[owner]`, each a key of the
        prints)?"""
        salts = np.array([self.salts[name] for name in names], np.int64)[owners]
        found = in_sorted(self.salted, hashes ^ salts)
        for i in np.flatnonzero(found).tolist():
            known = self.prints[names[owners[i]]]
            found[i] = bool(in_sorted(known, hashes[i : i + 1])[0])
        return found


def _salt(name: str) -> np.int64:
    digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return np.frombuffer(digest, "<i8")[0]


# The run's prints salted once per prints mapping (a worker holds its side input's).
_known = kept_per_object(4)(_KnownPrints)


def _rows_sharing_prints(
    encoded: pa.DictionaryArray,
    hashes: np.ndarray,
    sizes: np.ndarray,
    accounts: Sequence[str | None],
    prints: Mapping[str, np.ndarray],
) -> np.ndarray:
    """Rows whose value (a dictionary code) has a print among its own account's prints;
    `hashes` are the prints of the dictionary's values in order, `sizes` how many each has.

    Each distinct (account, value) pair is judged once, all pairs in one search.
    """
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    printed = (codes >= 0) & (sizes[np.maximum(codes, 0)] > 0)
    rows = np.flatnonzero(printed)
    names = sorted({accounts[r] or "" for r in rows.tolist()} & prints.keys())
    if not rows.size or not names:
        return np.empty(0, np.int64)
    account_code = {name: i for i, name in enumerate(names)}
    row_account = np.array([account_code.get(accounts[r] or "", -1) for r in rows.tolist()])
    rows, row_account = rows[row_account >= 0], row_account[row_account >= 0]
    # The distinct (account, value) pairs of those rows, and each row's pair.
    pair_keys, row_pair = np.unique(row_account * len(sizes) + codes[rows], return_inverse=True)
    pair_account, pair_value = np.divmod(pair_keys, len(sizes))
    # Every print of each pair's value, with the pair's account.
    counts = sizes[pair_value]
    starts = np.cumsum(sizes) - sizes
    wanted = hashes[ranges(starts[pair_value], counts)]
    hit = _known(prints).holds(names, np.repeat(pair_account, counts), wanted)
    pair_of_print = np.repeat(np.arange(len(pair_keys)), counts)
    bad_pairs = np.bincount(pair_of_print[hit], minlength=len(pair_keys)) > 0
    return rows[bad_pairs[row_pair.ravel()]]


@dataclass(frozen=True)
class GateTwin:
    """The gate's row checks with what they need of the run: known identifiers, content
    fingerprints by account, the suites' patterns and each table's pseudonym columns."""

    known: detectors.KnownIdentifiers | None
    prints: Mapping[str, np.ndarray]
    patterns: Mapping[str, tuple[str, ...]]  # staged table label -> suite patterns
    pseudonym_columns: Mapping[str, Mapping[str, list[str]]]  # label -> event type -> columns
    event_types: Mapping[str, frozenset[str]]  # label -> event types its output schema lists
    # The string invariant of service training (`strings_earned`).
    strings: QualifiedStrings = dataclasses.field(default_factory=QualifiedStrings)
    registry: StringRegistry = dataclasses.field(default_factory=StringRegistry)
    vocabularies: Mapping[str, frozenset[str]] = dataclasses.field(default_factory=dict)
    pseudonym_pattern: str = r"^ps_[0-9a-f]{32}$"

    @classmethod
    def build(
        cls,
        schemas: Mapping[str, Mapping[str, Any]],
        templates: Mapping[str, Mapping[str, Any]],
        known: detectors.KnownIdentifiers | None,
        prints: Mapping[str, np.ndarray],
        *,
        strings: QualifiedStrings | None = None,
        registry: StringRegistry | None = None,
        pseudonym_pattern: str = r"^ps_[0-9a-f]{32}$",
    ) -> GateTwin:
        return cls(
            known=known,
            prints=prints,
            patterns={
                label: tuple(suite_patterns(templates[kind])) for label, kind in _SUITE_KIND.items()
            },
            pseudonym_columns={
                label: schemas.get(f"outputs/{label}.json", {}).get("x-pseudonym-columns", {})
                for label in _SUITE_KIND
            },
            event_types={
                label: frozenset(
                    schemas.get(f"outputs/{label}.json", {}).get("x-columns-by-event-type", {})
                )
                for label in _SUITE_KIND
            },
            strings=strings if strings is not None else QualifiedStrings(),
            registry=registry if registry is not None else StringRegistry(),
            vocabularies=published_vocabularies(schemas),
            pseudonym_pattern=pseudonym_pattern,
        )

    def failures(
        self,
        table: pa.Table,
        *,
        label: str,
        event_type: str,
        accounts: Sequence[str | None],
        scanned: Collection[str] = (),
    ) -> dict[int, tuple[str, str]]:
        """Row -> (check, detail) for each row of a de-identified table a row check fails.

        `label` is the staged table (`training` or `consented_content`); details name
        columns and detectors, never values. `scanned` names columns the first line already
        scanned with exactly the gate's detectors and quarantined on any finding: the
        detector check would find nothing new there.
        """
        if event_type not in self.event_types[label]:
            # A table the output schema does not list (a taxonomy that calls chat service
            # data) is a defect of the run's configuration, not of one row: the gate's
            # structural checks fail it loudly, so the twin leaves it alone.
            return {}
        pseudonyms = self.pseudonym_columns[label].get(event_type, [])
        content = label == "consented_content"
        found: dict[int, tuple[str, str]] = {}

        def note(check: str, rows: np.ndarray, detail: str) -> None:
            for row in rows.tolist():
                found.setdefault(int(row), (check, detail))

        if not content:
            for name, rows in unearned_strings(
                table,
                event_type=event_type,
                pseudonym_columns=pseudonyms,
                pseudonym_pattern=self.pseudonym_pattern,
                vocabularies=self.vocabularies,
                strings=self.strings,
                registry=self.registry,
            ):
                note("strings_earned", rows, f"{name}: not a common, approved or closed string")
        for name, rows, kinds in detector_hits(
            table,
            pseudonym_columns={*pseudonyms, *scanned},
            content=content,
            known=self.known,
            common=None if content else common_in(event_type, self.strings),
        ):
            note("detectors_clean", rows, f"{name}: {', '.join(kinds)}")
        for name, rows in pattern_hits(
            table, patterns=self.patterns[label], pseudonym_columns=pseudonyms
        ):
            note("expectations", rows, f"{name}: not_match_regex_list")
        if not content:
            for name, rows in print_hits(
                table, accounts=accounts, prints=self.prints, pseudonym_columns=pseudonyms
            ):
                note("content_fingerprints", rows, f"{name}: repeats content of the account")
        return found
