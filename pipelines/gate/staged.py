"""Per-file checks of the leak gate: every staged training file is re-read and judged on its own.

It trusts no label the classifier wrote: columns are compared with the output schemas in
`schemas/outputs/`, the record class with the contract's (`x-record-class` in
`schemas/events/v1/`, not the taxonomy config), pseudonym columns must look like pseudonyms,
every other string value is scanned by the gate's own detectors (all of them, whatever the run's
detector config says) and against the run's known identifiers, and the Great Expectations suite
of the table's kind runs on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.gate import results
from pipelines.gate.rows import common_in, detector_hits, string_leaves, unearned_strings
from pipelines.rules import detectors
from pipelines.rules.strings import QualifiedStrings, StringRegistry, published_vocabularies
from pipelines.sources.declared import compile_sources

__all__ = [
    "CHECKS",
    "TABLES",
    "TrainingRules",
    "check_training_table",
    "string_leaves",
]

CHECKS = (
    "training_columns",
    "record_class",
    "contract_record_class",
    "pseudonym_format",
    "strings_earned",
    "detectors_clean",
)
# Staged table label -> (output schema file, record class the contract requires).
TABLES = {
    "training": ("outputs/training.json", "service_generated"),
    "consented_content": ("outputs/consented_content.json", "customer_content"),
}


@dataclass(frozen=True)
class TrainingRules:
    """What the gate knows of a staged table kind, read from schemas/ (never from configs/)."""

    table: str
    record_class: str
    columns: dict[str, list[str]]
    pseudonym_columns: dict[str, list[str]]
    contract_classes: dict[str, str]
    pseudonym_pattern: str
    vocabularies: dict[str, frozenset[str]]

    @classmethod
    def from_schemas(
        cls, schemas: dict[str, dict[str, Any]], table: str, prefix: str, hex_chars: int
    ) -> TrainingRules:
        path, record_class = TABLES[table]
        doc = schemas.get(path, {})
        classes = {
            p.removeprefix("events/v1/").removesuffix(".json"): s.get("x-record-class", "")
            for p, s in schemas.items()
            if p.startswith("events/v1/") and "x-event-type" in s
        }
        # Vendor kinds, as their source schemas declare them (`<source>.<kind>`).
        classes.update(
            {
                kind.event_type: kind.record_class
                for source in compile_sources(schemas).values()
                for kind in source.kinds.values()
            }
        )
        return cls(
            table=table,
            record_class=record_class,
            columns=doc.get("x-columns-by-event-type", {}),
            pseudonym_columns=doc.get("x-pseudonym-columns", {}),
            contract_classes=classes,
            pseudonym_pattern=f"^{re.escape(prefix)}[0-9a-f]{{{hex_chars}}}$",
            vocabularies=published_vocabularies(schemas),
        )


def check_training_table(
    table: pa.Table,
    *,
    where: str,
    event_type: str,
    rules: TrainingRules,
    known: detectors.KnownIdentifiers | None,
    strings: QualifiedStrings | None = None,
    registry: StringRegistry | None = None,
) -> dict[str, dict[str, Any]]:
    """Every per-file check on one staged table; examples name positions, never values.

    `strings` and `registry` (the run's common strings and configs/strings.json) judge the
    string invariant of service training (`strings_earned`); without them nothing but closed
    vocabularies and pseudonyms passes it."""
    found = results.new(CHECKS, table.num_rows)
    allowed = rules.columns.get(event_type, [])
    if table.column_names != allowed:
        extra = sorted(set(table.column_names) - set(allowed))
        missing = sorted(set(allowed) - set(table.column_names))
        results.fail(found, "training_columns", 1, f"{where}: extra {extra}, missing {missing}")
    if "record_class" in table.column_names:
        wrong = pc.sum(pc.invert(pc.equal(table["record_class"], rules.record_class))).as_py()
        if wrong:
            results.fail(
                found, "record_class", wrong, f"{where}: {wrong} rows not {rules.record_class}"
            )
    types = set(table["event_type"].to_pylist()) if "event_type" in table.column_names else set()
    foreign = sorted(
        t for t in types | {event_type} if rules.contract_classes.get(t) != rules.record_class
    )
    if foreign:
        results.fail(
            found,
            "contract_record_class",
            table.num_rows,
            f"{where}: event types {foreign} are not {rules.record_class} in the contract",
        )
    pseudonyms = set(rules.pseudonym_columns.get(event_type, []))
    for name in sorted(pseudonyms & set(table.column_names)):
        column = table[name]
        if pa.types.is_list(column.type):
            column = pc.list_flatten(column)
        ok = pc.match_substring_regex(column, rules.pseudonym_pattern)
        bad = pc.sum(pc.and_(pc.is_valid(column), pc.invert(ok))).as_py() or 0
        if bad:
            results.fail(found, "pseudonym_format", bad, f"{where}: column {name}, {bad} values")
    if rules.table == "training":
        for name, rows in unearned_strings(
            table,
            event_type=event_type,
            pseudonym_columns=pseudonyms,
            pseudonym_pattern=rules.pseudonym_pattern,
            vocabularies=rules.vocabularies,
            strings=strings if strings is not None else QualifiedStrings(),
            registry=registry if registry is not None else StringRegistry(),
        ):
            results.fail(
                found,
                "strings_earned",
                int(rows.size),
                f"{where}: column {name}, values {rows[:5].tolist()}",
            )
    content = rules.table == "consented_content"
    for name, rows, kinds in detector_hits(
        table,
        pseudonym_columns=pseudonyms,
        content=content,
        known=known,
        common=None if content else common_in(event_type, strings or QualifiedStrings()),
    ):
        results.fail(
            found,
            "detectors_clean",
            int(rows.size),
            f"{where}: column {name}, values {rows[:5].tolist()}, detectors {kinds}",
        )
    return found


def merge_expectations(a: dict[str, Any], b: Iterable[tuple[str, dict[str, Any]]]) -> dict:
    """Add (suite key, result) pairs into `a`, merging results of the same suite and type."""
    from pipelines.gate.expectations import merge_results

    out = dict(a)
    for key, result in b:
        out[key] = merge_results(out[key], result) if key in out else result
    return out
