"""Walking nested record values (lists and JSON objects) for the strings inside them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["iter_strings"]


def iter_strings(value: Any) -> Iterator[str]:
    """Every string in `value`: itself, list items and object values, depth first.

    A stack, not recursion: however deeply a value nests, the walk never meets Python's
    recursion limit.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
