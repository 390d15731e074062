"""configs/ and schemas/ -> one frozen Config, checked at start-up with the file and key named."""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.contract import (
    CATEGORIES,
    RECORD_CLASSES,
    Contract,
    compile_contract,
    kept_per_schemas,
    read_json_object,
    read_schemas,
)
from pipelines.errors import ConfigError
from pipelines.gate.expectations import load_suite_templates
from pipelines.rules.detectors import DetectorSettings
from pipelines.rules.strings import StringRegistry

__all__ = [
    "CONTENT_POLICIES",
    "Config",
    "DeidentifySettings",
    "Policy",
    "Schedule",
    "Taxonomy",
    "default_home",
    "load_config",
]

CONTENT_POLICIES = ("never", "per_participant")
_SECTIONS = ("taxonomy", "detectors", "deidentify", "policy", "schedule", "strings")
# Sections that say where data lives, not how it is judged: left out of the config hash.
_UNHASHED_SECTIONS = ("schedule",)
# An identifier is never kept raw: pseudonymised, generalised or dropped.
_FIELD_RULES = ("pseudonymise", "drop", "country")
# Maps whose keys are names from the contract (field names, event types), not settings: their
# keys are checked against the schemas instead of against the defaults.
_NAMED_MAPS = {
    ("taxonomy", "field_fides"),
    ("taxonomy", "record_class_overrides"),
    ("deidentify", "field_rules"),
    ("strings", "fields"),
}


def default_home() -> Path:
    """Folder holding `configs/` and `schemas/`: $CONSENTGATE_HOME, else the project checkout."""
    env = os.environ.get("CONSENTGATE_HOME")
    return Path(env) if env else Path(__file__).resolve().parents[1]


class _Reader:
    """Typed look-ups in one config section that name the file and key when they fail."""

    def __init__(self, data: Mapping[str, Any], source: str) -> None:
        self.data = data
        self.source = source

    def fail(self, key: str, why: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key} {why}")

    def get(self, key: str, kind: type | tuple[type, ...]) -> Any:
        if key not in self.data:
            raise self.fail(key, "is missing")
        value = self.data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(
                key, f"must be of type {getattr(kind, '__name__', kind)}, not {value!r}"
            )
        return value

    def choice(self, key: str, options: tuple[str, ...]) -> str:
        value = self.get(key, str)
        if value not in options:
            raise self.fail(key, f"must be one of {list(options)}, not {value!r}")
        return str(value)

    def at_least(self, key: str, lowest: int) -> int:
        value = self.get(key, int)
        if value < lowest:
            raise self.fail(key, f"must be >= {lowest}, not {value}")
        return int(value)

    def positive_int(self, key: str) -> int:
        return self.at_least(key, 1)

    def template(self, key: str) -> str | None:
        """A path template with `{date}` in it, or None."""
        value = self.get(key, (str, type(None)))
        if value is not None and "{date}" not in value:
            raise self.fail(key, f"must contain {{date}}, not {value!r}")
        return value


@dataclass(frozen=True)
class Taxonomy:
    """Record classes and data categories with their fideslang keys, and the data use."""

    data_use: str
    record_class_fides: dict[str, str]
    category_fides: dict[str, str]
    field_fides: dict[str, str]
    record_class_overrides: dict[str, str]

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str) -> Taxonomy:
        r = _Reader(data, source)
        classes = r.get("record_classes", dict)
        categories = r.get("categories", dict)
        for name in RECORD_CLASSES:
            _Reader(classes, source).get(name, dict)
        for name in CATEGORIES:
            _Reader(categories, source).get(name, dict)
        overrides = r.get("record_class_overrides", dict)
        for event_type, record_class in overrides.items():
            if record_class not in RECORD_CLASSES:
                raise r.fail(
                    f"record_class_overrides.{event_type}", f"must be one of {RECORD_CLASSES}"
                )
        return cls(
            data_use=r.get("data_use", str),
            record_class_fides={
                k: _Reader(v, source).get("fides", str) for k, v in classes.items()
            },
            category_fides={k: _Reader(v, source).get("fides", str) for k, v in categories.items()},
            field_fides=dict(r.get("field_fides", dict)),
            record_class_overrides=dict(overrides),
        )


@dataclass(frozen=True)
class DeidentifySettings:
    """How identifiers and non-trainable fields of service records are treated."""

    pseudonym_prefix: str
    pseudonym_hex_chars: int
    field_rules: dict[str, str]
    identifier_rule: str
    drop_categories: frozenset[str]

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str) -> DeidentifySettings:
        r = _Reader(data, source)
        rules = r.get("field_rules", dict)
        for name, rule in rules.items():
            if rule not in _FIELD_RULES:
                raise r.fail(f"field_rules.{name}", f"must be one of {list(_FIELD_RULES)}")
        hex_chars = r.positive_int("pseudonym_hex_chars")
        if hex_chars > 64 or hex_chars < 16:
            raise r.fail("pseudonym_hex_chars", "must be between 16 and 64")
        drop = r.get("drop_categories", list)
        missing = {"content", "derived"} - set(drop)
        if missing:
            # Content and derived fields never reach the service bucket, whatever a config says.
            raise r.fail("drop_categories", f"must include {sorted(missing)}")
        r.choice("free_text_rule", ("keep_if_clean",))
        return cls(
            pseudonym_prefix=r.get("pseudonym_prefix", str),
            pseudonym_hex_chars=hex_chars,
            field_rules=dict(rules),
            identifier_rule=r.choice("identifier_rule", ("pseudonymise", "drop")),
            drop_categories=frozenset(drop),
        )


# v1 records nest four deep (record, payload, list, item of a list); past 200, orjson's writer
# (limit 254) and Python's recursion would meet records the limit is there to keep out.
_NESTING_DEPTH_RANGE = (4, 200)


def _nesting_depth(r: _Reader) -> int:
    lowest, highest = _NESTING_DEPTH_RANGE
    value = r.at_least("max_nesting_depth", lowest)
    if value > highest:
        raise r.fail("max_nesting_depth", f"must be <= {highest}, not {value}")
    return value


@dataclass(frozen=True)
class Policy:
    """Routing policy and the run's batching knobs."""

    content_policy: str
    on_detector_finding: str
    chunk_records: int
    dedup_buckets: int
    parquet_compression: str
    consent_side_input_max_decisions: int
    max_line_bytes: int
    # Above either (input bytes, records counted before the job) classified chunks are spilled
    # to the staging folder and loaded back for the main chain instead of held in memory.
    reread_inputs_above_bytes: int
    max_nesting_depth: int
    reread_inputs_above_records: int
    max_file_records: int
    max_decompressed_bytes: int
    # The shape of the input records (`run --source`); a run option, not a config key.
    input_source: str = "contract"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str) -> Policy:
        r = _Reader(data, source)
        return cls(
            content_policy=r.choice("content_policy", CONTENT_POLICIES),
            on_detector_finding=r.choice("on_detector_finding", ("quarantine", "redact")),
            chunk_records=r.positive_int("chunk_records"),
            dedup_buckets=r.positive_int("dedup_buckets"),
            parquet_compression=r.choice("parquet_compression", ("zstd", "snappy")),
            consent_side_input_max_decisions=r.at_least("consent_side_input_max_decisions", 0),
            max_line_bytes=r.at_least("max_line_bytes", 1024),
            reread_inputs_above_bytes=r.at_least("reread_inputs_above_bytes", 0),
            max_nesting_depth=_nesting_depth(r),
            reread_inputs_above_records=r.at_least("reread_inputs_above_records", 0),
            max_file_records=r.positive_int("max_file_records"),
            max_decompressed_bytes=r.at_least("max_decompressed_bytes", 1 << 20),
        )


@dataclass(frozen=True)
class Schedule:
    """Where a dated run reads and writes, and how long a run's lock lives without a heartbeat.

    `input`, `out` and `consent` are path templates with `{date}` (YYYY-MM-DD) in them, or null.
    """

    input: str | None
    out: str | None
    consent: str | None
    lock_stale_after_s: int

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str) -> Schedule:
        r = _Reader(data, source)
        return cls(
            input=r.template("input"),
            out=r.template("out"),
            consent=r.template("consent"),
            lock_stale_after_s=r.at_least("lock_stale_after_s", 10),
        )


@dataclass(frozen=True)
class Config:
    """Everything a run is configured by; plain data, so it pickles to every Beam worker."""

    taxonomy: Taxonomy
    detectors: DetectorSettings
    deidentify: DeidentifySettings
    policy: Policy
    schedule: Schedule
    schemas: dict[str, dict[str, Any]]
    expectations: dict[str, dict[str, Any]]
    config_hash: str
    # configs/strings.json: k and the reviewed registry of approved values and templates.
    strings: StringRegistry = field(default_factory=StringRegistry)

    def __getstate__(self) -> dict[str, Any]:
        # Beam pickles (and bz2-compresses) every DoFn holding the config once per bundle and
        # unpickles it twice; the schemas are ~350 KB of the config's ~360 KB, so they travel
        # as one compressed JSON document (~26 KB).
        return {**self.__dict__, "schemas": _packed(self.schemas)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({**state, "schemas": _unpacked(state["schemas"])})

    def contract(self) -> Contract:
        """Compile the contract (validators are closures: build them where they are used);
        with the vendor sources' event types when the run reads a vendor source."""
        return compile_contract(self.schemas, sources=self.policy.input_source != "contract")

    def with_policy(self, **changes: Any) -> Config:
        from dataclasses import replace

        return replace(self, policy=replace(self.policy, **changes))


# The schemas packed once per mapping (`kept_per_schemas`) and unpacked once per packed form (by
# its digest): a worker's stages then share one mapping, and what is compiled from it once
# serves them all.
_UNPACKED: dict[bytes, dict[str, dict[str, Any]]] = {}


@kept_per_schemas
def _packed(schemas: dict[str, dict[str, Any]]) -> bytes:
    text = json.dumps(schemas, separators=(",", ":"))  # key order is field order
    return zlib.compress(text.encode(), 6)


def _unpacked(packed: bytes) -> dict[str, dict[str, Any]]:
    digest = hashlib.sha256(packed).digest()
    if digest not in _UNPACKED:
        if len(_UNPACKED) >= 8:
            _UNPACKED.clear()
        _UNPACKED[digest] = json.loads(zlib.decompress(packed))
    return _UNPACKED[digest]


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _nearest(key: str, valid: Sequence[str], cutoff: float = 0.6) -> str:
    """` (did you mean X?)` for the closest valid key, or nothing when none is close."""
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=cutoff)
    return f"; did you mean {close[0]}?" if close else ""


def _reject_unknown_keys(
    given: Mapping[str, Any], defaults: Mapping[str, Any], source: str, path: tuple[str, ...]
) -> None:
    """Every key of a config section (and of its fixed sub-objects) must be one the defaults
    have: a misspelt key would otherwise be ignored and the run would use the default."""
    where = ".".join(path)
    for key, value in given.items():
        if key not in defaults:
            if len(path) == 1:
                what = f"the {path[0]} section has no key {key!r}"
            else:
                what = f"section {path[0]}: {where} has no key {key!r}"
            raise ConfigError(f"{source}: {what}{_nearest(key, sorted(defaults))}")
        inner = defaults[key]
        if (
            isinstance(value, Mapping)
            and isinstance(inner, Mapping)
            and (path[0], *path[1:], key)[:2] not in _NAMED_MAPS
        ):
            # A sub-object with fixed keys: those of the default, or for maps of names
            # (record classes, categories), those of any entry.
            if (path[0], key) in (("taxonomy", "record_classes"), ("taxonomy", "categories")):
                for name, entry in value.items():
                    if name not in inner:
                        raise ConfigError(
                            f"{source}: section {path[0]}: {where}.{key} has no entry "
                            f"{name!r}{_nearest(name, sorted(inner))}"
                        )
                    if isinstance(entry, Mapping) and isinstance(inner[name], Mapping):
                        _reject_unknown_keys(entry, inner[name], source, (*path, key, name))
            else:
                _reject_unknown_keys(value, inner, source, (*path, key))


def _check_field_names(
    sections: Mapping[str, Any], sources: Mapping[str, str], fields: set[str]
) -> None:
    """Per-field settings must name fields the contract has: a misspelt field is not dropped."""
    for section, key in (("taxonomy", "field_fides"), ("deidentify", "field_rules")):
        named = sections[section].get(key)
        if not isinstance(named, Mapping):
            continue
        for name in named:
            if name not in fields:
                raise ConfigError(
                    f"{sources[section]}: section {section}: {key} names {name!r}, which is no "
                    f"field of the input contract{_nearest(name, sorted(fields))}"
                )


def _check_string_fields(
    section: Mapping[str, Any], source: str, schemas: Mapping[str, Mapping[str, Any]]
) -> None:
    """The string registry names fields as `<event type>.<field>` of the contract."""
    known = {
        f"{schema['x-event-type']}.{name}"
        for schema in schemas.values()
        if schema.get("x-event-type")
        for name in schema.get("properties", {})
    }
    named = section.get("fields")
    for key in named if isinstance(named, Mapping) else ():
        if key not in known:
            raise ConfigError(
                f"{source}: fields names {key!r}, which is no `<event type>.<field>` of the "
                f"input contract{_nearest(key, sorted(known))}"
            )


def _contract_fields(schemas: Mapping[str, Mapping[str, Any]]) -> set[str]:
    from pipelines.sources.declared import compile_sources

    names: set[str] = set()
    for schema in schemas.values():
        names.update(schema.get("properties", {}))
    for source in compile_sources(schemas).values():
        for kind in source.kinds.values():
            names.update(c for f in kind.fields.values() for c, _ in f.columns())
    return names


def load_config(home: str | Path | None = None, override_file: str | Path | None = None) -> Config:
    """Read `configs/*.json` and `schemas/` under `home`, with `override_file` merged on top.

    The override file is a JSON object whose keys are section names (`taxonomy`, `detectors`,
    `deidentify`, `policy`, `schedule`); each value is merged key by key over that section's
    defaults.
    """
    root = Path(home) if home is not None else default_home()
    sections = {
        name: read_json_object(root / "configs" / f"{name}.json", "config file")
        for name in _SECTIONS
    }
    sources = {name: f"{root / 'configs' / name}.json" for name in _SECTIONS}
    if override_file is not None:
        over = read_json_object(Path(override_file), "config file")
        for name, value in over.items():
            if name not in _SECTIONS:
                raise ConfigError(
                    f"{override_file}: {name!r} is not a config section {list(_SECTIONS)}"
                    f"{_nearest(name, _SECTIONS)}"
                )
            if not isinstance(value, dict):
                raise ConfigError(f"{override_file}: {name} must be a JSON object")
            _reject_unknown_keys(value, sections[name], str(override_file), (name,))
            sections[name] = _merge(sections[name], value)
            sources[name] = f"{override_file} (over {sources[name]})"
    try:
        detectors = DetectorSettings.from_mapping(sections["detectors"], sources["detectors"])
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    schemas = read_schemas(root / "schemas")
    # Fail now, with the schema file named, not on a worker.
    compile_contract(schemas, sources=True)
    _check_field_names(sections, sources, _contract_fields(schemas))
    taxonomy = Taxonomy.from_mapping(sections["taxonomy"], sources["taxonomy"])
    _check_string_fields(sections["strings"], sources["strings"], schemas)
    unknown = sorted(
        set(taxonomy.record_class_overrides)
        - {p.removeprefix("events/v1/").removesuffix(".json") for p in schemas}
        - set(compile_contract(schemas, sources=True).event_types)
    )
    if unknown:
        raise ConfigError(
            f"{sources['taxonomy']}: record_class_overrides names unknown event types {unknown}"
        )
    # Checked against GE's expectations where the gate runs (run, validate): GE's import is slow.
    expectations = load_suite_templates(root, check_types=False)
    canonical = json.dumps(
        {
            "config": {k: v for k, v in sections.items() if k not in _UNHASHED_SECTIONS},
            "schemas": schemas,
            # Where a suite was read from is not configuration.
            "expectations": {
                k: {n: v for n, v in t.items() if n != "source"} for k, t in expectations.items()
            },
        },
        sort_keys=True,
    )
    return Config(
        taxonomy=taxonomy,
        detectors=detectors,
        deidentify=DeidentifySettings.from_mapping(sections["deidentify"], sources["deidentify"]),
        policy=Policy.from_mapping(sections["policy"], sources["policy"]),
        schedule=Schedule.from_mapping(sections["schedule"], sources["schedule"]),
        schemas=schemas,
        expectations=expectations,
        config_hash="sha256:" + hashlib.sha256(canonical.encode()).hexdigest(),
        strings=StringRegistry.from_mapping(sections["strings"], sources["strings"]),
    )


def check_beam_options(beam_args: Sequence[str]) -> None:
    """Refuse options after `--` that no Beam options class knows (`--bogus_option=1`).

    Beam itself only warns and drops them, so a misspelt runner option would be ignored. The
    options are parsed the way Beam parses them, against every PipelineOptions subclass
    registered (standard, Google Cloud, worker, portable, Flink, Spark, S3, ...).
    """
    import argparse

    from apache_beam.options import pipeline_options as beam_options

    parser = beam_options._BeamArgumentParser(allow_abbrev=False, exit_on_error=False)
    seen: dict[str, type] = {}
    pending = list(beam_options.PipelineOptions.__subclasses__())
    while pending:
        cls = pending.pop(0)
        if str(cls) not in seen:
            seen[str(cls)] = cls
            pending.extend(cls.__subclasses__())
    for cls in seen.values():
        try:
            cls._add_argparse_args(parser)
        except argparse.ArgumentError:
            continue  # a class re-declaring another's option: that option is known already
    try:
        _, unknown = parser.parse_known_args(list(beam_args))
    except argparse.ArgumentError as exc:
        raise ConfigError(f"Beam option after `--`: {exc}") from None
    if unknown:
        name = unknown[0].split("=", 1)[0]
        known = [o for action in parser._actions for o in action.option_strings]
        hint = _nearest(name, known, 0.8) if name.startswith("--") else ""
        raise ConfigError(
            f"Beam option after `--`: {unknown[0]!r} is not an option of Beam or of any of its "
            f"runners{hint}"
        )
