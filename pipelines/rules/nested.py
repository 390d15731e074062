"""Walking nested record values (lists and JSON objects) for the strings inside them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["iter_strings"]


def iter_strings(value: Any) -> Iterator[str]:
    """Every string in `value`: itself, list items and object values, depth first."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from iter_strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_strings(item)
