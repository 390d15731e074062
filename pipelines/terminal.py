"""Text for terminals and logs made inert: control characters are shown, never obeyed.

Values that reach a terminal (event ids, file names, reasons, error messages) come from inputs
an attacker may write. An escape sequence in one could retitle the window, clear the screen or
hide a line; a bidi override could reverse what the reader sees. Every such character is
rendered as a visible escape (`\\x1b`, `\\u202e`) before it is printed or logged.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Mapping
from typing import Any

__all__ = ["InertFormatter", "inert", "inert_lines", "inert_tree"]

# Unicode categories that steer a terminal or the reading order instead of showing a glyph:
# controls (C0, DEL, C1), format characters (bidi overrides and isolates, zero-width joiners),
# line and paragraph separators, surrogates and unassigned code points.
_HIDDEN = frozenset(("Cc", "Cf", "Cs", "Cn", "Zl", "Zp"))


def _visible(char: str) -> str:
    point = ord(char)
    if point < 0x100:
        return f"\\x{point:02x}"
    if point < 0x10000:
        return f"\\u{point:04x}"
    return f"\\U{point:08x}"


def inert(text: object) -> str:
    """`text` as one line with every control, format or separator character made visible."""
    value = str(text)
    if value.isprintable():  # the common case: nothing to do
        return value
    return "".join(_visible(c) if unicodedata.category(c) in _HIDDEN else c for c in value)


def inert_lines(text: str) -> str:
    """Multi-line output made inert line by line: its own line breaks stay, nothing else."""
    return "\n".join(inert(line) for line in text.split("\n"))


def inert_tree(value: Any) -> Any:
    """Every string inside `value` (dicts, lists) made inert, so no value adds a line break."""
    if isinstance(value, str):
        return inert(value)
    if isinstance(value, Mapping):
        return {k: inert_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [inert_tree(v) for v in value]
    return value


class InertFormatter(logging.Formatter):
    """A log line whose message is inert; a traceback keeps its own line breaks, made inert."""

    def format(self, record: logging.LogRecord) -> str:
        safe = logging.makeLogRecord(record.__dict__)
        safe.msg = inert(record.getMessage())
        safe.args = None
        return inert_lines(super().format(safe))
