"""`consentgate audit PATH`: scan any dataset for content and personal data with the detectors.

Parquet or JSON Lines, one file or a folder of them. Every string in a row is scanned, nested
ones (lists, structs, JSON objects) included; values that are exactly consentgate pseudonyms are
skipped, since they are what de-identification leaves behind on purpose. A JSON line nested
deeper than the run's default limit is not parsed: it counts as a row with the finding
`too_deep`, since what it holds cannot be scanned.

A consentgate run folder (one holding `manifest.json` or `.runs/`) is audited by its published
tables (by default `training/`), read from the run the manifest names as published, the one
`current` points at; never its lineage, report or manifest files.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.errors import InputError
from pipelines.rules import detectors
from pipelines.rules.classify import DEFAULT_MAX_NESTING_DEPTH, too_deep
from pipelines.rules.nested import iter_strings

__all__ = ["TABLES", "AuditReport", "audit_path", "published_tables", "string_cells"]

_BATCH_ROWS = 50_000
# A run folder's published tables, as `--table` names them.
TABLES = ("training", "restricted", "quarantine", "audit")


@dataclass
class AuditReport:
    """What the scan found: rows scanned, rows with findings, rows per detector."""

    rows_scanned: int = 0
    rows_with_findings: int = 0
    by_detector: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    # For a run folder: which run and tables were scanned.
    scope: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "rows_scanned": self.rows_scanned,
            "rows_with_findings": self.rows_with_findings,
            "by_detector": dict(sorted(self.by_detector.items())),
        }


def string_cells(column: pa.Array) -> Iterator[tuple[np.ndarray, pa.Array]]:
    """(row index of each string, the strings) for every string inside a column, however nested."""
    rows = np.arange(len(column), dtype=np.int64)
    yield from _cells(column, rows)


def _cells(column: pa.Array, rows: np.ndarray) -> Iterator[tuple[np.ndarray, pa.Array]]:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        yield rows, column.cast(pa.string())
    elif pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        # Raw bytes (a quarantine's `raw` column) are scanned as the text they mostly are.
        texts = [None if v is None else v.decode("utf-8", "replace") for v in column.to_pylist()]
        yield rows, pa.array(texts, pa.string())
    elif pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        parents = pc.list_parent_indices(column).to_numpy(zero_copy_only=False)
        yield from _cells(column.flatten(), rows[parents])
    elif pa.types.is_struct(column.type):
        for i in range(column.type.num_fields):
            yield from _cells(column.field(i), rows)


def _files(path: Path, empty_ok: bool = False) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        found = [
            p
            for p in sorted(path.rglob("*"))
            if p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
            and (p.suffix == ".parquet" or p.name.endswith((".jsonl", ".jsonl.gz")))
        ]
        if found or empty_ok:
            return found
    raise InputError(f"{path}: no Parquet or JSON Lines files to audit")


TOO_DEEP = "too_deep"


def _note_too_deep(report: AuditReport, row: int, where: str) -> None:
    report.by_detector[TOO_DEEP] = report.by_detector.get(TOO_DEEP, 0) + 1
    report.rows_with_findings += 1
    example = f"{where}: row {row} ({TOO_DEEP})"
    if len(report.examples) < 5:
        report.examples.append(example)


def _json_batches(path: Path, report: AuditReport) -> Iterator[pa.Table]:
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    rows: list[str] = []
    row_of: list[int] = []
    number = 0
    with opener(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            if too_deep(line, DEFAULT_MAX_NESTING_DEPTH):
                _note_too_deep(report, number, path.name)
                number += 1
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                value = line.decode("utf-8", "replace")
            for text in iter_strings(value):
                rows.append(text)
                row_of.append(number)
            number += 1
            if number % _BATCH_ROWS == 0:
                yield pa.table({"row": row_of, "text": pa.array(rows, pa.string())})
                rows, row_of = [], []
    yield pa.table({"row": pa.array(row_of, pa.int64()), "text": pa.array(rows, pa.string())})


def _scan(
    report: AuditReport, rows: np.ndarray, texts: pa.Array, offset: int, where: str, skip: str
) -> set[int]:
    keep = pc.invert(pc.fill_null(pc.match_substring_regex(texts, skip), False))
    rows, texts = rows[keep.to_numpy(zero_copy_only=False)], texts.filter(keep)
    flagged: set[int] = set()
    per_detector: dict[str, set[int]] = {}
    for row, found in zip(
        rows.tolist(), detectors.scan_column(texts, detectors.DetectorSettings()), strict=True
    ):
        for finding in found:
            per_detector.setdefault(finding.detector, set()).add(row + offset)
            flagged.add(row + offset)
    for name, hit in per_detector.items():
        report.by_detector[name] = report.by_detector.get(name, 0) + len(hit)
        example = f"{where}: row {min(hit)} ({name})"
        if len(report.examples) < 5 and example not in report.examples:
            report.examples.append(example)
    return flagged


def published_tables(run_dir: Path, tables: Sequence[str]) -> tuple[str, list[Path]] | None:
    """For a run folder: the published run's id and the folders of `tables` in it, through
    `current`; None when `run_dir` is not a run folder."""
    manifest_path = run_dir / "manifest.json"
    if not run_dir.is_dir() or not (manifest_path.is_file() or (run_dir / ".runs").is_dir()):
        return None
    try:
        manifest = json.loads(manifest_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise InputError(f"{manifest_path}: cannot read the run's manifest ({exc})") from None
    published = manifest.get("published_run_id") if isinstance(manifest, dict) else None
    if not published:
        raise InputError(
            f"{run_dir}: a run folder with no published run to audit (latest run: "
            f"{manifest.get('status') if isinstance(manifest, dict) else 'unknown'}); give a "
            "table folder under .runs/<run_id>/ to audit a staged run"
        )
    current = run_dir / "current"
    base = current if current.is_dir() else run_dir / ".runs" / str(published)
    return str(published), [base / name for name in tables]


def audit_path(
    path: str | Path,
    pseudonym_pattern: str = r"^ps_[0-9a-f]{32}$",
    tables: Sequence[str] = ("training",),
) -> AuditReport:
    """Scan every file under `path` (for a run folder: its published `tables`); values matching
    `pseudonym_pattern` are skipped."""
    report = AuditReport()
    re.compile(pseudonym_pattern)
    run = published_tables(Path(path), tables)
    if run is None:
        files = _files(Path(path))
    else:
        run_id, folders = run
        report.scope = f"run {run_id}, published tables {', '.join(tables)}"
        files = [f for folder in folders if folder.is_dir() for f in _files(folder, empty_ok=True)]
    for file in files:
        if file.suffix == ".parquet":
            reader = pq.ParquetFile(file)
            offset = 0
            for batch in reader.iter_batches(_BATCH_ROWS):
                flagged: set[int] = set()
                for column in batch.columns:
                    for rows, texts in string_cells(column):
                        flagged |= _scan(report, rows, texts, offset, file.name, pseudonym_pattern)
                report.rows_scanned += batch.num_rows
                report.rows_with_findings += len(flagged)
                offset += batch.num_rows
        else:
            # Row numbers run on across batches, so findings are counted once per row.
            for table in _json_batches(file, report):
                flagged = _scan(
                    report,
                    table["row"].to_numpy(),
                    table["text"].combine_chunks(),
                    0,
                    file.name,
                    pseudonym_pattern,
                )
                report.rows_with_findings += len(flagged)
            report.rows_scanned += _count_rows(file)
    return report


def _count_rows(path: Path) -> int:
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as f:
        return sum(1 for line in f if line.strip())
