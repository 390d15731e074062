"""Echoes of customer content: content repeated in service text, and consented content that
repeats another subject's words.

`EchoIndex` holds shingle hashes of a run's content records so that service free text
quoting them is found (the `content_echo` detector). The rest of this module builds the
index of distinctive runs consented records are checked against.

A run is a window of `shingle_words` words, or, in scripts written without spaces (Thai,
kana, Han...), of `shingle_chars` characters; a content text shorter than a window but of at
least `MIN_WHOLE_WORDS` words counts whole, so a short chat line quoted entire is seen too.
Runs are kept only as 64-bit hashes. A run is common speech ("before the board call") when
content of `common_meetings` or more distinct meetings of the run holds it; every other run
is distinctive.

The index is built in three steps that do not depend on how records fall into chunks or in
what order they come: every chunk lists (run, meeting, record, author) entries (`entries`),
entries are bucketed by run hash and each bucket keeps the distinctive runs two or more
records of a meeting share (`judge_bucket`), and the buckets' survivors make one sorted
`EchoSources`. At consent time a consented record looks its own runs up in its meeting.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.rules.arrays import hashes64, in_sorted, sorted_union, sorted_unique
from pipelines.rules.detectors.detector import Finding
from pipelines.rules.detectors.normalise import UNSPACED_SCRIPTS, View, fold, normalise

if TYPE_CHECKING:
    from pipelines.rules.detectors.settings import DetectorSettings

__all__ = [
    "ENTRY_SCHEMA",
    "MIN_ECHO_WORDS",
    "MIN_WHOLE_WORDS",
    "EchoIndex",
    "EchoSettings",
    "EchoSources",
    "bucket_entries",
    "entries",
    "judge_bucket",
    "meeting_key",
    "record_runs",
    "shingle_hashes",
]
# A word, or one character of a script written without spaces: Chinese or Japanese quoted
# verbatim is a run of such characters, with no spaces to split it into words.
_ECHO_WORD = re.compile(f"[{UNSPACED_SCRIPTS}]|[^\\W{UNSPACED_SCRIPTS}]+")
# In ASCII text the same words, found at twice the speed.
_ASCII_WORD = re.compile(r"[A-Za-z0-9_]+")


def _words_of(text: str) -> re.Pattern[str]:
    """The pattern of the words of `text`: `_ECHO_WORD`, or its ASCII twin for ASCII text."""
    return _ASCII_WORD if text.isascii() else _ECHO_WORD


MIN_ECHO_WORDS = 3


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a well-spread 64-bit function of each value."""
    with np.errstate(over="ignore"):
        z = values + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _chained(
    meeting_hashes: np.ndarray, word_hashes: np.ndarray, starts: np.ndarray, sizes: np.ndarray
) -> np.ndarray:
    """The hash of each window: its meeting's hash, then each of its `size` words from `start`
    folded in by `_mix`. Equal word runs of one meeting hash equal wherever they stand, so a
    window is hashed from the words' hashes alone, never from its text."""
    hashes = meeting_hashes.astype(np.uint64)
    last = len(word_hashes) - 1
    for offset in range(int(sizes.max(initial=0))):
        words = word_hashes[np.minimum(starts + offset, last)]
        hashes = np.where(offset < sizes, _mix(hashes ^ words), hashes)
    return hashes


def _hashes(texts: list[str]) -> np.ndarray:
    return hashes64(texts).view(np.uint64)


def shingle_hashes(meeting_id: str, text: str, k: int) -> np.ndarray:
    """Hashes of the k-word shingles of `text` for one meeting (uint64, in text order)."""
    return _shingles([meeting_id], [_echo_words(text)], k)


def _echo_words(text: str) -> list[str]:
    folded = fold(text)
    return _words_of(folded).findall(folded)


def _shingles(meeting_ids: list[str], texts: list[list[str]], k: int) -> np.ndarray:
    """Hashes of the k-word shingles of every text (its words) in its meeting, text after
    text: every word and meeting hashed in one pass, the windows chained in NumPy."""
    counts = np.fromiter(map(len, texts), np.int64, len(texts))
    sizes = np.minimum(counts, k)
    windows = np.where(counts >= MIN_ECHO_WORDS, counts - sizes + 1, 0)
    text_of = np.repeat(np.arange(len(texts)), windows)
    if not text_of.size:
        return np.empty(0, np.uint64)
    first_word = np.cumsum(counts) - counts
    first_window = np.cumsum(windows) - windows
    starts = first_word[text_of] + np.arange(text_of.size) - first_window[text_of]
    word_hashes = _hashes(list(itertools.chain.from_iterable(texts)))
    meeting_hashes = _hashes(meeting_ids)[text_of]
    return _chained(meeting_hashes, word_hashes, starts, sizes[text_of])


def _code(sorted_values: tuple[str, ...], value: str) -> int:
    """Position of `value` in `sorted_values`, or -1."""
    position = bisect.bisect_left(sorted_values, value)
    found = position < len(sorted_values) and sorted_values[position] == value
    return position if found else -1


@dataclass(frozen=True)
class EchoIndex:
    """Shingle hashes of a run's content records, to spot content repeated in free text.

    Besides the hashes it keeps which words each meeting's content uses: a window
    can only echo if every word is one, which spares hashing (and lets
    `scan_column` rule out most rows in Arrow).
    """

    k: int
    hashes: np.ndarray = field(repr=False)  # sorted unique uint64 shingle hashes
    # Customer content and meeting ids: kept out of repr so they never reach a log.
    words: tuple[str, ...] = field(repr=False)  # sorted; a word's code is its position
    meetings: tuple[str, ...] = field(repr=False)  # sorted; likewise
    pairs: np.ndarray = field(repr=False)  # sorted unique int64 meeting_code * len(words) + word

    @classmethod
    def build(cls, pairs: Iterable[tuple[str, str]], k: int) -> EchoIndex:
        """Index (meeting_id, content_text) pairs."""
        meeting_ids: list[str] = []
        texts: list[list[str]] = []
        for meeting_id, text in pairs:
            meeting_ids.append(meeting_id)
            texts.append(_echo_words(text))
        hashes = sorted_unique(_shingles(meeting_ids, texts, k))
        # Which words each meeting uses, as codes: positions in the sorted words and meetings.
        every_word = list(itertools.chain.from_iterable(texts))
        words = tuple(sorted(set(every_word)))
        meetings = tuple(sorted(set(meeting_ids)))
        word_codes = {word: code for code, word in enumerate(words)}
        meeting_codes = {meeting: code for code, meeting in enumerate(meetings)}
        counts = np.fromiter(map(len, texts), np.int64, len(texts))
        meeting_of = np.fromiter(map(meeting_codes.__getitem__, meeting_ids), np.int64)
        word_of = np.fromiter(map(word_codes.__getitem__, every_word), np.int64, len(every_word))
        keys = np.repeat(meeting_of, counts) * len(words) + word_of
        return cls(k, hashes, words, meetings, sorted_unique(keys))

    def merge(self, other: EchoIndex) -> EchoIndex:
        """Both indexes; they must use the same shingle size."""
        return EchoIndex.merge_all(self.k, [self, other])

    @classmethod
    def merge_all(cls, k: int, parts: Iterable[EchoIndex]) -> EchoIndex:
        """All the indexes at once; each must use shingles of `k` words.

        Each part's (meeting, word) pairs are recoded in NumPy: a part's codes map to the
        merged ones through its words and meetings, never through a pair at a time.
        """
        parts = list(parts)
        for part in parts:
            if part.k != k:
                raise ValueError(f"cannot merge echo indexes of {k} and {part.k} word shingles")
        hashes = sorted_union([p.hashes for p in parts], np.uint64)
        words = tuple(sorted(set().union(*(p.words for p in parts))))
        meetings = tuple(sorted(set().union(*(p.meetings for p in parts))))
        word_codes = {word: code for code, word in enumerate(words)}
        meeting_codes = {meeting: code for code, meeting in enumerate(meetings)}
        keys = [np.empty(0, np.int64)]
        for part in parts:
            if not part.pairs.size:
                continue
            new_word = np.fromiter(map(word_codes.__getitem__, part.words), np.int64)
            new_meeting = np.fromiter(map(meeting_codes.__getitem__, part.meetings), np.int64)
            meeting, word = np.divmod(part.pairs, len(part.words))
            keys.append(new_meeting[meeting] * len(words) + new_word[word])
        return cls(
            k, hashes.astype(np.uint64), words, meetings, sorted_unique(np.concatenate(keys))
        )

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, EchoIndex)
            and (self.k, self.words, self.meetings) == (other.k, other.words, other.meetings)
            and np.array_equal(self.hashes, other.hashes)
            and np.array_equal(self.pairs, other.pairs)
        )

    __hash__ = None  # type: ignore[assignment]

    # Hashes of the words and meetings, by code: what a window's hash is chained from.
    @functools.cached_property
    def word_hashes(self) -> np.ndarray:
        return _hashes(list(self.words))

    @functools.cached_property
    def meeting_hashes(self) -> np.ndarray:
        return _hashes(list(self.meetings))

    def find(self, meeting_id: str | None, text: str) -> Finding | None:
        """The first window of `text` that repeats content of the same meeting."""
        if meeting_id is None:
            return None
        return self.find_in_view(meeting_id, normalise(text, fold=True))

    def find_in_view(self, meeting_id: str, view: View) -> Finding | None:
        meeting = _code(self.meetings, meeting_id)
        tokens = list(_words_of(view.text).finditer(view.text))
        if meeting < 0 or len(tokens) < MIN_ECHO_WORDS:
            return None
        words = [token.group() for token in tokens]
        codes = np.array([_code(self.words, word) for word in words], dtype=np.int64)
        in_meeting = (codes >= 0) & in_sorted(self.pairs, meeting * len(self.words) + codes)
        # Windows of k words match shingles; of 3..k-1 words, whole short records. Only
        # windows made entirely of this meeting's content words can match: hash just those.
        starts: list[int] = []
        sizes: list[int] = []
        run = 0
        for index, present in enumerate(in_meeting.tolist()):
            run = run + 1 if present else 0
            for size in range(MIN_ECHO_WORDS, min(run, self.k) + 1):
                starts.append(index - size + 1)
                sizes.append(size)
        if not starts:
            return None
        wanted = _chained(
            np.full(len(starts), self.meeting_hashes[meeting]),
            self.word_hashes[np.maximum(codes, 0)],  # a window holds only known words
            np.array(starts),
            np.array(sizes),
        )
        hits = [
            (starts[hit], sizes[hit])
            for hit in np.flatnonzero(in_sorted(self.hashes, wanted)).tolist()
        ]
        if not hits:
            return None
        start, size = min(hits, key=lambda window: (window[0], -window[1]))
        end = tokens[start + size - 1].end()
        return Finding("content_echo", *view.original(tokens[start].start(), end))


# --------------------------------------------------------------------------- other-subject echo
# A whole text of fewer words than a window still counts from this many words: four words
# ("ship it by friday") already say something a person said; three are mostly stock phrases.
MIN_WHOLE_WORDS = 4
ENTRY_SCHEMA = pa.schema(
    [
        pa.field("run", pa.uint64()),  # hash of the run alone
        pa.field("keyed", pa.uint64()),  # hash of the run in its meeting
        pa.field("meeting", pa.string()),
        pa.field("loc", pa.int64()),  # the record
        pa.field("author", pa.string()),  # one of its subjects ("" if it has none)
        pa.field("account", pa.string()),
        pa.field("event_ts", pa.int64()),  # microseconds
        # A shorter window that only looks for a short text counted whole (see `entries`).
        pa.field("probe", pa.bool_()),
    ]
)
_UNSPACED_RUN = re.compile(f"[{UNSPACED_SCRIPTS}]+")
_SPACED_WORD = re.compile(f"(?:(?![{UNSPACED_SCRIPTS}])\\w)+")


@dataclass(frozen=True)
class EchoSettings:
    """Run length and the common-speech threshold (configs/detectors.json, other_subject_echo)."""

    shingle_words: int
    shingle_chars: int
    common_meetings: int

    @classmethod
    def of(cls, settings: DetectorSettings) -> EchoSettings:
        return cls(
            settings.other_subject_echo_shingle_words,
            settings.other_subject_echo_shingle_chars,
            settings.other_subject_echo_common_meetings,
        )


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


@functools.lru_cache(maxsize=1 << 16)
def _text_hashes(text: str, k: int, c: int) -> tuple[frozenset[int], frozenset[int]]:
    """(run hashes, probe hashes) of one text. Runs: k-word windows (or the whole text when
    shorter), k-character windows of each unspaced stretch. Probes: the shorter word windows
    (down to MIN_WHOLE_WORDS) that meet a short text counted whole. Texts repeat (captions of
    transcripts, stock lines): each is hashed once per worker while it stays in the cache."""
    folded = normalise(text, fold=True).text
    words = _SPACED_WORD.findall(folded)
    runs: set[str] = set()
    probes: set[str] = set()
    top = min(k, len(words))
    for size in range(MIN_WHOLE_WORDS, top + 1):
        windows = ("w " + " ".join(words[i : i + size]) for i in range(len(words) - size + 1))
        (runs if size == top else probes).update(windows)
    for stretch in _UNSPACED_RUN.findall(folded):
        runs.update("c " + stretch[i : i + c] for i in range(len(stretch) - c + 1))
    return frozenset(map(_hash, runs)), frozenset(map(_hash, probes))


def _keyed(runs: np.ndarray, meeting: str) -> np.ndarray:
    return _mix(runs ^ _mix(np.array([_hash(meeting)], np.uint64)))


def _record_hashes(texts: Iterable[str], settings: EchoSettings) -> tuple[set[int], set[int]]:
    runs: set[int] = set()
    probes: set[int] = set()
    for text in texts:
        text_runs, text_probes = _text_hashes(text, settings.shingle_words, settings.shingle_chars)
        runs |= text_runs
        probes |= text_probes
    return runs, probes - runs


def record_runs(
    texts: Iterable[str], meeting: str, settings: EchoSettings, all_sizes: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(run hashes, the same keyed to `meeting`) of one record's texts, distinct; with
    `all_sizes` the probes too (what a consented record looks up)."""
    runs, probes = _record_hashes(texts, settings)
    hashes = np.array(sorted(runs | probes if all_sizes else runs), np.uint64)
    return hashes, _keyed(hashes, meeting)


def meeting_key(meeting: str | None, account: str) -> str:
    """Where echoes are looked for: the meeting, or for content outside meetings the account."""
    return meeting if meeting else f"\x00account\x00{account}"


def entries(
    records: Iterable[tuple[int, str, str, int, list[str], list[str]]], settings: EchoSettings
) -> pa.Table:
    """ENTRY_SCHEMA rows of (loc, meeting key, account, event_ts, subjects, texts) records.

    Besides its runs, each record lists as probes its shorter windows (down to
    MIN_WHOLE_WORDS words): a record that quotes a short text whole shares only such a
    window with it, and the bucket step keeps a run only when two records share it.
    """
    columns: dict[str, list] = {name: [] for name in ENTRY_SCHEMA.names}
    runs: list[int] = []
    meeting_hashes: dict[str, int] = {}
    for loc, meeting, account, ts, subjects, texts in records:
        run_set, probe_set = _record_hashes(texts, settings)
        if not run_set and not probe_set:
            continue
        record = sorted(run_set) + sorted(probe_set)
        is_probe = [False] * len(run_set) + [True] * len(probe_set)
        if meeting not in meeting_hashes:
            meeting_hashes[meeting] = _hash(meeting)
        n = len(record)
        for author in subjects or [""]:
            runs.extend(record)
            columns["meeting"].extend([meeting] * n)
            columns["loc"].extend([loc] * n)
            columns["author"].extend([author] * n)
            columns["account"].extend([account] * n)
            columns["event_ts"].extend([ts] * n)
            columns["probe"].extend(is_probe)
    if not runs:
        return ENTRY_SCHEMA.empty_table()
    run_array = np.array(runs, np.uint64)
    # Keyed to the meeting in one vectorised pass (as `_keyed` does for one record).
    meeting_of = np.fromiter(
        (meeting_hashes[m] for m in columns["meeting"]), np.uint64, len(columns["meeting"])
    )
    columns["run"] = run_array  # type: ignore[assignment]
    columns["keyed"] = _mix(run_array ^ _mix(meeting_of))  # type: ignore[assignment]
    return pa.table(columns, schema=ENTRY_SCHEMA)


def bucket_entries(table: pa.Table, buckets: int) -> Iterator[tuple[int, pa.Table]]:
    """Entries split by run hash: every entry of one run lands in one bucket."""
    if table.num_rows == 0:
        return
    of = (table["run"].to_numpy() % np.uint64(buckets)).astype(np.int64)
    for bucket in sorted_unique(of).tolist():
        yield bucket, table.filter(pa.array(of == bucket))


def judge_bucket(parts: Iterable[pa.Table], settings: EchoSettings) -> pa.Table:
    """The entries of one bucket worth keeping: distinctive runs shared within a meeting."""
    tables = [t for t in parts if t.num_rows]
    if not tables:
        return ENTRY_SCHEMA.empty_table()
    table = pa.concat_tables(tables)
    # Common speech is judged on runs proper; a probe is common when its run is.
    runs = table.filter(pc.invert(table["probe"]))
    spread = runs.group_by("run").aggregate([("keyed", "count_distinct")])
    common = spread.filter(
        pc.greater_equal(spread["keyed_count_distinct"], settings.common_meetings)
    )
    table = table.filter(pc.invert(pc.is_in(table["run"], value_set=common["run"])))
    shared = table.group_by("keyed").aggregate([("loc", "count_distinct")])
    shared = shared.filter(pc.greater_equal(shared["loc_count_distinct"], 2))
    kept = pc.and_(pc.is_in(table["keyed"], value_set=shared["keyed"]), pc.invert(table["probe"]))
    return table.filter(kept)


@dataclass(frozen=True)
class EchoSources:
    """Distinctive runs shared within a meeting, with the records and authors holding them."""

    # Sorted by (keyed, loc, author). Customer ids: kept out of repr.
    keyed: np.ndarray = field(repr=False)
    loc: np.ndarray = field(repr=False)
    author: tuple[str, ...] = field(repr=False)
    account: tuple[str, ...] = field(repr=False)
    event_ts: np.ndarray = field(repr=False)
    meeting: tuple[str, ...] = field(repr=False)

    @classmethod
    def empty(cls) -> EchoSources:
        return cls.of([])

    @classmethod
    def of(cls, parts: Iterable[pa.Table]) -> EchoSources:
        tables = [t for t in parts if t.num_rows]
        table = pa.concat_tables(tables) if tables else ENTRY_SCHEMA.empty_table()
        table = table.sort_by(
            [("keyed", "ascending"), ("loc", "ascending"), ("author", "ascending")]
        )
        return cls(
            keyed=table["keyed"].to_numpy(),
            loc=table["loc"].to_numpy(),
            author=tuple(table["author"].to_pylist()),
            account=tuple(table["account"].to_pylist()),
            event_ts=table["event_ts"].to_numpy(),
            meeting=tuple(table["meeting"].to_pylist()),
        )

    def __len__(self) -> int:
        return len(self.keyed)

    def authors_in(self, meeting: str) -> set[tuple[str, str]]:
        """(author, account) of every entry of `meeting` (for the keyed consent join)."""
        return {
            (author, account)
            for author, account, at in zip(self.author, self.account, self.meeting, strict=True)
            if at == meeting and author
        }

    def sources(self, keyed: np.ndarray, loc: int) -> Iterator[tuple[str, str, int]]:
        """(author, account, event_ts) of other records sharing any of these keyed runs."""
        if not len(self.keyed) or not len(keyed):
            return
        lo = np.searchsorted(self.keyed, keyed, side="left")
        hi = np.searchsorted(self.keyed, keyed, side="right")
        for start, end in zip(lo.tolist(), hi.tolist(), strict=True):
            for i in range(start, end):
                if int(self.loc[i]) != loc:
                    yield self.author[i], self.account[i], int(self.event_ts[i])

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, EchoSources)
            and np.array_equal(self.keyed, other.keyed)
            and np.array_equal(self.loc, other.loc)
            and (self.author, self.account, self.meeting)
            == (other.author, other.account, other.meeting)
            and np.array_equal(self.event_ts, other.event_ts)
        )

    __hash__ = None  # type: ignore[assignment]
