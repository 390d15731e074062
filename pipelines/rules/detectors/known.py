"""Known values: the names, emails and ids of a run's participants, looked up in text."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from pipelines.rules.detectors.detector import Spans
from pipelines.rules.detectors.normalise import UNSPACED_SCRIPTS, fold

__all__ = ["KnownIdentifiers"]

_ID_TOKEN = re.compile(r"\w(?:[\w.@+-]*\w)?")
_UNSPACED = re.compile(f"[{UNSPACED_SCRIPTS}]")


@dataclass(frozen=True)
class KnownIdentifiers:
    """Names, emails and ids of a run's participants, normalised for lookup."""

    # Personal data: kept out of repr so it never lands in a log or traceback.
    keys: frozenset[str] = field(default=frozenset(), repr=False)
    first_tokens: frozenset[str] = field(default=frozenset(), repr=False)
    longest: int = 0  # most tokens in one key

    @classmethod
    def from_values(cls, values: Iterable[str | None], min_length: int) -> KnownIdentifiers:
        """Normalise (NFKC, casefold, tokens joined by one space); skip None and short values."""
        keys = set()
        for value in values:
            if value is None:
                continue
            key = " ".join(_ID_TOKEN.findall(fold(value)))
            # A name in a script written without spaces is two or three characters long.
            if key and (len(key) >= min_length or (len(key) >= 2 and _UNSPACED.search(key))):
                keys.add(key)
        return cls._of(keys)

    @classmethod
    def _of(cls, keys: set[str] | frozenset[str]) -> KnownIdentifiers:
        tokenised = [key.split(" ") for key in keys]
        return cls(
            keys=frozenset(keys),
            first_tokens=frozenset(tokens[0] for tokens in tokenised),
            longest=max((len(tokens) for tokens in tokenised), default=0),
        )

    def merge(self, other: KnownIdentifiers) -> KnownIdentifiers:
        """Both sets of identifiers."""
        return self._of(self.keys | other.keys)

    @classmethod
    def merge_all(cls, parts: Iterable[KnownIdentifiers]) -> KnownIdentifiers:
        """All the sets at once (merging pairwise would copy the growing set each time)."""
        keys: set[str] = set()
        for part in parts:
            keys.update(part.keys)
        return cls._of(keys)

    def spans(self, folded: str, max_words: int) -> Spans:
        """Spans of `folded` text (already normalised) whose 1..max_words tokens are known."""
        tokens = list(_ID_TOKEN.finditer(folded))
        words = [token.group() for token in tokens]
        longest = min(max_words, self.longest)
        for index, word in enumerate(words):
            if word not in self.first_tokens:
                continue
            for size in range(1, min(longest, len(words) - index) + 1):
                if " ".join(words[index : index + size]) in self.keys:
                    yield tokens[index].start(), tokens[index + size - 1].end()
