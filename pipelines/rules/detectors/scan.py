"""The scan: every enabled detector over one text (`scan_text`) or a whole Arrow column
(`scan_column`).

`scan_column` runs conservative RE2 prefilters over the column first and sends only candidate
rows (and every row with a non-ASCII character) down the exact path, which reads a
normalised view of the text and reports offsets into the original.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.contract import kept_per_object
from pipelines.rules.arrays import ranges
from pipelines.rules.detectors.detector import Finding
from pipelines.rules.detectors.echo import MIN_ECHO_WORDS, EchoIndex
from pipelines.rules.detectors.known import KnownIdentifiers
from pipelines.rules.detectors.normalise import ESCAPE, View, normalise
from pipelines.rules.detectors.registry import DETECTORS, TEXT_DETECTORS
from pipelines.rules.detectors.settings import DetectorSettings

__all__ = [
    "as_strings",
    "find_all",
    "regex_prefilters",
    "scan_column",
    "scan_columns",
    "scan_rows",
    "scan_text",
    "to_mask",
]


def _active(
    settings: DetectorSettings,
    detectors: Collection[str] | None,
    known: KnownIdentifiers | None,
    echo: EchoIndex | None,
) -> tuple[str, ...]:
    chosen = settings.enabled if detectors is None else tuple(detectors)
    unknown = sorted(set(chosen) - set(DETECTORS))
    if unknown:
        raise ValueError(f"unknown detector {unknown[0]!r} (known: {', '.join(DETECTORS)})")
    return tuple(
        name
        for name in DETECTORS
        if name in chosen
        and (name != "known_identifier" or known is not None)
        and (name != "content_echo" or echo is not None)
    )


def _scan(
    text: str,
    settings: DetectorSettings,
    names: Iterable[str],
    known: KnownIdentifiers | None,
    echo: EchoIndex | None,
    meeting_id: str | None,
) -> list[Finding]:
    findings: list[Finding] = []
    view: View | None = None
    folded: View | None = None
    for name in names:
        if name in TEXT_DETECTORS:
            if view is None:
                view = normalise(text, fold=False)
            for start, end in TEXT_DETECTORS[name].find(view.text, settings):
                findings.append(Finding(name, *view.original(start, end)))
            continue
        if folded is None:
            folded = normalise(text, fold=True)
        if name == "known_identifier" and known is not None:
            for start, end in known.spans(folded.text, settings.known_identifier_max_words):
                findings.append(Finding(name, *folded.original(start, end)))
        elif name == "content_echo" and echo is not None and meeting_id is not None:
            echoed = echo.find_in_view(meeting_id, folded)
            if echoed is not None:
                findings.append(echoed)
    findings.sort(key=lambda finding: (finding.start, finding.detector, finding.end))
    return findings


def scan_text(
    text: str,
    settings: DetectorSettings,
    *,
    known: KnownIdentifiers | None = None,
    echo: EchoIndex | None = None,
    meeting_id: str | None = None,
    detectors: Collection[str] | None = None,
) -> list[Finding]:
    """All findings in `text`, sorted by (start, detector)."""
    names = _active(settings, detectors, known, echo)
    return _scan(text, settings, names, known, echo, meeting_id)


@functools.cache
def _defaults() -> DetectorSettings:
    return DetectorSettings.default()


def find_all(text: str) -> list[Finding]:
    """`scan_text` with the default settings and no run context."""
    return scan_text(text, _defaults())


_ESCAPED = "(escaped)"  # the prefilter key of rows holding an escape `normalise` decodes


def regex_prefilters(settings: DetectorSettings, names: Iterable[str]) -> dict[str, str | None]:
    """Per text detector of `names`, its RE2 prefilter (None: every row is a candidate)."""
    return {
        name: TEXT_DETECTORS[name].prefilter(settings) for name in names if name in TEXT_DETECTORS
    }


def as_strings(values: pa.Array | pa.ChunkedArray, what: str) -> pa.Array:
    """`values` as one string array (a null-typed column as nulls); TypeError otherwise."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_null(values.type):
        return pa.nulls(len(values), pa.string())
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        raise TypeError(f"{what} must be a string array, got {values.type}")
    return values


def to_mask(array: pa.Array) -> np.ndarray:
    """A boolean Arrow array as a NumPy mask, null as False."""
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)


def _rows_with(flags: np.ndarray, rows: np.ndarray, count: int) -> np.ndarray:
    mask = np.zeros(count, dtype=bool)
    mask[rows[flags]] = True
    return mask


@dataclass(frozen=True)
class _Tokens:
    """The lower-cased whitespace tokens of a column, each distinct token kept once.

    Python's identifier tokens and words never span whitespace, so splitting the
    few distinct tokens further finds every one of them in ASCII rows.
    """

    distinct: pa.Array
    which: np.ndarray  # distinct index of every token occurrence
    rows: np.ndarray  # row of every token occurrence

    @classmethod
    def of(cls, column: pa.Array) -> _Tokens:
        parts = pc.ascii_split_whitespace(pc.ascii_lower(column))
        encoded = pc.dictionary_encode(pc.list_flatten(parts))
        return cls(
            encoded.dictionary,
            encoded.indices.to_numpy(),
            pc.list_parent_indices(parts).to_numpy(),
        )

    def split(self, separators: str) -> pa.ListArray:
        """The distinct tokens split at `separators`."""
        return pc.split_pattern_regex(self.distinct, separators)

    def in_order(self, parts: pa.ListArray) -> tuple[np.ndarray, np.ndarray]:
        """For every piece of every token occurrence, in column order: where the piece is
        in the flattened `parts`, and its row."""
        offsets = np.asarray(parts.offsets)
        counts = np.diff(offsets)[self.which]
        return ranges(offsets[:-1][self.which], counts), np.repeat(self.rows, counts)


@kept_per_object(4)
def _first_tokens(known: KnownIdentifiers) -> pa.Array:
    """The known identifiers' first tokens as an Arrow array, made once per KnownIdentifiers
    (a worker holds the run's, from its side input): sorting tens of thousands of names per
    column costs more than the scan."""
    return pa.array(sorted(known.first_tokens), pa.string())


def _known_candidates(tokens: _Tokens, known: KnownIdentifiers, count: int) -> np.ndarray:
    """Rows holding a token that starts a known identifier."""
    parts = tokens.split(r"[^0-9a-z_.@+\-]+")
    trimmed = pc.utf8_trim(pc.list_flatten(parts), ".@+-")
    first = _first_tokens(known)
    if first.type != trimmed.type:
        first = first.cast(trimmed.type)
    found = to_mask(pc.is_in(trimmed, value_set=first))
    holds = np.zeros(len(tokens.distinct), dtype=bool)
    holds[pc.list_parent_indices(parts).to_numpy()[found]] = True
    return _rows_with(holds[tokens.which], tokens.rows, count)


def _echo_candidates(
    tokens: _Tokens, echo: EchoIndex, meetings: pa.Array | None, count: int
) -> np.ndarray:
    """Rows with a run of three or more words of their own meeting's content."""
    if meetings is None:
        return np.zeros(count, dtype=bool)
    meeting_set = pa.array(echo.meetings, meetings.type)
    meeting = pc.fill_null(pc.index_in(meetings, value_set=meeting_set), -1).to_numpy()
    parts = tokens.split(r"[^0-9a-z_]+")
    pieces = pc.list_flatten(parts)
    index, rows = tokens.in_order(parts)
    # Splitting leaves empty pieces at token edges; they are not words and must not cut runs.
    nonempty = to_mask(pc.greater(pc.binary_length(pieces), 0))[index]
    index, rows = index[nonempty], rows[nonempty]
    word_set = pa.array(echo.words, pieces.type)
    word = pc.fill_null(pc.index_in(pieces, value_set=word_set), -1).to_numpy()[index]
    row_meeting = meeting[rows].astype(np.int64)
    keys = row_meeting * len(echo.words) + word
    found = (word >= 0) & (row_meeting >= 0) & np.isin(keys, echo.pairs)
    # Length of the run of found words ending at each word, runs restarting at each row.
    position = np.arange(len(rows))
    run_starts = found & np.r_[True, (rows[1:] != rows[:-1]) | ~found[:-1]]
    latest_start = np.maximum.accumulate(np.where(run_starts, position, 0))
    run = np.where(found, position - latest_start + 1, 0)
    return _rows_with(run >= MIN_ECHO_WORDS, rows, count)


def scan_column(
    values: pa.Array | pa.ChunkedArray,
    settings: DetectorSettings,
    *,
    known: KnownIdentifiers | None = None,
    echo: EchoIndex | None = None,
    meeting_ids: pa.Array | pa.ChunkedArray | None = None,
    detectors: Collection[str] | None = None,
) -> list[list[Finding]]:
    """`scan_text` of every value (null -> []), prefiltered column-wide with RE2."""
    found = scan_rows(
        values, settings, known=known, echo=echo, meeting_ids=meeting_ids, detectors=detectors
    )
    return [found.get(row, []) for row in range(len(values))]


def scan_rows(
    values: pa.Array | pa.ChunkedArray,
    settings: DetectorSettings,
    *,
    known: KnownIdentifiers | None = None,
    echo: EchoIndex | None = None,
    meeting_ids: pa.Array | pa.ChunkedArray | None = None,
    detectors: Collection[str] | None = None,
) -> dict[int, list[Finding]]:
    """`scan_column` as {row: findings} for the rows with any, in row order: most rows of a
    large column have none, and a list per row would cost more than the scan."""
    column = as_strings(values, "values")
    meetings = None if meeting_ids is None else as_strings(meeting_ids, "meeting_ids")
    if meetings is not None and len(meetings) != len(column):
        raise ValueError(f"meeting_ids has {len(meetings)} rows, values has {len(column)}")
    names = _active(settings, detectors, known, echo)
    count = len(column)
    if not names or count == 0:
        return {}
    masks = _candidate_masks(column, settings, names, known, echo, meetings)
    if "content_echo" in masks:
        masks["content_echo"] &= to_mask(pc.is_valid(meetings)) if meetings is not None else False
    selected = np.flatnonzero(np.logical_or.reduce(list(masks.values())))
    if len(selected) == 0:
        return {}
    take = pa.array(selected, pa.int64())
    texts = column.take(take).to_pylist()
    ids = meetings.take(take).to_pylist() if meetings is not None else [None] * len(selected)
    results: dict[int, list[Finding]] = {}
    for row, text, meeting_id in zip(selected.tolist(), texts, ids, strict=True):
        if text is not None:
            row_names = [name for name in names if masks[name][row]]
            findings = _scan(text, settings, row_names, known, echo, meeting_id)
            if findings:
                results[row] = findings
    return results


def scan_columns(
    columns: Sequence[tuple[pa.Array | pa.ChunkedArray, pa.Array | pa.ChunkedArray | None]],
    settings: DetectorSettings,
    *,
    known: KnownIdentifiers | None = None,
    echo: EchoIndex | None = None,
) -> list[dict[int, list[Finding]]]:
    """`scan_rows` of each (values, meeting ids or None) pair, as one scan of their rows end to
    end.

    Each row is scanned alone either way; one scan compiles each prefilter once, not once per
    column, which is most of the cost for the many short columns of a chunk.
    """
    if not columns:
        return []
    values = [as_strings(v, "values") for v, _ in columns]
    meetings = [
        pa.nulls(len(column), pa.string()) if m is None else as_strings(m, "meeting_ids")
        for column, (_, m) in zip(values, columns, strict=True)
    ]
    for column, ids in zip(values, meetings, strict=True):
        if len(column) != len(ids):
            raise ValueError(f"meeting_ids has {len(ids)} rows, values has {len(column)}")
    found = scan_rows(
        _concatenated(values), settings, known=known, echo=echo, meeting_ids=_concatenated(meetings)
    )
    starts = np.cumsum([0, *(len(column) for column in values)]).tolist()
    out: list[dict[int, list[Finding]]] = [{} for _ in values]
    # Rows come in order, so each column's rows are a run of them.
    part = 0
    for row, findings in found.items():
        while row >= starts[part + 1]:
            part += 1
        out[part][row - starts[part]] = findings
    return out


def _concatenated(arrays: list[pa.Array]) -> pa.Array:
    """One array of all the rows; 64-bit offsets when any part has them or the text together
    could pass the 2 GiB that 32-bit offsets address."""
    wide = any(pa.types.is_large_string(a.type) for a in arrays)
    if wide or sum(a.nbytes for a in arrays) >= 2**31 - 1:
        return pa.concat_arrays([a.cast(pa.large_string()) for a in arrays])
    return pa.concat_arrays(arrays)


def _candidate_masks(
    column: pa.Array,
    settings: DetectorSettings,
    names: tuple[str, ...],
    known: KnownIdentifiers | None,
    echo: EchoIndex | None,
    meetings: pa.Array | None,
) -> dict[str, np.ndarray]:
    """Per detector, the rows its prefilter cannot rule out."""
    count = len(column)
    # Confusables and zero-width characters defeat ASCII patterns: such rows always go exact.
    non_ascii = to_mask(pc.invert(pc.string_is_ascii(column)))
    masks = {name: non_ascii.copy() for name in names}
    patterns: dict[str, str] = {}
    for name, pattern in regex_prefilters(settings, names).items():
        if pattern is None:
            masks[name][:] = True
        else:
            patterns[name] = pattern
    # One pass over every row; each detector's own pattern then runs on the few hits. Rows
    # with a URL or HTML escape read differently once decoded: every detector sees them.
    patterns[_ESCAPED] = ESCAPE.pattern
    union = "|".join(f"(?:{pattern})" for pattern in patterns.values())
    hits = np.flatnonzero(to_mask(pc.match_substring_regex(column, union)))
    subset = column.take(pa.array(hits, pa.int64()))
    for name, pattern in patterns.items():
        found = _rows_with(to_mask(pc.match_substring_regex(subset, pattern)), hits, count)
        for detector in names if name == _ESCAPED else (name,):
            masks[detector] |= found
    if "known_identifier" in names or "content_echo" in names:
        tokens = _Tokens.of(column)
        if known is not None and "known_identifier" in names:
            masks["known_identifier"] |= _known_candidates(tokens, known, count)
        if echo is not None and "content_echo" in names:
            masks["content_echo"] |= _echo_candidates(tokens, echo, meetings, count)
    return masks
