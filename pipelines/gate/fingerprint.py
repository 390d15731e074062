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

__all__ = ["MIN_WORDS", "SHINGLE_WORDS", "fingerprints"]

# Five words: long enough that two people's sentences rarely share one by chance, short enough
# to catch a clause copied out of a chat line.
SHINGLE_WORDS = 5
# A text of three or four words is fingerprinted whole; shorter ones ("ok", "Tuesday") are too
# common to be evidence of anything.
MIN_WORDS = 3
_WORD = re.compile(r"\w+")


def _words(text: str) -> list[str]:
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
