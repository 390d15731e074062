"""The input contract, read from `schemas/`: event types, field categories, Arrow types, checks.

The JSON Schemas under `schemas/events/v1/` are the single source of field categories
(`x-category`), record classes (`x-record-class`) and content subjects
(`x-content-subjects`). Records are checked by validators compiled here from a small,
explicit subset of JSON Schema; a schema that uses a keyword outside that subset is a
configuration error, so the contract can never say more than the code enforces.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.errors import ConfigError

_Kept = TypeVar("_Kept")

__all__ = [
    "CATEGORIES",
    "ENVELOPE_FIELDS",
    "RECORD_CLASSES",
    "Columns",
    "Contract",
    "EventType",
    "FieldSpec",
    "Instant",
    "Violation",
    "compile_contract",
    "compile_event_schema",
    "kept_per_object",
    "kept_per_schemas",
    "load_contract",
    "micros_of",
    "parse_instant",
    "parse_timestamp",
    "plain_utc",
    "plain_utc_mask",
    "read_json_object",
    "read_schemas",
]

CATEGORIES = ("service", "identifier", "free_text", "derived", "content")
RECORD_CLASSES = ("service_generated", "customer_content", "unknown")
ENVELOPE_FIELDS = (
    "event_id",
    "event_type",
    "event_ts",
    "account_id",
    "meeting_id",
    "participant_id",
    "schema_version",
)

_SUPPORTED_KEYWORDS = frozenset(
    {
        "$schema",
        "$id",
        "title",
        "description",
        "type",
        "enum",
        "const",
        "required",
        "properties",
        "additionalProperties",
        "items",
        "anyOf",
        "minLength",
        "minimum",
        "maximum",
        "pattern",
        "format",
    }
)
# Strict RFC 3339 (section 5.6): ASCII digits, `T` or `t` between date and time (the space the
# RFC allows "for readability" in a note is not its grammar, and is refused), an offset of at
# most 23:59 or `Z`/`z`, and a fraction of any length. Second 60 is refused: a leap second has no
# instant of its own on the UTC time line these timestamps are compared on, so a record or a
# ledger row that names one is rejected (`bad_timestamp`), never moved to a neighbouring second.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9])"
    r"(?:\.([0-9]+))?([Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
# The form nearly every timestamp takes: UTC, ASCII digits, at most microseconds, a year from
# 1000 on. RE2 syntax: `$` is the end of the text. Arrow's cast agrees with `parse_instant` on
# every text of this form, so columns of it are checked and converted in Arrow.
_PLAIN_UTC = (
    r"^[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?Z$"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = _EPOCH.date().toordinal()
_DAY_MICROS = 86_400_000_000
# The instants a timestamp may name once its offset is applied: 0001-01-01T00:00:00Z to
# 9999-12-31T23:59:59.999999Z, the range every output (Arrow, Parquet, Python) can hold.
_MIN_MICROS = (date.min.toordinal() - _EPOCH_DAY) * _DAY_MICROS
_MAX_MICROS = (date.max.toordinal() - _EPOCH_DAY + 1) * _DAY_MICROS - 1


class Instant(NamedTuple):
    """A strict RFC 3339 timestamp at its full precision, as a sortable pair.

    `micros` is the instant rounded down to whole microseconds since the epoch (UTC);
    `sub_micros` holds the digits below the microsecond with trailing zeros cut, so comparing
    two Instants as tuples compares the instants exactly ("5" > "49", "" < "1"), at any length.
    """

    micros: int
    sub_micros: str


def parse_instant(value: str) -> Instant | None:
    """Strict RFC 3339 timestamp -> Instant, or None if it does not parse or leaves the range
    of years 1 to 9999 once its offset is applied (year 1 with a positive offset)."""
    m = _RFC3339.fullmatch(value)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        days = date(year, month, day).toordinal() - _EPOCH_DAY
    except ValueError:  # not on the calendar: 30 February, month 13, year 0
        return None
    digits = m.group(7) or ""
    zone = m.group(8)
    offset = 0 if zone in ("Z", "z") else int(zone[1:3]) * 60 + int(zone[4:6])
    if zone[0] == "-":
        offset = -offset
    seconds = days * 86_400 + hour * 3_600 + (minute - offset) * 60 + second
    micros = seconds * 1_000_000 + int(digits[:6].ljust(6, "0"))
    if not _MIN_MICROS <= micros <= _MAX_MICROS:
        return None
    return Instant(micros, digits[6:].rstrip("0"))


def parse_timestamp(value: str) -> datetime | None:
    """Strict RFC 3339 timestamp -> aware UTC datetime (rounded down to microseconds), or None."""
    instant = parse_instant(value)
    if instant is None:
        return None
    return _EPOCH + timedelta(microseconds=instant.micros)


def micros_of(moment: datetime) -> int:
    """An aware datetime as whole microseconds since the epoch, exactly (no float on the way)."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


# Every number must convert to its Arrow column as it is: an integer column is int64 (JSON
# allows any size; orjson yields up to 2**64 - 1), and a number column is float64, which takes
# an integer only while the double holds it exactly (up to 2**53); and it must be finite
# (Parquet floats can hold NaN and infinities).
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_EXACT_IN_DOUBLE = 2**53
# An unescaped `$` ends the text in JSON Schema's (ECMA-262) patterns; Python's `$` also
# matches before a final newline, which `\Z` does not.
_ECMA_END = re.compile(r"(?<!\\)\$")


def _python_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(_ECMA_END.sub(r"\\Z", pattern))


def _int_range(allowed: frozenset[type] | None) -> tuple[int, int]:
    """The integers a field's Arrow column can hold exactly: float64 for `number`."""
    if allowed is not None and float in allowed:
        return -_EXACT_IN_DOUBLE, _EXACT_IN_DOUBLE
    return _INT64_MIN, _INT64_MAX


def _representable(value: int | float, ints: tuple[int, int]) -> bool:
    """Whether a JSON number converts to its Arrow column (int64 or float64) as it is."""
    if type(value) is int:
        return ints[0] <= value <= ints[1]
    return math.isfinite(value)


def _all_representable(values: list[Any], kinds: set[type], ints: tuple[int, int]) -> bool:
    """`_representable` for a whole column, at C speed when the column is of one type."""
    if int in kinds:
        found = values if kinds == {int} else [v for v in values if type(v) is int]
        if min(found) < ints[0] or max(found) > ints[1]:
            return False
    if float in kinds:
        floats = values if kinds == {float} else [v for v in values if type(v) is float]
        # A NaN or an infinity makes the sum one; so may finite values that add up past the
        # largest float, and then the caller asks the exact check.
        if not math.isfinite(sum(floats)):
            return False
    return True


@dataclass(frozen=True)
class Violation:
    """Why a record breaks the contract: a reason code and the JSON path it concerns."""

    code: str
    path: str

    def __str__(self) -> str:
        return f"{self.code} at {self.path}"


Check = Callable[[Any, str], Violation | None]
# A screen looks at one field of many records at once and returns the positions of the records
# that may break the contract; every other record certainly conforms. The exact check (`Check`)
# then runs on those few alone, so reason codes and paths come from one place.
# A screen given a `columns` dict also leaves in it each field it read from every record, as a
# list in record order, so the caller need not read the records a second time.
Screen = Callable[[Sequence[Any], dict[str, list[Any]] | None], set[int]]
# Compiled schema nodes return (reason code, path below the node) or None; the path is only
# built on failure, so a conforming record costs no string work.
_Node = Callable[[Any], tuple[str, str] | None]
# JSON types as exact Python types: bool is not an integer here, whatever Python thinks.
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
    "object": (dict,),
    "array": (list,),
}


def _all_timestamps(texts: list[str]) -> bool:
    """True only when `parse_instant` accepts every text.

    Texts of the plain UTC form are checked in Arrow, whose cast refuses a date that is not on
    the calendar (30 February); the pattern already refused hour 24 and second 60. Other forms
    go one by one.
    """
    array = pa.array(texts, pa.string())
    plain = plain_utc_mask(array)
    if not pc.all(plain).as_py():
        others = pc.invert(plain).to_numpy(zero_copy_only=False)
        if not all(parse_instant(texts[i]) is not None for i in np.flatnonzero(others).tolist()):
            return False
        array = array.filter(plain)
    try:
        pc.utf8_slice_codeunits(array, 0, 19).cast(pa.timestamp("s"))
    except pa.ArrowInvalid:
        return False
    return True


def plain_utc_mask(texts: pa.Array) -> pa.BooleanArray:
    """Per text: is it of the plain UTC form (see `_PLAIN_UTC`)? Null for a null text."""
    return pc.match_substring_regex(texts, _PLAIN_UTC)


def plain_utc(texts: pa.Array) -> bool:
    """Is every text of the plain UTC form (see `_PLAIN_UTC`)?"""
    return bool(pc.all(plain_utc_mask(texts)).as_py())


class _LeafKeywords(NamedTuple):
    """A node's own keywords, compiled once for the value check and the column check."""

    allowed: frozenset[type] | None
    has_const: bool
    const: Any
    enum: frozenset[Any] | None
    min_length: int | None
    pattern: re.Pattern[str] | None
    timestamp: bool
    minimum: float | None
    maximum: float | None


def _leaf_keywords(schema: Mapping[str, Any], where: str) -> _LeafKeywords:
    allowed: frozenset[type] | None = None
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        allowed = frozenset(t for name in names for t in _PY_TYPES[name])
    if "format" in schema and schema["format"] != "date-time":
        raise ConfigError(f"{where}/format: only 'date-time' is supported")
    return _LeafKeywords(
        allowed=allowed,
        has_const="const" in schema,
        const=schema.get("const"),
        enum=frozenset(schema["enum"]) if "enum" in schema else None,
        min_length=schema.get("minLength"),
        pattern=_python_pattern(schema["pattern"]) if "pattern" in schema else None,
        timestamp=schema.get("format") == "date-time",
        minimum=schema.get("minimum"),
        maximum=schema.get("maximum"),
    )


def _leaf(schema: Mapping[str, Any], where: str) -> _Node:
    """One check for a node's own keywords: type, const, enum, length, pattern, format, range."""
    allowed, has_const, const, enum, min_length, pattern, timestamp, minimum, maximum = (
        _leaf_keywords(schema, where)
    )

    ints = _int_range(allowed)

    def leaf(v: Any) -> tuple[str, str] | None:
        kind = type(v)
        if allowed is not None and kind not in allowed:
            return "wrong_type", ""
        if has_const and (v != const or kind is not type(const)):
            return "bad_value", ""
        if enum is not None and (kind is not str or v not in enum):
            return "bad_value", ""
        if kind is str:
            if min_length is not None and len(v) < min_length:
                return "bad_value", ""
            if pattern is not None and not pattern.search(v):
                return "bad_value", ""
            if timestamp and parse_instant(v) is None:
                return "bad_timestamp", ""
        elif kind is int or kind is float:
            if not _representable(v, ints):
                return "bad_value", ""
            if minimum is not None and v < minimum:
                return "bad_value", ""
            if maximum is not None and v > maximum:
                return "bad_value", ""
        return None

    return leaf


def _compile_node(schema: Mapping[str, Any], where: str) -> _Node:
    """Compile one schema node (and its children) into a node check."""
    unknown = sorted(k for k in schema if not k.startswith("x-") and k not in _SUPPORTED_KEYWORDS)
    if unknown:
        raise ConfigError(f"{where}: unsupported JSON Schema keyword(s) {unknown}")
    if "enum" in schema and not all(isinstance(e, str) for e in schema["enum"]):
        raise ConfigError(f"{where}/enum: only string enumerations are supported")
    leaf = _leaf(schema, where)
    parts: list[_Node] = []

    if "anyOf" in schema:
        options = [_compile_node(s, f"{where}/anyOf/{i}") for i, s in enumerate(schema["anyOf"])]

        def any_of(value: Any) -> tuple[str, str] | None:
            found = [opt(value) for opt in options]
            if any(f is None for f in found):
                return None
            codes = {f[0] for f in found if f is not None}
            return ("wrong_type" if codes == {"wrong_type"} else "bad_value"), ""

        parts.append(any_of)

    if "properties" in schema or "required" in schema:
        props = {
            name: _compile_node(sub, f"{where}/properties/{name}")
            for name, sub in schema.get("properties", {}).items()
        }
        required = tuple(schema.get("required", ()))
        closed = schema.get("additionalProperties", True) is False
        required_set = frozenset(required)
        prop_set = frozenset(props)
        every_field = prop_set if required_set == prop_set else None

        def object_check(value: Any) -> tuple[str, str] | None:
            if type(value) is not dict:
                return None
            keys = value.keys()
            if every_field is None or keys != every_field:
                if not required_set <= keys:
                    missing = next(n for n in required if n not in value)
                    return "missing_field", f".{missing}"
                if closed and not keys <= prop_set:
                    extra = next(n for n in value if n not in props)
                    return "undeclared_field", f".{extra}"
            for name, item in value.items():
                sub = props.get(name)
                if sub is not None:
                    found = sub(item)
                    if found is not None:
                        return found[0], f".{name}{found[1]}"
            return None

        parts.append(object_check)

    if "items" in schema:
        item_check = _compile_node(schema["items"], f"{where}/items")

        def items_check(value: Any) -> tuple[str, str] | None:
            if type(value) is not list:
                return None
            for i, item in enumerate(value):
                found = item_check(item)
                if found is not None:
                    return found[0], f"[{i}]{found[1]}"
            return None

        parts.append(items_check)

    if not parts:
        return leaf

    def node(value: Any) -> tuple[str, str] | None:
        found = leaf(value)
        if found is not None:
            return found
        for part in parts:
            found = part(value)
            if found is not None:
                return found
        return None

    return node


_CHILD_KEYWORDS = ("anyOf", "properties", "required", "items")
_LEAF_KEYWORDS = ("const", "enum", "minLength", "pattern", "format", "minimum", "maximum")


def _all_match(texts: list[str], pattern: re.Pattern[str], re2_pattern: str | None) -> bool:
    """Does `pattern` find a match in every text? In Arrow when `re2_pattern` is its RE2 twin
    and the texts are UTF-8 (a lone surrogate is not), else in Python."""
    if re2_pattern is not None:
        try:
            array = pa.array(texts, pa.string())
            return bool(pc.all(pc.match_substring_regex(array, re2_pattern)).as_py())
        except (UnicodeError, pa.ArrowException):  # not UTF-8; or a pattern RE2 refuses
            pass
    return all(map(pattern.search, texts))


def _re2_twin(pattern: str | None) -> str | None:
    """`pattern` when RE2 reads it as Python does (`$` ending the text in both): literal
    characters, classes of ranges, groups, alternation, anchors and repeats. An escape, a `(?`
    construct or a `{,n}` repeat (a literal to RE2) leaves the judging to Python."""
    if pattern is None or any(part in pattern for part in ("\\", "(?", "{,")):
        return None
    return pattern


def _column_check(schema: Mapping[str, Any], where: str) -> Callable[[list[Any]], bool] | None:
    """`_leaf` for a whole column: True only when every value passes the node's own keywords.

    None for a node with children (anyOf, properties, items): those are checked value by value.
    A False says nothing about which value failed; the caller asks the exact check.
    """
    if any(k in schema for k in _CHILD_KEYWORDS):
        return None
    allowed, has_const, const, enum, min_length, pattern, timestamp, minimum, maximum = (
        _leaf_keywords(schema, where)
    )

    ints = _int_range(allowed)
    re2_pattern = _re2_twin(schema.get("pattern"))

    def column_ok(values: list[Any]) -> bool:
        if not values:
            return True
        kinds = set(map(type, values))
        if allowed is not None and not kinds <= allowed:
            return False
        # Exact types first, so == below can never equate True with 1 or 1.0 with 1.
        if has_const and (kinds != {type(const)} or values.count(const) != len(values)):
            return False
        if enum is not None and (kinds != {str} or not set(values) <= enum):
            return False
        if str in kinds:
            texts = values if kinds == {str} else [v for v in values if type(v) is str]
            if min_length is not None and min(map(len, texts)) < min_length:
                return False
            if pattern is not None and not _all_match(texts, pattern, re2_pattern):
                return False
            if timestamp and not _all_timestamps(texts):
                return False
        if kinds & {int, float} and not _all_representable(values, kinds, ints):
            return False
        if (minimum is not None or maximum is not None) and kinds & {int, float}:
            numbers = [v for v in values if type(v) is int or type(v) is float]
            # min() and max() skip a NaN unless it comes first, and then the comparison is
            # False: a NaN never makes a bad column look good.
            if minimum is not None and not min(numbers) >= minimum:
                return False
            if maximum is not None and not max(numbers) <= maximum:
                return False
        return True

    return column_ok


# Values of a column a failing screen re-checks together before it asks the exact check.
_SCREEN_BLOCK = 1024


def _compile_screen(schema: Mapping[str, Any], where: str) -> Screen:
    """Compile an object schema into a screen over many values of it (see `Screen`)."""
    node = _compile_node(schema, where)
    # Only an object with nothing but properties to check is screened column by column.
    plain_object = schema.get("type") == "object" and not any(
        k in schema for k in (*_LEAF_KEYWORDS, "anyOf", "items")
    )
    if not plain_object:

        def each(values: Sequence[Any], read: dict[str, list[Any]] | None = None) -> set[int]:
            return {i for i, v in enumerate(values) if node(v) is not None}

        return each

    properties = schema.get("properties", {})
    required = frozenset(schema.get("required", ()))
    closed = schema.get("additionalProperties", True) is False
    allowed_keys = frozenset(properties) if closed else None
    columns = {
        name: (
            _column_check(sub, f"{where}/properties/{name}"),
            _compile_node(sub, f"{where}/properties/{name}"),
        )
        for name, sub in properties.items()
    }

    def keys_ok(keys: Collection[str]) -> bool:
        return required <= set(keys) and (allowed_keys is None or allowed_keys >= set(keys))

    def screen(values: Sequence[Any], read: dict[str, list[Any]] | None = None) -> set[int]:
        # Records of one producer share a few key orders: each distinct order is judged once.
        if set(map(type, values)) == {dict} and all(map(keys_ok, set(map(tuple, values)))):
            suspects: set[int] = set()
            records = values
        else:
            suspects = {i for i, v in enumerate(values) if type(v) is not dict or not keys_ok(v)}
            records = [v if type(v) is dict else {} for v in values]
        for name, (column_ok, value_node) in columns.items():
            if column_ok is None:
                suspects.update(
                    i
                    for i, r in enumerate(records)
                    if name in r and value_node(r[name]) is not None
                )
                continue
            try:
                column = list(map(itemgetter(name), records))
            except KeyError:  # an optional field, or a record that lacks it
                column = [r[name] for r in records if name in r]
            else:
                if read is not None:
                    read[name] = column
            if column_ok(column):
                continue
            # Some value fails: find it a block at a time, so that one bad value sends its
            # block, not the whole column, value by value through the exact check.
            at = [i for i, r in enumerate(records) if name in r]
            for start in range(0, len(column), _SCREEN_BLOCK):
                block = column[start : start + _SCREEN_BLOCK]
                if not column_ok(block):
                    suspects.update(
                        at[start + j] for j, v in enumerate(block) if value_node(v) is not None
                    )
        return suspects

    return screen


def _compile(schema: Mapping[str, Any], where: str) -> Check:
    """Compile a schema into a check returning the first violation (code and JSON path)."""
    node = _compile_node(schema, where)

    def check(value: Any, path: str) -> Violation | None:
        found = node(value)
        return None if found is None else Violation(found[0], path + found[1])

    return check


def compile_event_schema(schema: Mapping[str, Any], where: str) -> tuple[Check, Screen]:
    """The record check and column screen of one payload schema (used for vendor kinds too)."""
    return _compile(schema, where), _compile_screen(schema, where)


def _arrow_type(schema: Mapping[str, Any], where: str) -> pa.DataType:
    if "anyOf" in schema:
        # `recipients`: the string "everyone" or a list of ids; stored as a list of strings.
        return pa.list_(pa.string())
    types = schema.get("type")
    types = [t for t in (types if isinstance(types, list) else [types]) if t != "null"]
    if types == ["string"]:
        return pa.string()
    if types == ["integer"]:
        return pa.int64()
    if types == ["number"]:
        return pa.float64()
    if types == ["boolean"]:
        return pa.bool_()
    if types == ["array"]:
        return pa.list_(_arrow_type(schema["items"], f"{where}/items"))
    if types == ["object"] and "properties" in schema:
        return pa.struct(
            [
                pa.field(name, _arrow_type(sub, f"{where}/{name}"))
                for name, sub in schema["properties"].items()
            ]
        )
    raise ConfigError(f"{where}: no Arrow type for JSON type {schema.get('type')!r}")


@dataclass(frozen=True)
class FieldSpec:
    """One field of an event: its name, data category and Arrow type."""

    name: str
    category: str
    arrow_type: pa.DataType
    nullable: bool
    generalise: str | None = None


@dataclass(frozen=True)
class EventType:
    """One of the contract's event types with its payload fields and content-subject rule."""

    name: str
    record_class: str
    fields: tuple[FieldSpec, ...]
    subjects: Mapping[str, str] | None
    check: Check = field(repr=False, compare=False)
    screen: Screen = field(repr=False, compare=False)

    def fields_of(self, category: str) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.category == category)


@dataclass
class Columns:
    """Fields a screen read from every record of a group, as lists in record order: envelope
    fields by name, payload fields by name. A field some record lacks is not here."""

    envelope: dict[str, list[Any]] = field(default_factory=dict)
    payload: dict[str, list[Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Contract:
    """The whole input contract: envelope, the event types by name, the consent ledger."""

    envelope: tuple[FieldSpec, ...]
    event_types: Mapping[str, EventType]
    consent_fields: tuple[FieldSpec, ...]
    envelope_check: Check = field(repr=False, compare=False)
    consent_check: Check = field(repr=False, compare=False)
    envelope_screen: Screen = field(repr=False, compare=False)

    def validate(self, record: Any) -> Violation | None:
        """The first way `record` breaks the contract, or None when it conforms."""
        if not isinstance(record, dict):
            return Violation("not_object", "$")
        event_type = record.get("event_type")
        if "event_type" not in record:
            return Violation("missing_field", "$.event_type")
        if not isinstance(event_type, str):
            return Violation("wrong_type", "$.event_type")
        spec = self.event_types.get(event_type)
        if spec is None:
            return Violation("unknown_event_type", "$.event_type")
        found = self.envelope_check(record, "$")
        if found is not None:
            return found
        return spec.check(record["payload"], "$.payload")

    def screen(
        self, event_type: str, records: Sequence[dict[str, Any]], columns: Columns | None = None
    ) -> set[int]:
        """Positions of the records of `event_type` that may break the contract.

        Every other record certainly conforms (`validate` would return None); the ones listed
        are left to `validate`, which says exactly how. Checks whole columns at a time. Given
        `columns`, leaves in it the fields it read from every record (see `Columns`).
        """
        envelope = payload = None
        if columns is not None:
            envelope, payload = columns.envelope, columns.payload
        suspects = self.envelope_screen(records, envelope)
        payloads = envelope.get("payload") if envelope is not None else None
        if payloads is None:
            payloads = [r.get("payload") for r in records]
        return suspects | self.event_types[event_type].screen(payloads, payload)

    def validate_consent(self, row: Any) -> Violation | None:
        if not isinstance(row, dict):
            return Violation("not_object", "$")
        return self.consent_check(row, "$")


def _field_specs(schema: Mapping[str, Any], where: str) -> tuple[FieldSpec, ...]:
    specs = []
    required = set(schema.get("required", ()))
    for name, sub in schema["properties"].items():
        category = sub.get("x-category")
        if category not in (*CATEGORIES, "per_field"):
            raise ConfigError(
                f"{where}/properties/{name}/x-category: {category!r} is not one of {CATEGORIES}"
            )
        if category == "per_field":
            continue
        types = sub.get("type")
        nullable = name not in required or (isinstance(types, list) and "null" in types)
        arrow = (
            pa.timestamp("us", tz="UTC")
            if sub.get("format") == "date-time"
            else _arrow_type(sub, f"{where}/properties/{name}")
        )
        specs.append(FieldSpec(name, category, arrow, nullable, sub.get("x-generalise")))
    return tuple(specs)


def read_json_object(path: Path, what: str = "file") -> dict[str, Any]:
    """A JSON object from a file; anything else is a ConfigError naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} is missing") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must hold a JSON object")
    return data


def kept_per_object(
    most: int,
) -> Callable[[Callable[..., _Kept]], Callable[..., _Kept]]:
    """A decorator: `build(source, **options)`, computed once per source object and options.

    Results are kept by the identity of the source (held here with the result, so its id
    cannot be reused), for sources that are never changed once made, such as a Config's
    schemas or a run's side inputs on a worker. A caller must not change what it gets; the
    last `most` are kept.
    """

    def decorate(build: Callable[..., _Kept]) -> Callable[..., _Kept]:
        kept: dict[tuple[Any, ...], tuple[object, _Kept]] = {}

        @functools.wraps(build)
        def keep(source: Any, **options: Any) -> _Kept:
            key = (id(source), *sorted(options.items()))
            hit = kept.get(key)
            if hit is None or hit[0] is not source:
                if len(kept) >= most:
                    kept.clear()
                hit = kept[key] = (source, build(source, **options))
            return hit[1]

        return keep

    return decorate


# What is compiled from the schemas is pure and takes milliseconds, and every stage of every
# bundle asks for it: kept per schemas mapping (a worker shares one among its stages, see
# `Config.__setstate__`).
kept_per_schemas = kept_per_object(32)


def read_schemas(schemas_dir: str | Path) -> dict[str, dict[str, Any]]:
    """The contract's schema files as plain data, keyed by path relative to `schemas_dir`.

    Plain data pickles to any Beam worker; each worker compiles it with `Contract.from_schemas`.
    """
    root = Path(schemas_dir)
    if not (root / "events" / "v1").is_dir():
        raise ConfigError(f"{root}: no events/v1/ folder of event schemas")
    paths = [
        *sorted((root / "events" / "v1").glob("*.json")),
        root / "consent" / "v1.json",
        *sorted((root / "outputs").glob("*.json")),
        # Vendor sources declared as data (pipelines/sources/declared.py).
        *sorted((root / "sources").glob("*/*.json")),
    ]
    return {str(p.relative_to(root)): read_json_object(p, "schema file") for p in paths}


def load_contract(schemas_dir: str | Path, *, sources: bool = False) -> Contract:
    """Read and compile the contract in `schemas_dir`."""
    return compile_contract(read_schemas(schemas_dir), sources=sources)


@kept_per_schemas
def compile_contract(
    schemas: Mapping[str, Mapping[str, Any]], *, sources: bool = False
) -> Contract:
    """Build a Contract from `read_schemas` output (paths relative to the schemas folder).

    With `sources`, the event types of the vendor sources (`schemas/sources/`, named
    `<source>.<kind>`) join the v1 ones; a run reads them only under `--source` other than
    `contract`, so a v1 line can never claim a vendor event type.
    """
    envelope_path = "events/v1/envelope.json"
    if envelope_path not in schemas:
        raise ConfigError(f"schemas/{envelope_path}: schema file is missing")
    envelope_schema = schemas[envelope_path]
    envelope = _field_specs(envelope_schema, f"schemas/{envelope_path}")
    if tuple(f.name for f in envelope) != ENVELOPE_FIELDS:
        raise ConfigError(f"{envelope_path}: envelope fields must be {ENVELOPE_FIELDS}")
    event_types: dict[str, EventType] = {}
    for path, schema in sorted(schemas.items()):
        if not path.startswith("events/v1/") or path == envelope_path:
            continue
        name = schema.get("x-event-type")
        if name != path.removeprefix("events/v1/").removesuffix(".json"):
            raise ConfigError(f"schemas/{path}: x-event-type {name!r} must equal the file name")
        record_class = schema.get("x-record-class")
        if record_class not in RECORD_CLASSES[:2]:
            raise ConfigError(
                f"schemas/{path}: x-record-class {record_class!r} must be one of "
                f"{RECORD_CLASSES[:2]}"
            )
        subjects = schema.get("x-content-subjects")
        if (record_class == "customer_content") != (subjects is not None):
            raise ConfigError(
                f"schemas/{path}: x-content-subjects is required for customer_content only"
            )
        event_types[name] = EventType(
            name=name,
            record_class=record_class,
            fields=_field_specs(schema, f"schemas/{path}"),
            subjects=subjects,
            check=_compile(schema, f"schemas/{path}"),
            screen=_compile_screen(schema, f"schemas/{path}"),
        )
    if not event_types:
        raise ConfigError("schemas/events/v1: no event type schemas found")
    if sources:
        from pipelines.sources.declared import source_event_types

        event_types.update(source_event_types(schemas))
    consent_path = "consent/v1.json"
    if consent_path not in schemas:
        raise ConfigError(f"schemas/{consent_path}: schema file is missing")
    consent_schema = schemas[consent_path]
    return Contract(
        envelope=envelope,
        event_types=event_types,
        consent_fields=_field_specs(consent_schema, f"schemas/{consent_path}"),
        envelope_check=_compile(envelope_schema, f"schemas/{envelope_path}"),
        consent_check=_compile(consent_schema, f"schemas/{consent_path}"),
        envelope_screen=_compile_screen(envelope_schema, f"schemas/{envelope_path}"),
    )
