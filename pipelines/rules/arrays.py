"""NumPy helpers over arrays of 64-bit hashes (no Beam, no Arrow here)."""

from __future__ import annotations

import numpy as np

__all__ = ["in_sorted", "unique_pairs"]


def in_sorted(sorted_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per value: is it in `sorted_values` (sorted ascending)? One binary search each."""
    if not len(sorted_values):
        return np.zeros(len(values), bool)
    at = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return np.asarray(sorted_values[at] == values)


def unique_pairs(keys: np.ndarray, owners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (key, owner) pairs, sorted by key and then owner (what `np.unique(...,
    axis=0)` gives for the stacked pairs, at a fraction of its cost)."""
    order = np.lexsort((owners, keys))
    keys, owners = keys[order], owners[order]
    first = np.ones(len(keys), bool)
    first[1:] = (keys[1:] != keys[:-1]) | (owners[1:] != owners[:-1])
    return keys[first], owners[first]
