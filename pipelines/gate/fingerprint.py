"""Word-shingle fingerprints of text, for the gate's content cross-check (no Beam here).

A content record's words and a training value are cut into windows of `SHINGLE_WORDS` words
(NFKC, case-folded, punctuation dropped), each hashed to 64 bits. A training value sharing any
window with a content record of the same account holds that content, whatever the labels say.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

from pipelines.rules.arrays import hashes64

__all__ = ["MIN_WORDS", "SHINGLE_WORDS", "fingerprints", "fingerprints_of_many"]

# Five words: long enough that two people's sentences rarely share one by chance, short enough
# to catch a clause copied out of a chat line.
SHINGLE_WORDS = 5
# A text of three or four words is fingerprinted whole; shorter ones ("ok", "Tuesday") are too
# common to be evidence of anything.
MIN_WORDS = 3
_WORD = re.compile(r"\w+")


_ASCII_WORD = re.compile(r"[A-Za-z0-9_]+")


def _words(text: str) -> list[str]:
    if text.isascii():  # NFKC leaves ASCII as it is, and casefolds it to lower case
        return _ASCII_WORD.findall(text.lower())
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def _windows(words: list[str]) -> list[str]:
    """The word windows of one text's words, each as its words joined by a space."""
    count = len(words)
    if count < MIN_WORDS:
        return []
    if count < SHINGLE_WORDS:
        return [" ".join(words)]
    return [" ".join(words[i : i + SHINGLE_WORDS]) for i in range(count - SHINGLE_WORDS + 1)]


def fingerprints(text: str) -> np.ndarray:
    """The 64-bit hashes of a text's word windows (int64; empty for short texts)."""
    return hashes64(_windows(_words(text)))


def fingerprints_of_many(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """`fingerprints` of many texts at once: all hashes in text order, and how many each text
    has. The windows of all the texts are hashed in one pass."""
    windows: list[str] = []
    sizes = np.zeros(len(texts), np.int64)
    for index, text in enumerate(texts):
        found = _windows(_words(text))
        sizes[index] = len(found)
        windows.extend(found)
    return hashes64(windows), sizes
