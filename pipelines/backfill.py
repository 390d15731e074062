"""`consentgate backfill`: the job for each day of a range, in order, past any failed day."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from pipelines.errors import ConfigError, ConsentgateError, GateFailed, InputMissing
from pipelines.lock import LockHeld
from pipelines.run import RunRequest, run_job
from pipelines.terminal import inert

__all__ = ["DayResult", "backfill", "days_between", "exit_code_of", "render_table"]

_LOG = logging.getLogger(__name__)
_COUNTS = ("input_records", "training", "restricted", "quarantine", "duplicates")


@dataclass(frozen=True)
class DayResult:
    """How one day's run ended."""

    date: str
    status: str  # published, gate_failed, locked, not_landed, failed
    exit_code: int
    counts: dict[str, Any] | None = None
    message: str = ""


def days_between(first: str, last: str) -> list[str]:
    """Every day from `first` to `last`, both included, as YYYY-MM-DD."""
    try:
        start, end = date.fromisoformat(first), date.fromisoformat(last)
    except ValueError as exc:
        raise ConfigError(f"--from/--to: expected YYYY-MM-DD ({exc})") from None
    if end < start:
        raise ConfigError(f"--to {last} is before --from {first}")
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def backfill(first: str, last: str, request_for: Callable[[str], RunRequest]) -> list[DayResult]:
    """Run each day in order; a failed day is recorded and the next one runs."""
    results = []
    days = days_between(first, last)
    for number, day in enumerate(days, 1):
        _LOG.info("backfill %s (%d of %d)", day, number, len(days))
        try:
            manifest = run_job(request_for(day))
        except GateFailed as exc:
            result = DayResult(day, "gate_failed", exc.exit_code, message=str(exc))
        except LockHeld as exc:
            result = DayResult(day, "locked", exc.exit_code, message=str(exc))
        except InputMissing as exc:
            result = DayResult(day, "not_landed", exc.exit_code, message=str(exc))
        except ConsentgateError as exc:
            result = DayResult(day, "failed", exc.exit_code, message=str(exc))
        else:
            result = DayResult(day, "published", 0, counts=manifest["counts"])
        if result.exit_code:
            _LOG.error("backfill %s: %s: %s", day, result.status, result.message)
        results.append(result)
    return results


def exit_code_of(results: list[DayResult]) -> int:
    """0 when every day published; 3 when the only failures are failed gates, 5 when they are
    only days whose input has not landed; else 4."""
    codes = {r.exit_code for r in results} - {0}
    if not codes:
        return 0
    if codes in ({3}, {5}):
        return codes.pop()
    return 4


def render_table(results: list[DayResult]) -> str:
    """The backfill's outcome, a line per day, for people and logs."""
    header = ["date", "status", *_COUNTS]
    rows = [
        [
            r.date,
            r.status,
            *(str(r.counts.get(k, 0)) if r.counts else "-" for k in _COUNTS),
        ]
        for r in results
    ]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    failed = [r for r in results if r.exit_code]
    if failed:
        lines.append("")
        lines += [f"{r.date}: {inert(r.message)}" for r in failed]
    published = len(results) - len(failed)
    lines.append(f"{published} of {len(results)} days published")
    return "\n".join(lines)
