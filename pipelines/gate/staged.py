"""The first leak gate: re-reads every staged training file and checks it before anything publishes.

It trusts no label the classifier wrote: columns are compared with the output schema in
`schemas/outputs/training.json`, pseudonym columns must look like pseudonyms, and every other
string value is scanned by the gate's own detectors (all of them, whatever the run's detector
config says) and against the run's known identifiers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.pvalue import AsSingleton

from pipelines.chunk import CONTENT_REDACTIONS
from pipelines.config import Config
from pipelines.rules import detect
from pipelines.transforms.context import RunContext
from pipelines.transforms.write import StagedChunk, StagedFile

__all__ = ["CHECKS", "GateStaged", "check_training_table", "empty_results", "merge_results"]

CHECKS = ("training_columns", "record_class", "pseudonym_format", "detectors_clean")
_EXAMPLES = 3


def empty_results() -> dict[str, dict[str, Any]]:
    return {
        name: {"passed": True, "violations": 0, "rows_checked": 0, "examples": []}
        for name in CHECKS
    }


def merge_results(a: Mapping[str, Mapping[str, Any]], b: Mapping[str, Mapping[str, Any]]) -> dict:
    out = {}
    for name in CHECKS:
        x, y = a[name], b[name]
        out[name] = {
            "passed": x["passed"] and y["passed"],
            "violations": x["violations"] + y["violations"],
            "rows_checked": x["rows_checked"] + y["rows_checked"],
            "examples": (list(x["examples"]) + list(y["examples"]))[:_EXAMPLES],
        }
    return out


def _fail(results: dict, check: str, count: int, example: str) -> None:
    results[check]["passed"] = False
    results[check]["violations"] += count
    if len(results[check]["examples"]) < _EXAMPLES:
        results[check]["examples"].append(example)


def _string_leaves(column: pa.Array) -> Iterator[pa.Array]:
    """Every string array inside a column: the column itself, list items, struct fields."""
    if pa.types.is_string(column.type):
        yield column
    elif pa.types.is_list(column.type):
        yield from _string_leaves(column.flatten())
    elif pa.types.is_struct(column.type):
        for i in range(column.type.num_fields):
            yield from _string_leaves(column.field(i))


def check_training_table(
    table: pa.Table,
    *,
    where: str,
    allowed_columns: list[str],
    pseudonym_columns: Iterable[str],
    pseudonym_pattern: str,
    known: detect.KnownIdentifiers | None,
    record_class: str = "service_generated",
    detectors: tuple[str, ...] | None = None,
) -> dict[str, dict[str, Any]]:
    """Every first-gate check on one training table; examples name positions, never values.

    Service tables are scanned with every detector; consented content (whose words are the
    consented content) only with `detectors`, the contact details and secrets it must not hold.
    """
    results = empty_results()
    for name in CHECKS:
        results[name]["rows_checked"] = table.num_rows
    if table.column_names != allowed_columns:
        extra = sorted(set(table.column_names) - set(allowed_columns))
        missing = sorted(set(allowed_columns) - set(table.column_names))
        _fail(results, "training_columns", 1, f"{where}: extra {extra}, missing {missing}")
    if "record_class" in table.column_names:
        wrong = pc.sum(pc.invert(pc.equal(table["record_class"], record_class))).as_py()
        if wrong:
            _fail(results, "record_class", wrong, f"{where}: {wrong} rows not {record_class}")
    pseudonyms = set(pseudonym_columns)
    for name in pseudonyms & set(table.column_names):
        column = table[name]
        if pa.types.is_list(column.type):
            column = pc.list_flatten(column)
        ok = pc.match_substring_regex(column, pseudonym_pattern)
        bad = pc.sum(pc.and_(pc.is_valid(column), pc.invert(ok))).as_py() or 0
        if bad:
            _fail(results, "pseudonym_format", bad, f"{where}: column {name}, {bad} values")
    settings = detect.DetectorSettings()
    for name in table.column_names:
        if name in pseudonyms:
            continue
        for leaf in _string_leaves(table[name].combine_chunks()):
            found = detect.scan_column(leaf, settings, known=known, detectors=detectors)
            rows = [i for i, f in enumerate(found) if f]
            if rows:
                kinds = sorted({f.detector for i in rows for f in found[i]})
                _fail(
                    results,
                    "detectors_clean",
                    len(rows),
                    f"{where}: column {name}, values {rows[:5]}, detectors {kinds}",
                )
    return results


class _CheckFile(beam.DoFn):
    def __init__(self, config: Config) -> None:
        self.config = config

    def setup(self) -> None:
        self.allowed: dict[str, dict[str, list[str]]] = {}
        self.pseudonyms: dict[str, dict[str, list[str]]] = {}
        for table in ("training", "consented_content"):
            doc = self.config.schemas.get(f"outputs/{table}.json", {})
            self.allowed[table] = doc.get("x-columns-by-event-type", {})
            self.pseudonyms[table] = doc.get("x-pseudonym-columns", {})
        settings = self.config.deidentify
        self.pattern = (
            f"^{re.escape(settings.pseudonym_prefix)}[0-9a-f]{{{settings.pseudonym_hex_chars}}}$"
        )

    def process(self, staged: StagedFile, context: RunContext) -> Iterator[dict]:
        with FileSystems.open(staged.path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            table = pq.read_table(f)
        event_type = staged.event_type or ""
        content = staged.table == "consented_content"
        yield check_training_table(
            table,
            where=f"{staged.table}/{event_type}/{staged.path.rsplit('/', 1)[-1]}",
            allowed_columns=self.allowed[staged.table].get(event_type, []),
            pseudonym_columns=self.pseudonyms[staged.table].get(event_type, []),
            pseudonym_pattern=self.pattern,
            known=None if content else context.known,
            record_class="customer_content" if content else "service_generated",
            detectors=CONTENT_REDACTIONS if content else None,
        )


class _MergeGate(beam.CombineFn):
    def create_accumulator(self) -> dict:
        return empty_results()

    def add_input(self, acc: dict, item: dict) -> dict:
        return merge_results(acc, item)

    def merge_accumulators(self, accs: Iterable[dict]) -> dict:
        out = empty_results()
        for acc in accs:
            out = merge_results(out, acc)
        return out

    def extract_output(self, acc: dict) -> dict:
        return acc


def _training_files(staged: StagedChunk) -> Iterator[StagedFile]:
    yield from (f for f in staged.files if f.table in ("training", "consented_content"))


class GateStaged(beam.PTransform):
    """StagedChunks -> one dict of check results over every staged training file."""

    def __init__(self, config: Config, context: beam.PCollection) -> None:
        super().__init__()
        self.config = config
        self.context = context

    def expand(self, staged: beam.PCollection) -> beam.PCollection:
        return (
            staged
            | "TrainingFiles" >> beam.FlatMap(_training_files)
            | "CheckFile" >> beam.ParDo(_CheckFile(self.config), AsSingleton(self.context))
            | "Merge" >> beam.CombineGlobally(_MergeGate())
        )
