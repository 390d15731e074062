"""What is redacted from consented content before it may train, and the scan that finds it.

A consented record keeps its words, but nothing in it may point at a person or unlock
anything: the run's known identifiers (names, emails, ids of every participant and account;
a lone part of a multi-word name when written with a capital), contact details, card and bank
numbers, secrets and tokens, long opaque ids. One registry names every family; the first
line (`redact_column`) and the leak gate (`scan_column`) use the same scan, and redaction
repeats until a value scans clean, so a value the first line wrote never fails the gate.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.rules.deidentify import redact_spans
from pipelines.rules.detectors import DetectorSettings, Finding, KnownIdentifiers
from pipelines.rules.detectors.normalise import (
    ESCAPE,
    UNSPACED_SCRIPTS,
    View,
    is_invisible,
    normalise,
)
from pipelines.rules.detectors.registry import REDACTION_DETECTORS
from pipelines.rules.detectors.scan import as_strings, to_mask

__all__ = [
    "CLOSED_FIELDS",
    "CONSENTED_DETECTORS",
    "ID_DETECTORS",
    "MEDIA_DETECTORS",
    "MEDIA_FIELDS",
    "ConsentedScanner",
    "column_detectors",
    "scanner_for",
]

Spans = Iterator[tuple[int, int]]

# Every family redacted from consented content, in report order.
CONSENTED_DETECTORS: tuple[str, ...] = (
    "email",
    "phone",
    "ip_address",
    "mac_address",
    "coordinates",
    "secret_url",
    "payment_card",
    "iban",
    "api_key",
    "credential",
    "token",
    "opaque_id",
    "known_identifier",
)
# Base64 media (`data_b64`) is one long run of id characters by nature: every family but
# the long-id one is looked for in it.
MEDIA_DETECTORS = tuple(name for name in CONSENTED_DETECTORS if name != "opaque_id")
# `event_id` cannot be redacted (purge and the gate find rows by it) and is an id by nature:
# a record whose id holds anything else is quarantined instead.
ID_DETECTORS = tuple(name for name in CONSENTED_DETECTORS if name != "opaque_id")
# Base64 media fields of content records.
MEDIA_FIELDS = frozenset({"data_b64"})


# Closed vocabularies other checks hold (the contract's event types, the record class): not
# scanned, so an identifier that happens to spell one cannot make them a finding.
CLOSED_FIELDS = frozenset({"event_type", "record_class"})


def column_detectors(name: str) -> tuple[str, ...]:
    """The families a string column of a consented-content table is scanned for."""
    if name in CLOSED_FIELDS:
        return ()
    if name == "event_id":
        return ID_DETECTORS
    if name in MEDIA_FIELDS:
        return MEDIA_DETECTORS
    return CONSENTED_DETECTORS


# Redaction rounds before a value is emptied: joining the text around a redacted span can
# make a new finding (rarely); the last resort keeps the row and drops the value's words.
_MAX_ROUNDS = 3
_SETTINGS = DetectorSettings.default()


def _merged(spans: list[tuple[int, int]]) -> Spans:
    reach = -1
    for start, end in sorted(spans, key=lambda span: (span[0], -span[1])):
        if end > reach:
            yield start, end
            reach = end


# --------------------------------------------------------------------------- known identifiers

_ID_TOKEN = re.compile(r"\w(?:[\w.@+-]*\w)?")
_FINE_TOKEN = re.compile(r"\w(?:[\w-]*\w)?")
# Scripts written without spaces between words: a name in them is found as a substring.
_UNSPACED = re.compile(f"[{UNSPACED_SCRIPTS}]")
# Shortest lone name part redacted ("Al" is a name; "A" is not).
_NAME_PART_MIN = 2


def _loose(text: str) -> View:
    """NFKC, casefold and accents dropped ("José" reads "jose"), zero-width characters out;
    with each character's original span."""
    if text.isascii():
        return View(text.lower())
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    position = 0
    while position < len(text):
        if is_invisible(text[position]):
            position += 1
            continue
        end = position + 1
        while end < len(text) and unicodedata.combining(text[end]):
            end += 1
        piece = _strip_marks(unicodedata.normalize("NFKC", text[position:end]).casefold())
        pieces.append(piece)
        starts.extend([position] * len(piece))
        ends.extend([end] * len(piece))
        position = end
    return View("".join(pieces), starts, ends)


def _strip_marks(text: str) -> str:
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


@dataclass(frozen=True)
class _People:
    """The run's known identifiers, ready for lookup in loose (accent-free) text."""

    keys: frozenset[str] = field(repr=False)
    first_tokens: frozenset[str] = field(repr=False)
    name_parts: frozenset[str] = field(repr=False)
    unspaced: tuple[str, ...] = field(repr=False)
    longest: int = 0

    @classmethod
    def of(cls, known: KnownIdentifiers | None) -> _People:
        keys: set[str] = set()
        parts: set[str] = set()
        unspaced: set[str] = set()
        for key in known.keys if known is not None else ():
            loose = " ".join(_ID_TOKEN.findall(_strip_marks(key)))
            if not loose:
                continue
            keys.add(loose)
            words = loose.split(" ")
            if _UNSPACED.search(loose):
                unspaced.add(loose.replace(" ", ""))
            elif len(words) >= 2 and all(word.isalpha() for word in words):
                # A personal name: each part names the person too ("Alice" of "Alice Example").
                parts.update(word for word in words if len(word) >= _NAME_PART_MIN)
        return cls(
            keys=frozenset(keys),
            first_tokens=frozenset(key.split(" ")[0] for key in keys),
            name_parts=frozenset(parts),
            unspaced=tuple(sorted(unspaced, key=lambda k: (-len(k), k))),
            longest=max((key.count(" ") + 1 for key in keys), default=0),
        )

    def spans(self, text: str) -> Spans:
        view = _loose(text)
        found: list[tuple[int, int]] = []
        # Identifier tokens keep dots and "@" ("alice.smith"); finer ones split at them, so an
        # id inside a file name or an address ("p-carol.txt") is seen too.
        for pattern in (_ID_TOKEN, _FINE_TOKEN):
            found.extend(self._token_spans(text, view, pattern))
        if self.unspaced and _UNSPACED.search(view.text):
            squeezed = view.text
            for key in self.unspaced:
                at = squeezed.find(key)
                while at >= 0:
                    found.append(view.original(at, at + len(key)))
                    at = squeezed.find(key, at + 1)
        yield from _merged(found)

    def _token_spans(self, text: str, view: View, pattern: re.Pattern[str]) -> Spans:
        tokens_ = list(pattern.finditer(view.text))
        words = [token.group() for token in tokens_]
        for index, word in enumerate(words):
            if word in self.first_tokens:
                for size in range(min(self.longest, len(words) - index), 0, -1):
                    if " ".join(words[index : index + size]) in self.keys:
                        yield view.original(tokens_[index].start(), tokens_[index + size - 1].end())
                        break
            if word in self.name_parts:
                start, end = view.original(tokens_[index].start(), tokens_[index].end())
                if text[start].isupper() or text[start].istitle():
                    yield start, end

    def candidate_tokens(self) -> frozenset[str]:
        """Pieces (split at anything but letters, digits, "_" and "-") one of which any text
        holding an identifier holds: each key's first piece, and the name parts."""
        firsts = {_FINE_TOKEN.findall(token)[0] for token in self.first_tokens}
        return frozenset(firsts) | self.name_parts


# --------------------------------------------------------------------------- the scanner


@dataclass(frozen=True)
class ConsentedScanner:
    """Finds what must not stay in consented content; built once per worker from the run's
    known identifiers."""

    people: _People = field(repr=False)

    @classmethod
    def build(cls, known: KnownIdentifiers | None) -> ConsentedScanner:
        return cls(_People.of(known))

    def scan(self, text: str, detectors: Collection[str] = CONSENTED_DETECTORS) -> list[Finding]:
        """Findings in one text, sorted by (start, detector)."""
        return self._scan(text, _checked(detectors))

    def _scan(self, text: str, names: tuple[str, ...]) -> list[Finding]:
        findings: list[Finding] = []
        view: View | None = None
        for name in names:
            detector = REDACTION_DETECTORS.get(name)
            if detector is None:
                continue
            if view is None:
                view = normalise(text, fold=False)
            for start, end in detector.find(view.text, _SETTINGS):
                findings.append(Finding(name, *view.original(start, end)))
        if "known_identifier" in names:
            findings.extend(
                Finding("known_identifier", start, end) for start, end in self.people.spans(text)
            )
        findings.sort(key=lambda f: (f.start, f.detector, f.end))
        return findings

    def scan_column(
        self, values: pa.Array | pa.ChunkedArray, detectors: Collection[str] = CONSENTED_DETECTORS
    ) -> list[list[Finding]]:
        """`scan` of every value (null -> []), ASCII rows prefiltered column-wide with RE2."""
        column = as_strings(values, "values")
        names = _checked(detectors)
        results: list[list[Finding]] = [[] for _ in range(len(column))]
        rows = self._candidates(column, names)
        if len(rows) == 0:
            return results
        texts = column.take(pa.array(rows, pa.int64())).to_pylist()
        for row, text in zip(rows.tolist(), texts, strict=True):
            if text:
                results[row] = self._scan(text, names)
        return results

    def _candidates(self, column: pa.Array, names: tuple[str, ...]) -> np.ndarray:
        """Rows some family's prefilter cannot rule out (every non-ASCII row)."""
        count = len(column)
        if count == 0:
            return np.empty(0, np.int64)
        mask = to_mask(pc.invert(pc.string_is_ascii(column)))
        patterns = [
            REDACTION_DETECTORS[n].prefilter(_SETTINGS) or ""
            for n in names
            if n in REDACTION_DETECTORS
        ]
        patterns += [ESCAPE.pattern]
        union = "|".join(f"(?:{p})" for p in patterns)
        mask |= to_mask(pc.match_substring_regex(column, union))
        if "known_identifier" in names and self.people.keys:
            parts = pc.split_pattern_regex(pc.ascii_lower(column), r"[^0-9a-z_\-]+")
            pieces = pc.utf8_trim(pc.list_flatten(parts), "-")
            wanted = pa.array(sorted(self.people.candidate_tokens()), pieces.type)
            hit = to_mask(pc.is_in(pieces, value_set=wanted))
            rows = pc.list_parent_indices(parts).to_numpy()[hit]
            mask[rows] = True
        return np.flatnonzero(mask)

    def redact_column(
        self, values: pa.Array, detectors: Collection[str] = CONSENTED_DETECTORS
    ) -> tuple[pa.Array, list[list[Finding]]]:
        """Every finding replaced by its marker until each value scans clean; the findings of
        each row (offsets of the round that found them)."""
        names = _checked(detectors)
        found = self.scan_column(values, names)
        if not any(found):
            return values, found
        texts = values.to_pylist()
        for row, findings in enumerate(found):
            if not findings:
                continue
            text = texts[row]
            current = findings
            all_findings = list(findings)
            for _ in range(_MAX_ROUNDS):
                text = redact_spans(text, [(f.start, f.end, f.detector) for f in current])
                current = self._scan(text, names)
                if not current:
                    break
                all_findings.extend(current)
            texts[row] = "" if current else text
            found[row] = all_findings
        return pa.array(texts, pa.string()), found


# The last scanner built and the identifiers it was built from: every chunk of a run brings the
# same side-input object, and building the lookup costs a pass over every identifier.
_LAST: list[tuple[KnownIdentifiers | None, ConsentedScanner]] = []


def scanner_for(known: KnownIdentifiers | None) -> ConsentedScanner:
    """The scanner for a run's known identifiers, built once per worker and side input."""
    if _LAST and _LAST[0][0] is known:
        return _LAST[0][1]
    scanner = ConsentedScanner.build(known)
    _LAST[:] = [(known, scanner)]
    return scanner


def _checked(detectors: Collection[str]) -> tuple[str, ...]:
    unknown = sorted(set(detectors) - set(CONSENTED_DETECTORS))
    if unknown:
        raise ValueError(
            f"unknown consented-content detector {unknown[0]!r} "
            f"(known: {', '.join(CONSENTED_DETECTORS)})"
        )
    return tuple(name for name in CONSENTED_DETECTORS if name in detectors)
