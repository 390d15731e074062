"""Gate check results: plain dicts that add up across shards and never hold cell values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MAX_EXAMPLES", "fail", "merge", "new"]

# Examples kept per failed check: enough to find the rows, few enough that a report never
# grows with the size of a leak. Examples name files, columns and positions, never values.
MAX_EXAMPLES = 3


def new(names: Iterable[str], rows_checked: int = 0) -> dict[str, dict[str, Any]]:
    """Passing results for the named checks."""
    return {
        name: {"passed": True, "violations": 0, "rows_checked": rows_checked, "examples": []}
        for name in names
    }


def fail(results: dict[str, dict[str, Any]], check: str, count: int, example: str) -> None:
    """Record `count` violations of `check`, with one example."""
    entry = results.setdefault(check, new([check])[check])
    entry["passed"] = False
    entry["violations"] += count
    if len(entry["examples"]) < MAX_EXAMPLES:
        entry["examples"].append(example)


def merge(a: Mapping[str, Mapping[str, Any]], b: Mapping[str, Mapping[str, Any]]) -> dict:
    """Both results: a check passes only if it passed in both."""
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(set(a) | set(b)):
        x = a.get(name) or new([name])[name]
        y = b.get(name) or new([name])[name]
        out[name] = {
            "passed": x["passed"] and y["passed"],
            "violations": x["violations"] + y["violations"],
            "rows_checked": x["rows_checked"] + y["rows_checked"],
            "examples": (list(x["examples"]) + list(y["examples"]))[:MAX_EXAMPLES],
        }
    return out
