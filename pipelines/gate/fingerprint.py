"""Word-shingle fingerprints of text, for the gate's content cross-check (no Beam here).

A content record's words and a training value are cut into windows of `SHINGLE_WORDS` words
(NFKC, case-folded, punctuation dropped), each hashed to 64 bits. A training value sharing any
window with a content record of the same account holds that content, whatever the labels say.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

import numpy as np

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


def _digest(words: list[str]) -> bytes:
    return hashlib.blake2b(" ".join(words).encode("utf-8"), digest_size=8).digest()


def fingerprints(text: str) -> np.ndarray:
    """The 64-bit hashes of a text's word windows (int64; empty for short texts)."""
    words = _words(text)
    if len(words) < MIN_WORDS:
        return np.empty(0, dtype=np.int64)
    if len(words) < SHINGLE_WORDS:
        windows = [words]
    else:
        windows = [words[i : i + SHINGLE_WORDS] for i in range(len(words) - SHINGLE_WORDS + 1)]
    # Each digest read as a little-endian signed 64-bit integer.
    digests = b"".join(_digest(window) for window in windows)
    return np.frombuffer(digests, dtype="<i8").astype(np.int64)


def fingerprints_of_many(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """`fingerprints` of many texts at once: all hashes in text order, and how many each text
    has. One array is built for the lot, not one per text."""
    digests: list[bytes] = []
    sizes = np.zeros(len(texts), np.int64)
    for index, text in enumerate(texts):
        words = _words(text)
        count = len(words)
        if count < MIN_WORDS:
            continue
        if count < SHINGLE_WORDS:
            digests.append(_digest(words))
            sizes[index] = 1
            continue
        digests.extend(
            _digest(words[i : i + SHINGLE_WORDS]) for i in range(count - SHINGLE_WORDS + 1)
        )
        sizes[index] = count - SHINGLE_WORDS + 1
    return np.frombuffer(b"".join(digests), dtype="<i8").astype(np.int64), sizes
