"""Parse raw lines, check records against the contract, classify them, and build typed Arrow tables.

One call handles a whole chunk of input lines: records that conform are grouped by event type
into Arrow tables whose columns follow the contract (one column per envelope and payload field);
everything else becomes a reject row with a reason code. Nothing here imports Beam.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.contract import (
    Columns,
    Contract,
    EventType,
    FieldSpec,
    parse_instant,
    plain_utc_mask,
)
from pipelines.rules.arrays import hashes64

__all__ = [
    "DEFAULT_MAX_NESTING_DEPTH",
    "LOC",
    "REJECT_SCHEMA",
    "ClassifiedChunk",
    "classify_records",
    "decode_line",
    "decode_lines",
    "nesting_depth",
    "python_rows",
    "record_class_of",
    "record_hash",
    "record_hashes",
]

# Internal columns carried beside the contract's fields (never written to training).
LOC = "_loc"  # input position: file index << 32 | record number within the file (1-based)
HASH = "_hash"  # 64-bit hash of the canonical record, for de-duplication

REJECT_SCHEMA = pa.schema(
    [
        pa.field(LOC, pa.int64()),
        pa.field("event_id", pa.string()),
        pa.field("event_type", pa.string()),
        pa.field(HASH, pa.int64()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string()),
        pa.field("raw", pa.binary()),
    ]
)


# v1 records nest four deep at most (record, payload, list, item); a record far deeper is built
# to exhaust a recursive parser or serialiser, and is quarantined before one sees it.
DEFAULT_MAX_NESTING_DEPTH = 32
# A string literal of JSON, escapes included; brackets inside one do not nest anything.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_OPENERS = np.zeros(256, np.int8)
_OPENERS[[ord("["), ord("{")]] = 1
_OPENERS[[ord("]"), ord("}")]] = -1


def nesting_depth(text: bytes) -> int:
    """How deeply arrays and objects nest in JSON text, counted without parsing it.

    Brackets inside strings do not count. No recursion: a line of a million `[` costs a
    NumPy pass, not a stack. Text that is not JSON gets a number too (the parser then says why).
    """
    if text.count(b"[") + text.count(b"{") == 0:
        return 0
    bare = _JSON_STRING.sub(b"", text)
    steps = _OPENERS[np.frombuffer(bare, np.uint8)]
    return int(np.cumsum(steps, dtype=np.int64).max(initial=0))


def too_deep(text: bytes, max_depth: int) -> bool:
    """True when `text` nests arrays and objects deeper than `max_depth`."""
    # Fewer brackets than the limit can never nest past it: most lines stop here.
    if text.count(b"[") + text.count(b"{") <= max_depth:
        return False
    return nesting_depth(text) > max_depth


def record_hash(record: Any) -> int:
    """A stable 64-bit hash of a record's canonical JSON (key order does not matter).

    A record orjson cannot write (an integer past 64 bits) is hashed from Python's JSON text;
    one neither can write hashes as its JSON type name, so its repeats still meet.
    """
    return int(record_hashes([record])[0])


def record_hashes(records: Iterable[Any]) -> np.ndarray:
    """`record_hash` of each record, as int64 (`hashes64` of the canonical texts)."""
    return hashes64(list(map(_canonical, records)))


def _canonical(record: Any) -> bytes:
    try:
        return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        try:
            return json.dumps(record, sort_keys=True, default=repr).encode("utf-8", "replace")
        except (ValueError, TypeError, RecursionError):
            return type(record).__name__.encode()


def decode_line(line: bytes, max_depth: int = DEFAULT_MAX_NESTING_DEPTH) -> tuple[Any, str | None]:
    """(record, None) for a JSON object line, else (None, reason code)."""
    if too_deep(line, max_depth):
        return None, "too_deep"
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return None, "not_utf8"
        return None, "not_json"
    if not isinstance(record, dict):
        return None, "not_object"
    return record, None


def decode_lines(
    lines: Iterable[bytes], max_depth: int = DEFAULT_MAX_NESTING_DEPTH
) -> Iterator[tuple[Any, str | None]]:
    """`decode_line` of each line, the common line (an object with fewer brackets than the
    limit, so never too deep) parsed at once without the per-line checks."""
    loads = orjson.loads
    for line in lines:
        if line.count(b"[") + line.count(b"{") <= max_depth:
            try:
                record = loads(line)
            except orjson.JSONDecodeError:
                pass
            else:
                if type(record) is dict:
                    yield record, None
                    continue
        yield decode_line(line, max_depth)


def python_rows(batch: pa.RecordBatch | pa.Table) -> list[dict[str, Any]]:
    """Rows of a columnar batch as Python dicts, without ever failing on a value.

    A temporal column (a Parquet timestamp, date, time or duration where the contract wants an
    RFC 3339 string) becomes its raw integer: the contract then rejects it as `wrong_type`,
    where converting it to Python could overflow (a timestamp before year 1) and end the run.
    """
    columns = []
    for column in batch.columns:
        if pa.types.is_temporal(column.type):
            column = column.cast(pa.int32() if column.type.bit_width == 32 else pa.int64())
        columns.append(column)
    return pa.Table.from_arrays(columns, names=batch.schema.names).to_pylist()


def record_class_of(event_type: EventType, overrides: Mapping[str, str]) -> str:
    """The record class of an event type, after the taxonomy's overrides."""
    return overrides.get(event_type.name, event_type.record_class)


@dataclass
class ClassifiedChunk:
    """Typed tables of conforming records by event type, and the reject rows of the rest."""

    tables: dict[str, pa.Table] = field(default_factory=dict)
    rejects: pa.Table = field(default_factory=REJECT_SCHEMA.empty_table)


def _timestamps(values: list[Any]) -> pa.Array:
    """Checked RFC 3339 texts -> microseconds, rounded down (an event is never moved later).

    Arrow's cast is taken only for the plain UTC form, on which it agrees with `parse_instant`;
    any other form (offsets, finer fractions, `t`/`z`) goes through `parse_instant`, so the
    instant a text names is the same on both paths.
    """
    texts = pa.array(values, pa.string())
    plain = plain_utc_mask(texts)
    if pc.all(plain).as_py():
        return texts.cast(pa.timestamp("us", tz="UTC"))
    cast = pc.if_else(plain, texts, None).cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    micros = pc.fill_null(cast, 0).to_numpy().copy()
    for i in np.flatnonzero(~plain.to_numpy(zero_copy_only=False)).tolist():
        instant = parse_instant(values[i])
        assert instant is not None  # the contract check ran first
        micros[i] = instant.micros
    return pa.array(micros, pa.int64()).cast(pa.timestamp("us", tz="UTC"))


def _column(spec: FieldSpec, values: list[Any]) -> pa.Array:
    if spec.name == "recipients":
        values = [[v] if isinstance(v, str) else v for v in values]
    return pa.array(values, spec.arrow_type)


def build_table(
    contract: Contract,
    event_type: EventType,
    records: Sequence[dict[str, Any]],
    locs: Sequence[int],
    hashes: Sequence[int] | np.ndarray,
    read: Columns | None = None,
) -> pa.Table:
    """Arrow table of conforming records of one type: envelope, payload fields, LOC and HASH.

    `read` holds fields the screen already read from these records (see `Columns`); the rest
    are read here.
    """
    read = read or Columns()
    columns: dict[str, pa.Array] = {}
    for spec in contract.envelope:
        values = read.envelope.get(spec.name)
        if values is None:
            try:
                values = list(map(itemgetter(spec.name), records))
            except KeyError:  # an optional field some records leave out
                values = [r.get(spec.name) for r in records]
        if spec.name == "event_ts":
            columns[spec.name] = _timestamps(values)
        else:
            columns[spec.name] = pa.array(values, spec.arrow_type)
    payloads: list[dict[str, Any]] | None = None
    for spec in event_type.fields:
        values = read.payload.get(spec.name)
        if values is None:
            if payloads is None:
                payloads = read.envelope.get("payload") or list(map(itemgetter("payload"), records))
            values = list(map(itemgetter(spec.name), payloads))
        columns[spec.name] = _column(spec, values)
    columns[LOC] = pa.array(locs, pa.int64())
    columns[HASH] = pa.array(hashes, pa.int64())
    return pa.table(columns)


def _stand_in(records: list[dict[str, Any]], read: Columns, broken: set[int]) -> None:
    """Put a conforming record (and its read values) in the place of each broken one, so the
    group's columns type as a whole; the caller then drops those rows from the table."""
    good = next(i for i in range(len(records)) if i not in broken)
    for values in (records, *read.envelope.values(), *read.payload.values()):
        for i in broken:
            values[i] = values[good]


def _reject_row(loc: int, record: Any, reason: str, detail: str | None, raw: bytes | None) -> dict:
    event_id = record.get("event_id") if isinstance(record, dict) else None
    event_type = record.get("event_type") if isinstance(record, dict) else None
    return {
        LOC: loc,
        "event_id": event_id if isinstance(event_id, str) else None,
        "event_type": event_type if isinstance(event_type, str) else None,
        HASH: record_hash(record) if isinstance(event_id, str) else None,
        "reason": reason,
        "detail": detail,
        "raw": raw,
    }


@dataclass
class _Group:
    """Records of one event type, in input order, with their positions and raw bytes."""

    records: list[dict[str, Any]] = field(default_factory=list)
    locs: list[int] = field(default_factory=list)
    raws: list[bytes | None] = field(default_factory=list)


def classify_records(
    contract: Contract,
    items: Iterable[tuple[int, Any, str | None, bytes | None]],
) -> ClassifiedChunk:
    """Check and group records.

    `items` yields (loc, record, decode_reason, raw): `record` is the decoded value (or None
    when `decode_reason` says why it could not be decoded); `raw` is the input bytes kept for
    the quarantine, or None when the record came from a columnar file.

    Records are grouped by event type first and screened a column at a time
    (`Contract.screen`); only the few the screen cannot clear go through `Contract.validate`,
    which gives the reason code and path of a reject.
    """
    groups: dict[str, _Group] = {}
    rejects: list[dict] = []
    for loc, record, reason, raw in items:
        if reason is not None:
            rejects.append(_reject_row(loc, None, reason, None, raw))
            continue
        event_type = record.get("event_type") if isinstance(record, dict) else None
        if not isinstance(event_type, str) or event_type not in contract.event_types:
            violation = contract.validate(record)
            assert violation is not None  # no event type of the contract: never conforms
            rejects.append(_reject_row(loc, record, violation.code, violation.path, raw))
            continue
        group = groups.get(event_type)
        if group is None:  # not setdefault, which would build a _Group per record
            group = groups[event_type] = _Group()
        group.records.append(record)
        group.locs.append(loc)
        group.raws.append(raw)
    chunk = ClassifiedChunk()
    for name in sorted(groups):
        group = groups[name]
        broken = set()
        read = Columns()
        for i in sorted(contract.screen(name, group.records, read)):
            violation = contract.validate(group.records[i])
            if violation is not None:
                broken.add(i)
                rejects.append(
                    _reject_row(
                        group.locs[i],
                        group.records[i],
                        violation.code,
                        violation.path,
                        group.raws[i],
                    )
                )
        records, locs = group.records, group.locs
        if len(broken) == len(records):
            continue
        if broken:
            # Typed whole and then filtered in Arrow: thinning every column list in Python
            # cost more than the rest of the typing.
            _stand_in(records, read, broken)
        hashes = record_hashes(records)
        table = build_table(contract, contract.event_types[name], records, locs, hashes, read)
        if broken:
            keep = np.ones(len(records), bool)
            keep[sorted(broken)] = False
            table = table.filter(pa.array(keep))
        chunk.tables[name] = table
    if rejects:
        # In input order, as they were read.
        rejects.sort(key=lambda row: row[LOC])
        chunk.rejects = pa.Table.from_pylist(rejects, REJECT_SCHEMA)
    return chunk
