"""Great Expectations suites over staged training tables: a declarative second net behind the gate.

The suites are data (`configs/expectations/*.json`), one per table kind, written once for every
event type with placeholders filled per table:

- `"$columns"`: the output schema's column list for the event type;
- `"$event_type"`: the event type of the partition;
- `"$pattern:<name>"`: a regex from the file's `patterns` (each named, with its reason);
- `"column": "$each_pseudonym_column"` / `"$each_string_column"`: one expectation per pseudonym
  column / per other column holding strings (lists and structs of strings included).

List and struct columns are validated as one string per row, their string items joined by a
newline; a pseudonym pattern (anchored `^...\\Z`) then has to match every item of a list.

Results are plain JSON-able dicts holding counts and row positions, never cell values: a value
that fails here may be a leaked secret.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.errors import ConfigError, GateFailed
from pipelines.rules.arrays import list_offsets
from pipelines.rules.nested import iter_strings

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "KINDS",
    "ExpectationsFailed",
    "check_suite_types",
    "expand_template",
    "load_suite_templates",
    "merge_results",
    "require_success",
    "string_columns",
    "suite_patterns",
    "validate_table",
]

KINDS = ("service_generated", "consented_content")
SUITE_DIR = Path("configs") / "expectations"
# Examples kept per failed expectation, as row positions: enough to find the rows, few enough
# that a report never grows with the size of a leak.
MAX_EXAMPLES = 3
# Longest GE exception message kept in a result; GE's messages name columns, not cell values.
_MAX_ERROR_CHARS = 300
# Joins the string items of a list or struct cell; no pattern's character classes include it.
_ITEM_SEPARATOR = "\n"

_Fail = Callable[[str, str], ConfigError]
_EACH_COLUMN = ("$each_pseudonym_column", "$each_string_column")
_SCALAR_PLACEHOLDERS = ("$columns", "$event_type")
_PATTERN_PREFIX = "$pattern:"
# A leak gate tolerates no share of bad rows and skips none, and the result format (values
# excluded) is this module's to set, so a suite may not weaken or reshape any expectation.
_FORBIDDEN_KWARGS = (
    "mostly",
    "row_condition",
    "condition_parser",
    "result_format",
    "catch_exceptions",
)
# SUMMARY gives counts and the first row positions; exclude_unexpected_values keeps the values
# themselves out of GE's result (and out of its in-memory store).
_RESULT_FORMAT = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": MAX_EXAMPLES,
    "exclude_unexpected_values": True,
    "include_unexpected_rows": False,
    "return_unexpected_index_query": False,
}


# What a passing table needs: GE's verdict per expectation, no counts.
_PASS_OR_FAIL = {"result_format": "BOOLEAN_ONLY"}


class ExpectationsFailed(GateFailed):
    """A staged table failed its expectation suite; `result` holds the details for the report."""

    def __init__(self, result: Mapping[str, Any]) -> None:
        failed = ", ".join(
            f"{entry['expectation']}({entry['column'] or 'table'}): {entry['unexpected_count']}"
            for entry in result["failed"]
        )
        super().__init__(f"{result['suite']} [{result['event_type']}] failed: {failed}")
        self.result = dict(result)


def require_success(result: Mapping[str, Any]) -> None:
    """Raise `ExpectationsFailed` unless the (possibly merged) result passed."""
    if not result["success"]:
        raise ExpectationsFailed(result)


# --- suite templates -------------------------------------------------------------------------


def load_suite_templates(home: Path, *, check_types: bool = True) -> dict[str, dict]:
    """Read and check every suite in `home/configs/expectations/`, keyed by table kind; with
    `check_types=False` the expectation types and argument names are left to
    `check_suite_types`."""
    folder = Path(home) / SUITE_DIR
    paths = sorted(folder.glob("*.json"))
    if not paths:
        raise ConfigError(f"{folder}: no expectation suites (*.json) found")
    templates: dict[str, dict] = {}
    for path in paths:
        template = _read_template(path)
        kind = template["kind"]
        if kind in templates:
            raise ConfigError(
                f"{path}: kind {kind!r} already has a suite in {templates[kind]['source']}"
            )
        if check_types:
            check_suite_types({kind: template})
        templates[kind] = template
    missing = [kind for kind in KINDS if kind not in templates]
    if missing:
        raise ConfigError(f"{folder}: no expectation suite for kind {missing[0]!r}")
    return templates


def _read_template(path: Path) -> dict:
    source = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigError(f"{source}: cannot read expectation suite: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: (top level) must be an object")

    def fail(key: str, why: str) -> ConfigError:
        return ConfigError(f"{source}: {key} {why}")

    for key in ("suite", "kind", "patterns", "expectations"):
        if key not in data:
            raise fail(key, "is missing")
    if not isinstance(data["suite"], str) or not data["suite"]:
        raise fail("suite", f"must be a non-empty string, not {data['suite']!r}")
    if data["kind"] not in KINDS:
        raise fail("kind", f"must be one of {list(KINDS)}, not {data['kind']!r}")
    patterns = _read_patterns(data["patterns"], fail)
    if not isinstance(data["expectations"], list) or not data["expectations"]:
        raise fail("expectations", "must be a non-empty list")
    expectations = [
        _read_expectation(entry, f"expectations[{index}]", patterns, fail)
        for index, entry in enumerate(data["expectations"])
    ]
    return {
        "suite": data["suite"],
        "kind": data["kind"],
        "source": source,
        "patterns": patterns,
        "expectations": expectations,
    }


def _read_patterns(raw: Any, fail: _Fail) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise fail("patterns", "must be an object of name -> {regex, why}")
    patterns = {}
    for name, entry in raw.items():
        key = f"patterns.{name}"
        if not isinstance(entry, dict) or set(entry) != {"regex", "why"}:
            raise fail(key, "must be an object with exactly 'regex' and 'why'")
        if not isinstance(entry["why"], str) or not entry["why"].strip():
            raise fail(f"{key}.why", "must say why the pattern is what it is")
        if not isinstance(entry["regex"], str) or not entry["regex"]:
            raise fail(f"{key}.regex", "must be a non-empty string")
        try:
            re.compile(entry["regex"])
        except re.error as error:
            raise fail(f"{key}.regex", f"does not compile: {error}") from error
        patterns[name] = entry["regex"]
    return patterns


def _read_expectation(entry: Any, key: str, patterns: Mapping[str, str], fail: _Fail) -> dict:
    if not isinstance(entry, dict) or set(entry) != {"type", "kwargs", "meta"}:
        raise fail(key, "must be an object with exactly 'type', 'kwargs' and 'meta'")
    type_name, kwargs, meta = entry["type"], entry["kwargs"], entry["meta"]
    if not isinstance(type_name, str) or not type_name.startswith("expect_"):
        raise fail(f"{key}.type", f"is not a Great Expectations expectation: {type_name!r}")
    if not isinstance(meta, dict) or not isinstance(meta.get("why"), str) or not meta["why"]:
        raise fail(f"{key}.meta.why", "must say why the expectation is there")
    if not isinstance(kwargs, dict):
        raise fail(f"{key}.kwargs", "must be an object")
    for name, value in kwargs.items():
        if name in _FORBIDDEN_KWARGS:
            raise fail(f"{key}.kwargs.{name}", "is not allowed in a leak gate's suite")
        for placeholder in _placeholders(value):
            if placeholder in _EACH_COLUMN and name != "column":
                raise fail(f"{key}.kwargs.{name}", f"{placeholder} may only be a 'column' value")
            if placeholder.startswith(_PATTERN_PREFIX):
                if placeholder.removeprefix(_PATTERN_PREFIX) not in patterns:
                    raise fail(f"{key}.kwargs.{name}", f"names no pattern: {placeholder!r}")
            elif placeholder not in _EACH_COLUMN + _SCALAR_PLACEHOLDERS:
                raise fail(f"{key}.kwargs.{name}", f"has an unknown placeholder {placeholder!r}")
    if kwargs.get("column") == "$each_pseudonym_column" and "regex" in kwargs:
        regex = _fill(kwargs["regex"], patterns, {})
        # Each item of a list column must match on its own; only an anchored pattern says so.
        if not (isinstance(regex, str) and regex.startswith("^") and regex.endswith("\\Z")):
            raise fail(f"{key}.kwargs.regex", "must be anchored as ^...\\Z for pseudonym columns")
    return {"type": type_name, "kwargs": kwargs, "meta": meta, "at": key}


def check_suite_types(templates: Mapping[str, Mapping[str, Any]]) -> None:
    """Every expectation names a GE expectation and only its arguments (ConfigError naming the
    file and key if not). Kept apart from reading the suites: it imports GE, which takes
    seconds, and only the commands that run the gate need it."""
    for template in templates.values():
        for expectation in template["expectations"]:
            key, type_name = expectation["at"], expectation["type"]
            expectation_class = _expectation_class(type_name)
            if expectation_class is None:
                raise ConfigError(
                    f"{template['source']}: {key}.type is not a Great Expectations expectation: "
                    f"{type_name!r}"
                )
            for name in expectation["kwargs"]:
                if name not in _arguments(expectation_class):
                    raise ConfigError(
                        f"{template['source']}: {key}.kwargs.{name} is not an argument of "
                        f"{type_name}"
                    )


def _expectation_class(snake_name: str) -> Any:
    import great_expectations as gx

    camel = "".join(part.capitalize() for part in snake_name.split("_"))
    found = getattr(gx.expectations, camel, None)
    return (
        found
        if isinstance(found, type) and issubclass(found, gx.expectations.Expectation)
        else None
    )


def _arguments(expectation_class: Any) -> set[str]:
    """What the expectation checks; fields every expectation has (id, meta, ...) are GE's own."""
    import great_expectations as gx

    return set(expectation_class.__fields__) - set(gx.expectations.Expectation.__fields__)


def _placeholders(value: Any) -> Iterator[str]:
    """The `$...` placeholders anywhere in a suite value."""
    return (text for text in iter_strings(value) if text.startswith("$"))


def _fill(value: Any, patterns: Mapping[str, str], scalars: Mapping[str, Any]) -> Any:
    if isinstance(value, str) and value.startswith(_PATTERN_PREFIX):
        return patterns[value.removeprefix(_PATTERN_PREFIX)]
    if isinstance(value, str) and value in scalars:
        return scalars[value]
    if isinstance(value, list):
        return [_fill(item, patterns, scalars) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, patterns, scalars) for key, item in value.items()}
    return value


def _each_item(anchored: str) -> str:
    """`^P\\Z` -> a pattern every newline-joined item of a list cell must match."""
    body = anchored.removeprefix("^").removesuffix("\\Z")
    return f"^(?:{body})(?:\\n(?:{body}))*\\Z"


def expand_template(
    template: Mapping[str, Any],
    *,
    event_type: str,
    columns: list[str],
    pseudonym_columns: list[str],
    schema: pa.Schema,
) -> list[dict]:
    """The template's expectations for one table: placeholders filled, per-column ones expanded."""
    pseudonyms = list(pseudonym_columns)
    strings = [f.name for f in schema if _holds_strings(f.type) and f.name not in pseudonyms]
    nested = {f.name for f in schema if _is_nested(f.type)}
    scalars = {"$columns": list(columns), "$event_type": event_type}
    expanded = []
    for expectation in template["expectations"]:
        kwargs = _fill(expectation["kwargs"], template["patterns"], scalars)
        targets = {
            "$each_pseudonym_column": pseudonyms,
            "$each_string_column": strings,
        }.get(kwargs.get("column"))
        if targets is None:
            expanded.append({**expectation, "kwargs": kwargs})
            continue
        for column in targets:
            filled = {**kwargs, "column": column}
            if (
                column in nested
                and "regex" in filled
                and kwargs["column"] == "$each_pseudonym_column"
            ):
                filled["regex"] = _each_item(filled["regex"])
            expanded.append({**expectation, "kwargs": filled})
    return expanded


# --- the table as GE sees it -----------------------------------------------------------------


def _holds_strings(kind: pa.DataType) -> bool:
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return True
    if pa.types.is_dictionary(kind):
        return _holds_strings(kind.value_type)
    if _is_list(kind):
        return _holds_strings(kind.value_type)
    if pa.types.is_struct(kind):
        return any(_holds_strings(kind.field(i).type) for i in range(kind.num_fields))
    return False


def _is_list(kind: pa.DataType) -> bool:
    return (
        pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
    )


def _is_nested(kind: pa.DataType) -> bool:
    return _is_list(kind) or pa.types.is_struct(kind)


def _joined_strings(column: pa.ChunkedArray) -> pa.Array:
    """One string per row: the cell's string items joined; null when it holds none."""
    kind = column.type
    if _is_list(kind) and pa.types.is_string(kind.value_type):
        # A list of strings (most nested columns): joined in Arrow, null items left out.
        cells = column.combine_chunks()
        items = pc.list_flatten(cells)
        present = pc.is_valid(items)
        parents = pc.filter(pc.list_parent_indices(cells), present).to_numpy()
        offsets = list_offsets(parents, len(cells))
        lists = pa.ListArray.from_arrays(pa.array(offsets), pc.filter(items, present))
        joined_items = pc.binary_join(lists, _ITEM_SEPARATOR)
        return pc.if_else(
            pc.greater(pc.list_value_length(lists), 0), joined_items, pa.scalar(None, pa.string())
        )
    joined = []
    for cell in column.to_pylist():
        items = list(iter_strings(cell))
        joined.append(_ITEM_SEPARATOR.join(items) if items else None)
    return pa.array(joined, type=pa.string())


def string_columns(
    table: pa.Table, pseudonym_columns: Iterable[str] = ()
) -> Iterator[tuple[str, pa.Array]]:
    """(name, strings) of every column `$each_string_column` expands to, as the suite reads
    it: one string per row, list and struct cells as their string items joined."""
    skip = set(pseudonym_columns)
    for f, column in zip(table.schema, table.columns, strict=True):
        if f.name in skip or not _holds_strings(f.type):
            continue
        if _is_nested(f.type):
            yield f.name, _joined_strings(column)
        elif pa.types.is_dictionary(f.type):
            yield f.name, column.combine_chunks().cast(f.type.value_type)
        else:
            yield f.name, column.combine_chunks()


def suite_patterns(template: Mapping[str, Any]) -> list[str]:
    """The regexes no string column may match, from a suite's
    `expect_column_values_to_not_match_regex_list` on `$each_string_column`."""
    found: list[str] = []
    for expectation in template["expectations"]:
        kwargs = expectation["kwargs"]
        if (
            expectation["type"] == "expect_column_values_to_not_match_regex_list"
            and kwargs.get("column") == "$each_string_column"
        ):
            found += _fill(kwargs["regex_list"], template["patterns"], {})
    return found


def _validation_frame(table: pa.Table) -> pd.DataFrame:
    """The table with nested string columns flattened to one string per row, as pandas."""
    arrays = []
    for f, column in zip(table.schema, table.columns, strict=True):
        if _is_nested(f.type) and _holds_strings(f.type):
            arrays.append(_joined_strings(column))
        elif pa.types.is_dictionary(f.type):
            arrays.append(column.cast(f.type.value_type))
        else:
            arrays.append(column)
    # One chunk per column: pandas keeps Arrow's chunks, and every regex runs once per chunk.
    # A RangeIndex, so the row positions GE reports are positions in the staged table.
    return pa.table(arrays, names=table.column_names).combine_chunks().to_pandas()


# --- running GE ------------------------------------------------------------------------------


@dataclass
class _Gx:
    """One ephemeral GE context per process, with its expanded suites by name."""

    context: Any
    batch_definition: Any
    suites: dict[str, Any] = field(default_factory=dict)


_lock = threading.Lock()  # GE's context and stores are not thread-safe; Beam may run threads
_gx: _Gx | None = None


def _ge() -> _Gx:
    """The process's GE context, created on first use (creating one is slow)."""
    global _gx
    if _gx is None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        # GE logs at INFO/WARNING for things this module turns into results or ConfigErrors.
        logging.getLogger("great_expectations").setLevel(logging.ERROR)
        # This module sets its own logger to INFO on import; it narrates temporary folders.
        logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.ERROR)
        context = gx.get_context(mode="ephemeral")
        # tqdm bars per validation would flood a pipeline's output.
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        asset = context.data_sources.add_pandas("consentgate_staged").add_dataframe_asset(
            "training_table"
        )
        _gx = _Gx(context, asset.add_batch_definition_whole_dataframe("whole_table"))
    return _gx


def _suite(state: _Gx, template: Mapping[str, Any], event_type: str, expanded: list) -> Any:
    """An expectation suite for this expanded template, built once and reused across runs."""
    digest = hashlib.sha256(json.dumps(expanded, sort_keys=True).encode()).hexdigest()[:16]
    name = f"{template['suite']}.{event_type}.{digest}"
    if name not in state.suites:
        import great_expectations as gx

        suite = gx.ExpectationSuite(name=name)
        for spec in expanded:
            try:
                expectation = _expectation_class(spec["type"])(**spec["kwargs"], meta=spec["meta"])
            except (TypeError, ValueError) as error:
                raise ConfigError(
                    f"{template['source']}: {spec['at']}.kwargs are invalid for {event_type}: "
                    f"{error}"
                ) from error
            suite.add_expectation(expectation)
        state.suites[name] = suite
    return state.suites[name]


def validate_table(
    table: pa.Table,
    *,
    kind: str,
    event_type: str,
    columns: list[str],
    pseudonym_columns: list[str],
    templates: Mapping[str, Mapping[str, Any]],
) -> dict:
    """Run the `kind` suite, expanded for this event type, on one staged table."""
    if kind not in templates:
        raise ConfigError(f"{SUITE_DIR}: no expectation suite for kind {kind!r}")
    template = templates[kind]
    expanded = expand_template(
        template,
        event_type=event_type,
        columns=columns,
        pseudonym_columns=pseudonym_columns,
        schema=table.schema,
    )
    frame = _validation_frame(table)
    with _lock:
        state = _ge()
        suite = _suite(state, template, event_type, expanded)
        batch = state.batch_definition.get_batch(batch_parameters={"dataframe": frame})
        # A pass/fail answer first: GE then computes no counts or row positions, which costs
        # about half of a run. A failure is run again for them; a gate failure is rare.
        outcome = batch.validate(suite, result_format=_PASS_OR_FAIL)
        if not outcome.success:
            outcome = batch.validate(suite, result_format=_RESULT_FORMAT)
    return _summary(outcome, suite=template["suite"], event_type=event_type, rows=table.num_rows)


def _summary(outcome: Any, *, suite: str, event_type: str, rows: int) -> dict:
    failed = [_failure(item) for item in outcome.results if not item.success]
    statistics = dict(outcome.statistics)
    return {
        "suite": suite,
        "event_type": event_type,
        "success": bool(outcome.success),
        "evaluated": int(statistics["evaluated_expectations"]),
        "failed": failed,
        "rows": rows,
        "statistics": {
            "evaluated_expectations": int(statistics["evaluated_expectations"]),
            "successful_expectations": int(statistics["successful_expectations"]),
            "unsuccessful_expectations": int(statistics["unsuccessful_expectations"]),
        },
    }


def _failure(item: Any) -> dict:
    """One failed expectation as counts and positions; GE's values and column names stay out."""
    config = item.expectation_config
    result = item.result or {}
    entry: dict[str, Any] = {
        "expectation": config.type,
        "column": config.kwargs.get("column"),
        "unexpected_count": 0,
        "unexpected_examples": [],
    }
    if item.exception_info and item.exception_info.get("raised_exception"):
        message = str(item.exception_info.get("exception_message") or "")
        entry["error"] = message[:_MAX_ERROR_CHARS]
    elif "unexpected_count" in result:
        entry["unexpected_count"] = int(result["unexpected_count"] or 0)
        positions = result.get("partial_unexpected_index_list") or []
        entry["unexpected_examples"] = [int(p) for p in positions[:MAX_EXAMPLES]]
    elif "mismatched" in (result.get("details") or {}):
        # A column list mismatch: positions in the expected list, not the names found there.
        mismatched = result["details"]["mismatched"]
        entry["unexpected_count"] = len(mismatched)
        entry["unexpected_examples"] = [
            int(m["Expected Column Position"]) for m in mismatched[:MAX_EXAMPLES]
        ]
    else:
        entry["unexpected_count"] = 1
    return entry


# --- aggregation -----------------------------------------------------------------------------


def merge_results(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict:
    """Two shards' results of one suite and event type as one: counts summed, success ANDed."""
    for name in ("suite", "event_type"):
        if a[name] != b[name]:
            raise ValueError(f"cannot merge results of different {name}s: {a[name]!r}, {b[name]!r}")
    failed: dict[tuple[str, str | None], dict] = {}
    for entry in itertools.chain(a["failed"], b["failed"]):
        key = (entry["expectation"], entry["column"])
        if key not in failed:
            failed[key] = {**entry, "unexpected_examples": list(entry["unexpected_examples"])}
            continue
        merged = failed[key]
        merged["unexpected_count"] += entry["unexpected_count"]
        merged["unexpected_examples"] = (
            merged["unexpected_examples"] + list(entry["unexpected_examples"])
        )[:MAX_EXAMPLES]
        if "error" in entry and "error" not in merged:
            merged["error"] = entry["error"]
    return {
        "suite": a["suite"],
        "event_type": a["event_type"],
        "success": bool(a["success"] and b["success"]),
        "evaluated": a["evaluated"] + b["evaluated"],
        "failed": list(failed.values()),
        "rows": a["rows"] + b["rows"],
        "statistics": {
            name: a["statistics"][name] + b["statistics"][name] for name in a["statistics"]
        },
    }
