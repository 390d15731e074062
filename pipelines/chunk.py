"""The unit of work that moves through the pipeline: a chunk of one input file, as Arrow tables.

Each stage is a pure function from chunk to chunk (or to output tables), so the Beam layer in
`pipelines/transforms/` only wires them. Columns whose names start with `_` are internal
bookkeeping and never reach an output file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.config import Config
from pipelines.contract import Contract, EventType
from pipelines.gate.rows import TWIN_PREFIX, GateTwin
from pipelines.rules import classify, detectors
from pipelines.rules.arrays import list_offsets
from pipelines.rules.classify import HASH, LOC, REJECT_SCHEMA
from pipelines.rules.consent import ConsentLedger, event_consent
from pipelines.rules.consented import (
    ID_DETECTORS,
    ConsentedScanner,
    column_detectors,
    scanner_for,
)
from pipelines.rules.deidentify import Pseudonymizer, country_of, redact_spans
from pipelines.rules.detectors import echo
from pipelines.rules.route import (
    CONFLICT,
    DESTINATIONS,
    DUPLICATE,
    DedupVerdicts,
    content_decision,
    service_decision,
)
from pipelines.rules.strings import (
    STANDS_DOWN_WHEN_COMMON,
    WITHHELD_COLUMN,
    QualifiedStrings,
    StringRegistry,
    account_keys,
    cap_accounts,
    closed_vocabularies,
    common_rows,
    field_key,
    publish_column,
)
from pipelines.sources import reject_source, source_of_event_type

__all__ = [
    "AUDIT_SCHEMA",
    "FINDING_TYPE",
    "QUARANTINE_SCHEMA",
    "RESTRICTED_SCHEMA",
    "ChunkOutputs",
    "EventChunk",
    "scannable_fields",
    "training_schema",
]

FINDINGS = "_findings"
CONSENTED = "_consented"  # every subject consented (content only)
CONSENT_REASON = "_consent_reason"  # "consented", or why the first failing subject did not
CONSENT = "_consent"  # per subject: reason and the ledger decisions it rests on
ECHOES_OTHER_SUBJECT = "echoes_other_subject"  # consented, but repeats a non-consenting subject
HOST_ONLY = "_host_only"  # would a host-only rule have admitted it?
DEST = "_destination"
REASON = "_reason"
TWIN_DETAIL = "_twin_detail"  # which column a gate twin check failed on
LINE_BITS = 32

FINDING_TYPE = pa.struct(
    [
        pa.field("detector", pa.string()),
        pa.field("field", pa.string()),
        pa.field("start", pa.int32()),
        pa.field("end", pa.int32()),
    ]
)
CONSENT_TYPE = pa.list_(
    pa.struct(
        [
            pa.field("subject", pa.string()),
            pa.field("reason", pa.string()),
            pa.field("basis", pa.list_(pa.string())),
        ]
    )
)
AUDIT_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string()),
        pa.field("event_type", pa.string()),
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("source_line", pa.int64(), nullable=False),
        pa.field("record_class", pa.string(), nullable=False),
        pa.field("destination", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("rules", pa.list_(pa.string()), nullable=False),
        pa.field("detectors", pa.list_(FINDING_TYPE), nullable=False),
        pa.field("consent", pa.string()),
        pa.field("consent_subjects", CONSENT_TYPE),
        pa.field("host_only", pa.bool_()),
        # The keyed pseudonym training publishes as the record's `event_id` (explain finds a
        # record by either).
        pa.field("event_pseudonym", pa.string()),
        # Which input shape the record came in: `contract`, a vendor source, or `unknown`.
        pa.field("source", pa.string()),
    ]
)
QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string()),
        pa.field("event_type", pa.string()),
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("source_line", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string()),
        pa.field("raw", pa.binary()),
    ]
)
RESTRICTED_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("event_ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("meeting_id", pa.string()),
        pa.field("subjects", pa.list_(pa.string()), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("consent_subjects", CONSENT_TYPE),
        pa.field("host_only", pa.bool_()),
        pa.field("withheld_fields", pa.list_(pa.string()), nullable=False),
    ]
)
_ENVELOPE_IDS = ("account_id", "meeting_id", "participant_id")
# Envelope strings kept raw in every output; `event_type` is one of the contract's names.
ENVELOPE_SCANNED = ("event_id",)


def loc_of(file_index: int, record_number: int) -> int:
    return (file_index << LINE_BITS) | record_number


def scannable_fields(event_type: EventType) -> tuple[str, ...]:
    """String fields of a service record that detectors scan: free text and every service string.

    Service strings (component, codec, versions) are scanned too: a leak does not pick its field.
    """
    names = []
    for spec in event_type.fields:
        if spec.arrow_type != pa.string():
            continue
        if spec.category == "free_text" or spec.category == "service":
            names.append(spec.name)
    return tuple(names)


def _payload_rule(config: Config, spec: Any) -> str:
    """What de-identification does with one payload field of a service record."""
    if spec.category in config.deidentify.drop_categories:
        return "drop"
    if spec.category == "identifier":
        return config.deidentify.field_rules.get(spec.name, config.deidentify.identifier_rule)
    return "keep"


def string_fields(config: Config, contract: Contract, event_type: EventType) -> tuple[str, ...]:
    """Payload strings of a service record that must earn their place in training (common
    across accounts or approved, as a value or a template): every kept free-text and service
    string field except the contract's closed vocabularies (`enum`)."""
    overrides = config.taxonomy.record_class_overrides
    if classify.record_class_of(event_type, overrides) != "service_generated":
        return ()
    closed = closed_vocabularies(config.schemas)
    return tuple(
        spec.name
        for spec in event_type.fields
        if spec.arrow_type == pa.string()
        and spec.category in ("service", "free_text")
        and _payload_rule(config, spec) == "keep"
        and field_key(event_type.name, spec.name) not in closed
    )


def training_schema(config: Config, contract: Contract, event_type: EventType) -> pa.Schema:
    """Columns of a de-identified training row of `event_type`, in output order; the last,
    `withheld_fields`, names the fields whose string did not earn its place (published null)."""
    fields = [pa.field("record_class", pa.string(), nullable=False)]
    for spec in contract.envelope:
        fields.append(pa.field(spec.name, spec.arrow_type, nullable=spec.nullable))
    for spec in event_type.fields:
        rule = _payload_rule(config, spec)
        if rule == "country":
            fields.append(pa.field(f"{spec.name}_country", pa.string()))
        elif rule in ("keep", "pseudonymise"):
            nullable = spec.nullable or spec.name in string_fields(config, contract, event_type)
            fields.append(pa.field(spec.name, spec.arrow_type, nullable=nullable))
    fields.append(pa.field(WITHHELD_COLUMN, pa.list_(pa.string()), nullable=False))
    return pa.schema(fields)


def pseudonym_columns(config: Config, contract: Contract, event_type: EventType) -> tuple[str, ...]:
    """Training columns that hold pseudonyms."""
    names = ["event_id", *_ENVELOPE_IDS]
    names += [s.name for s in event_type.fields if _payload_rule(config, s) == "pseudonymise"]
    return tuple(names)


@dataclass
class ChunkOutputs:
    """What one chunk contributes to each output table, plus its counts."""

    chunk_id: str
    training: dict[str, pa.Table]
    consented: dict[str, pa.Table]
    restricted: pa.Table
    quarantine: pa.Table
    audit: pa.Table
    counts: dict[str, Any]


@dataclass
class EventChunk:
    """Records of one slice of one input file: typed tables by event type, and rejects."""

    file_index: int
    chunk_index: int
    source: str
    tables: dict[str, pa.Table] = field(default_factory=dict)
    rejects: pa.Table = field(default_factory=REJECT_SCHEMA.empty_table)
    input_source: str = "contract"  # `run --source`

    @property
    def chunk_id(self) -> str:
        return f"{self.file_index:05d}-{self.chunk_index:05d}"

    # -- ClassifyEvents -------------------------------------------------------------------
    @classmethod
    def from_lines(
        cls,
        contract: Contract,
        file_index: int,
        chunk_index: int,
        source: str,
        lines: list[tuple[int, bytes]],
        max_depth: int = classify.DEFAULT_MAX_NESTING_DEPTH,
    ) -> EventChunk:
        """Decode, check and group JSON Lines `(line_number, bytes)`; a line nested deeper than
        `max_depth` is quarantined (`too_deep`) before it is parsed."""

        def items() -> Iterator[tuple[int, Any, str | None, bytes | None]]:
            first = loc_of(file_index, 0)
            decoded = classify.decode_lines([line for _, line in lines], max_depth)
            for (number, line), (record, reason) in zip(lines, decoded, strict=True):
                yield first | number, record, reason, line

        found = classify.classify_records(contract, items())
        return cls(file_index, chunk_index, source, found.tables, found.rejects)

    @classmethod
    def from_rows(
        cls,
        contract: Contract,
        file_index: int,
        chunk_index: int,
        source: str,
        first_row: int,
        rows: list[dict[str, Any]],
        max_depth: int = classify.DEFAULT_MAX_NESTING_DEPTH,
    ) -> EventChunk:
        """Check and group rows of a columnar file (payload as a JSON string column)."""

        def items() -> Iterator[tuple[int, Any, str | None, bytes | None]]:
            for offset, row in enumerate(rows):
                loc = loc_of(file_index, first_row + offset)
                payload = row.get("payload")
                if isinstance(payload, str):
                    decoded, reason = classify.decode_line(payload.encode("utf-8"), max_depth)
                    if reason is not None:
                        yield loc, None, f"payload_{reason}", None
                        continue
                    row = {**row, "payload": decoded}
                row = {k: v for k, v in row.items() if v is not None or k in _NULLABLE_TOP}
                yield loc, row, None, None

        found = classify.classify_records(contract, items())
        # The quarantine keeps each reject's row as JSON: only the few rejects are serialised.
        rejects = found.rejects
        if rejects.num_rows:
            offsets = pc.subtract(_line_numbers(rejects[LOC]), first_row).to_pylist()
            raws = pa.array([_row_json(rows[i]) for i in offsets], pa.binary())
            rejects = rejects.set_column(
                rejects.schema.get_field_index("raw"), rejects.schema.field("raw"), raws
            )
        return cls(file_index, chunk_index, source, found.tables, rejects)

    def record_count(self) -> int:
        return self.rejects.num_rows + sum(t.num_rows for t in self.tables.values())

    # -- inputs to the run-wide context -----------------------------------------------------
    def dedup_keys(self) -> pa.Table:
        """(event_id, hash, loc) of every record that has an event id, for de-duplication."""
        parts = [t.select(["event_id", HASH, LOC]) for t in self.tables.values()]
        rejects = self.rejects.filter(pc.is_valid(self.rejects["event_id"]))
        parts.append(rejects.select(["event_id", HASH, LOC]))
        return pa.concat_tables(parts)

    def identifier_values(self, contract: Contract) -> set[str]:
        """Distinct identifier strings of this chunk (names, emails, ids) for the detectors."""
        values: set[str] = set()
        for name, table in self.tables.items():
            specs = [*contract.envelope, *contract.event_types[name].fields]
            for spec in specs:
                if spec.category != "identifier":
                    continue
                column = table[spec.name]
                if pa.types.is_list(column.type):
                    column = pc.list_flatten(column)
                if column.type == pa.string():
                    values.update(v for v in pc.unique(column).to_pylist() if v)
        # `recipients: "everyone"` is a keyword of the contract, not a person.
        values.discard(EVERYONE)
        return values

    def string_keys(self, config: Config, contract: Contract) -> pa.Table:
        """(string hash, account hash) pairs of this chunk's service strings, values and
        templates alike, at most `k` accounts per hash (see rules/strings.py)."""
        parts = []
        for name, table in sorted(self.tables.items()):
            event_type = contract.event_types[name]
            for field_name in string_fields(config, contract, event_type):
                key = field_key(name, field_name)
                parts.append(account_keys(key, table[field_name], table["account_id"]))
        return cap_accounts(parts, config.strings.k)

    def content_texts(self, contract: Contract) -> Iterator[tuple[str, str]]:
        """(meeting_id, text) of every worded content field, for the content-echo index."""
        for name, table in self.tables.items():
            event_type = contract.event_types[name]
            texts = [
                s for s in event_type.fields if s.category == "content" and s.name not in _NOT_WORDS
            ]
            if not texts:
                continue
            meetings = table["meeting_id"].to_pylist()
            for spec in texts:
                column = table[spec.name]
                if pa.types.is_list(column.type):
                    values: list[Any] = [_words_of(v) for v in column.to_pylist()]
                else:
                    values = column.to_pylist()
                for meeting, text in zip(meetings, values, strict=True):
                    if meeting and text:
                        yield meeting, text

    def echo_entries(self, config: Config, contract: Contract) -> pa.Table:
        """The other-subject echo index's entries of this chunk's content records: run hashes
        with their record, meeting, authors and time (see rules/detectors/echo.py)."""
        settings = echo.EchoSettings.of(config.detectors)
        parts = []
        for _name, event_type, table in self._content_tables(config, contract):
            parts.append(echo.entries(_echo_records(event_type, table), settings))
        return pa.concat_tables(parts) if parts else echo.ENTRY_SCHEMA.empty_table()

    def _content_tables(
        self, config: Config, contract: Contract
    ) -> Iterator[tuple[str, EventType, pa.Table]]:
        overrides = config.taxonomy.record_class_overrides
        for name, table in sorted(self.tables.items()):
            event_type = contract.event_types[name]
            if classify.record_class_of(event_type, overrides) == "customer_content":
                yield name, event_type, table

    def host_pairs(self) -> Iterator[tuple[str | None, str | None]]:
        """(meeting_id, host participant id) from meeting starts and host joins."""
        started = self.tables.get("usage.meeting_started")
        if started is not None:
            yield from zip(
                started["meeting_id"].to_pylist(), started["host_id"].to_pylist(), strict=True
            )
        joined = self.tables.get("usage.participant_joined")
        if joined is not None:
            hosts = joined.filter(pc.equal(joined["role"], "host"))
            yield from zip(
                hosts["meeting_id"].to_pylist(), hosts["participant_id"].to_pylist(), strict=True
            )

    # -- DetectLeaks -----------------------------------------------------------------------
    def with_findings(
        self,
        config: Config,
        contract: Contract,
        known: detectors.KnownIdentifiers | None,
        echo: detectors.EchoIndex | None,
        strings: QualifiedStrings | None = None,
    ) -> EventChunk:
        """Scan the text fields of service-generated records and every record's event id; add a
        findings column. On a service string the run's `strings` show to be common across
        accounts, the known-identifier and natural-language detectors stand down."""
        overrides = config.taxonomy.record_class_overrides
        # Every scanned column of every event type, scanned as one (each prefilter compiled
        # once per chunk, not once per column).
        scanned: dict[str, tuple[str, ...]] = {}
        for name in self.tables:
            event_type = contract.event_types[name]
            # The event id is kept as it is wherever a record goes, so every record's is scanned.
            scanned[name] = ENVELOPE_SCANNED
            if classify.record_class_of(event_type, overrides) == "service_generated":
                scanned[name] += scannable_fields(event_type)
        columns = [
            (self.tables[name][field_name], self.tables[name]["meeting_id"])
            for name, fields in scanned.items()
            for field_name in fields
        ]
        results = iter(detectors.scan_columns(columns, config.detectors, known=known, echo=echo))
        tables = {}
        for name, table in self.tables.items():
            event_type = contract.event_types[name]
            rows: list[int] = []  # the row of each finding in `entries`, fields in scan order
            entries: list[dict[str, Any]] = []
            record_class = classify.record_class_of(event_type, overrides)
            common_fields = set(string_fields(config, contract, event_type))
            for field_name in scanned[name]:
                found = next(results)
                if found and strings is not None and field_name in common_fields:
                    key = field_key(name, field_name)
                    common = common_rows(key, table[field_name], strings)
                    for at in [row for row in found if common[row]]:
                        found[at] = [
                            f for f in found[at] if f.detector not in STANDS_DOWN_WHEN_COMMON
                        ]
                for row, findings in found.items():
                    _add_findings(rows, entries, row, field_name, findings)
            if (
                record_class == "customer_content"
                and config.policy.content_policy == "per_participant"
            ):
                # What a consented record's id must pass at the gate (rules/consented.py).
                scanner = scanner_for(known)
                for row, findings in enumerate(
                    scanner.scan_column(table["event_id"], ID_DETECTORS)
                ):
                    _add_findings(rows, entries, row, "event_id", findings)
            tables[name] = table.append_column(
                pa.field(FINDINGS, pa.list_(FINDING_TYPE)),
                _findings_column(rows, entries, table.num_rows),
            )
        return replace(self, tables=tables)

    # -- ApplyConsent ----------------------------------------------------------------------
    def with_consent(
        self,
        config: Config,
        contract: Contract,
        ledger: ConsentLedger,
        hosts: Mapping[str, frozenset[str]],
    ) -> EventChunk:
        """Decide per-participant consent for every content record, and the host-only what-if."""
        overrides = config.taxonomy.record_class_overrides
        tables = {}
        for name, table in self.tables.items():
            event_type = contract.event_types[name]
            if classify.record_class_of(event_type, overrides) != "customer_content":
                tables[name] = table
                continue
            subjects = content_subjects(event_type, table)
            accounts = table["account_id"].to_pylist()
            meetings = table["meeting_id"].to_pylist()
            times = table["event_ts"].cast(pa.int64()).to_pylist()
            oks, reasons, details, host_only = [], [], [], []
            for row_subjects, account, meeting, ts in zip(
                subjects, accounts, meetings, times, strict=True
            ):
                ok, verdicts = event_consent(ledger, row_subjects, account, meeting, ts)
                oks.append(ok)
                failing = [v.reason for v in verdicts if not v.consented]
                if not failing:  # no subjects; an unreadable ledger still says so first
                    failing = ["ledger_unreadable" if ledger.unreadable else "no_subjects"]
                reasons.append("consented" if ok else failing[0])
                details.append(
                    [
                        {
                            "subject": v.subject_id,
                            "reason": v.reason,
                            "basis": [b.describe() for b in v.basis],
                        }
                        for v in verdicts
                    ]
                )
                host_only.append(
                    ledger.host_only(account, meeting, ts, hosts.get(meeting or "", frozenset()))
                )
            tables[name] = (
                table.append_column(CONSENTED, pa.array(oks, pa.bool_()))
                .append_column(CONSENT_REASON, pa.array(reasons, pa.string()))
                .append_column(CONSENT, pa.array(details, CONSENT_TYPE))
                .append_column(HOST_ONLY, pa.array(host_only, pa.bool_()))
            )
        return replace(self, tables=tables)

    def with_echoes(
        self, config: Config, contract: Contract, ledger: ConsentLedger, sources: echo.EchoSources
    ) -> EventChunk:
        """Withdraw consent from consented records that repeat a distinctive run of words of a
        subject who did not consent for the record holding it (`echoes_other_subject`).

        Run after `with_consent`. A record's own subjects may quote themselves; a run only
        matters when another subject of the same meeting wrote it in a record they had not
        consented for (by the same rule, at that record's time), or in a record without
        subjects.
        """
        if config.policy.content_policy != "per_participant" or not len(sources):
            return self
        settings = echo.EchoSettings.of(config.detectors)
        verdicts: dict[tuple[str, str, str | None, int], bool] = {}

        def consented(author: str, account: str, meeting: str | None, ts: int) -> bool:
            key = (author, account, meeting, ts)
            if key not in verdicts:
                verdicts[key] = (
                    bool(author) and event_consent(ledger, [author], account, meeting, ts)[0]
                )
            return verdicts[key]

        tables = dict(self.tables)
        for name, event_type, table in self._content_tables(config, contract):
            if CONSENTED not in table.column_names:
                continue
            rows = np.flatnonzero(np.asarray(pc.fill_null(table[CONSENTED], False).to_pylist()))
            if not len(rows):
                continue
            oks = table[CONSENTED].to_pylist()
            reasons = table[CONSENT_REASON].to_pylist()
            records = _echo_records(event_type, table.take(pa.array(rows, pa.int64())))
            meetings = table["meeting_id"].take(pa.array(rows, pa.int64())).to_pylist()
            for row, meeting, record in zip(rows.tolist(), meetings, records, strict=True):
                loc, where, _, _, subjects, texts = record
                _, keyed = echo.record_runs(texts, where, settings, all_sizes=True)
                own = set(subjects)
                for author, account, ts in sources.sources(keyed, loc):
                    if author not in own and not consented(author, account, meeting, ts):
                        oks[row], reasons[row] = False, ECHOES_OTHER_SUBJECT
                        break
            tables[name] = table.set_column(
                table.schema.get_field_index(CONSENTED), CONSENTED, pa.array(oks, pa.bool_())
            ).set_column(
                table.schema.get_field_index(CONSENT_REASON),
                CONSENT_REASON,
                pa.array(reasons, pa.string()),
            )
        return replace(self, tables=tables)

    # -- RouteRecords ----------------------------------------------------------------------
    def routed(self, config: Config, contract: Contract, verdicts: DedupVerdicts) -> EventChunk:
        """Add destination and reason columns to every table (default deny)."""
        overrides = config.taxonomy.record_class_overrides
        tables = {}
        for name, table in self.tables.items():
            record_class = classify.record_class_of(contract.event_types[name], overrides)
            if record_class == "service_generated":
                dest, reason = service_decision(table, verdicts, config.policy.on_detector_finding)
            elif record_class == "customer_content":
                dest, reason = content_decision(table, verdicts, config.policy.content_policy)
            else:
                dest = pa.array(["quarantine"] * table.num_rows, pa.string())
                reason = pa.array(["unknown_record_class"] * table.num_rows, pa.string())
            tables[name] = table.append_column(DEST, dest).append_column(REASON, reason)
        return replace(self, tables=tables)

    # -- Deidentify and materialise ---------------------------------------------------------
    def outputs(
        self,
        config: Config,
        contract: Contract,
        pseudonyms: Pseudonymizer,
        verdicts: DedupVerdicts,
        twin: GateTwin | None = None,
        known: detectors.KnownIdentifiers | None = None,
        strings: QualifiedStrings | None = None,
    ) -> ChunkOutputs:
        """Build this chunk's rows for every output table, de-identifying what may train.

        With `twin`, the gate's row checks judge the de-identified rows before anything is
        staged; a row one of them fails goes to quarantine as `gate_twin:<check>` instead.
        """
        overrides = config.taxonomy.record_class_overrides
        training: dict[str, pa.Table] = {}
        consented: dict[str, pa.Table] = {}
        restricted: list[pa.Table] = []
        quarantine: list[pa.Table] = []
        audit: list[pa.Table] = []
        redactions: dict[str, int] = {}
        decisions: dict[str, dict[str, int]] = {}
        for name, table in sorted(self.tables.items()):
            event_type = contract.event_types[name]
            record_class = classify.record_class_of(event_type, overrides)
            # Each event's pseudonym once: its training row and its audit row both carry it.
            event_pseudonyms = pseudonyms.array(table["event_id"], remember=False)
            trains = pc.equal(table[DEST], "training")
            to_training = table.filter(trains)
            if to_training.num_rows:
                rows = _deidentify(
                    config,
                    contract,
                    event_type,
                    record_class,
                    to_training,
                    event_pseudonyms.filter(trains),
                    pseudonyms,
                    strings or QualifiedStrings(),
                    decisions,
                )
                if twin is not None:
                    scanned = _scanned_as_the_gate_scans(config, event_type)
                    table, rows = _self_checked(
                        twin, "training", name, table, to_training, rows, scanned
                    )
                if rows.num_rows:
                    training[name] = rows
            to_consented = table.filter(pc.equal(table[DEST], "consented_content"))
            if to_consented.num_rows:
                rows, found = _deidentify_content(
                    contract, event_type, to_consented, pseudonyms, scanner_for(known)
                )
                for detector, count in found.items():
                    redactions[detector] = redactions.get(detector, 0) + count
                if twin is not None:
                    table, rows = _self_checked(
                        twin, "consented_content", name, table, to_consented, rows, ()
                    )
                if rows.num_rows:
                    consented[name] = rows
            dest = table[DEST]
            to_restricted = table.filter(pc.equal(dest, "restricted"))
            if to_restricted.num_rows:
                restricted.append(_restricted_rows(contract, event_type, to_restricted, pseudonyms))
            to_quarantine = table.filter(pc.equal(dest, "quarantine"))
            if to_quarantine.num_rows:
                quarantine.append(self._quarantine_rows(to_quarantine))
            audit.append(self._audit_rows(table, record_class, name, event_pseudonyms, pseudonyms))
        rejects = self._rejects_routed(verdicts)
        if rejects.num_rows:
            kept = rejects.filter(pc.equal(rejects[DEST], "quarantine"))
            quarantine.append(
                pa.table(
                    {
                        "event_id": kept["event_id"],
                        "event_type": kept["event_type"],
                        "source_file": pa.array([self.source] * kept.num_rows, pa.string()),
                        "source_line": _line_numbers(kept[LOC]),
                        "reason": kept[REASON],
                        "detail": kept["detail"],
                        "raw": kept["raw"],
                    },
                    schema=QUARANTINE_SCHEMA,
                )
            )
            audit.append(self._reject_audit_rows(rejects, pseudonyms))
        outputs = ChunkOutputs(
            chunk_id=self.chunk_id,
            training=training,
            consented=consented,
            restricted=_concat(restricted, RESTRICTED_SCHEMA),
            quarantine=_concat(quarantine, QUARANTINE_SCHEMA),
            audit=_concat(audit, AUDIT_SCHEMA),
            counts={},
        )
        outputs.counts = count_outputs(outputs.audit)
        outputs.counts["consented_redactions"] = redactions
        outputs.counts["string_decisions"] = decisions
        return outputs

    def _rejects_routed(self, verdicts: DedupVerdicts) -> pa.Table:
        """Rejects keep their own reason, except that identical repeats count as duplicates."""
        rejects = self.rejects
        reasons = rejects["reason"].to_pylist()
        dests = ["quarantine"] * rejects.num_rows
        for i, (event_id, loc) in enumerate(
            zip(rejects["event_id"].to_pylist(), rejects[LOC].to_pylist(), strict=True)
        ):
            verdict = verdicts.verdict(event_id, loc)
            if verdict == DUPLICATE:
                dests[i], reasons[i] = "duplicate", "duplicate"
            elif verdict == CONFLICT:
                reasons[i] = "conflicting_duplicate"
        return rejects.append_column(DEST, pa.array(dests, pa.string())).set_column(
            rejects.schema.get_field_index("reason"), REASON, pa.array(reasons, pa.string())
        )

    def _quarantine_rows(self, table: pa.Table) -> pa.Table:
        internal = [c for c in table.column_names if c.startswith("_")]
        records = table.drop_columns(internal).to_pylist()
        raws = [orjson.dumps(r, default=str) for r in records]
        details = [_finding_detail(f) for f in table[FINDINGS].to_pylist()]
        if TWIN_DETAIL in table.column_names:
            twin = table[TWIN_DETAIL].to_pylist()
            details = [t if t is not None else d for t, d in zip(twin, details, strict=True)]
        return pa.table(
            {
                "event_id": table["event_id"],
                "event_type": table["event_type"],
                "source_file": pa.array([self.source] * table.num_rows, pa.string()),
                "source_line": _line_numbers(table[LOC]),
                "reason": table[REASON],
                "detail": pa.array(details, pa.string()),
                "raw": pa.array(raws, pa.binary()),
            },
            schema=QUARANTINE_SCHEMA,
        )

    def _audit_rows(
        self,
        table: pa.Table,
        record_class: str,
        event_type: str,
        event_pseudonyms: pa.Array,
        pseudonyms: Pseudonymizer,
    ) -> pa.Table:
        n = table.num_rows
        if CONSENTED in table.column_names:
            consent = pc.if_else(table[CONSENTED], "consented", "not_consented")
            subjects = _pseudonymised_consent(table[CONSENT], pseudonyms)
            host_only = table[HOST_ONLY]
        else:
            consent = pa.nulls(n, pa.string())
            subjects = pa.nulls(n, CONSENT_TYPE)
            host_only = pa.nulls(n, pa.bool_())
        rules = [f"schema:{event_type}", f"class:{record_class}"]
        return pa.table(
            {
                "event_id": table["event_id"],
                "event_type": table["event_type"],
                "source_file": pa.array([self.source] * n, pa.string()),
                "source_line": _line_numbers(table[LOC]),
                "record_class": pa.array([record_class] * n, pa.string()),
                "destination": table[DEST],
                "reason": table[REASON],
                "rules": pa.array([rules] * n, pa.list_(pa.string())),
                "detectors": table[FINDINGS],
                "consent": consent,
                "consent_subjects": subjects,
                "host_only": host_only,
                "event_pseudonym": event_pseudonyms,
                "source": pa.array([source_of_event_type(event_type)] * n, pa.string()),
            },
            schema=AUDIT_SCHEMA,
        )

    def _reject_audit_rows(self, rejects: pa.Table, pseudonyms: Pseudonymizer) -> pa.Table:
        n = rejects.num_rows
        return pa.table(
            {
                "event_id": rejects["event_id"],
                "event_type": rejects["event_type"],
                "source_file": pa.array([self.source] * n, pa.string()),
                "source_line": _line_numbers(rejects[LOC]),
                "record_class": pa.array(["unknown"] * n, pa.string()),
                "destination": rejects[DEST],
                "reason": rejects[REASON],
                "rules": pa.array([["schema:rejected"]] * n, pa.list_(pa.string())),
                "detectors": pa.array([[]] * n, pa.list_(FINDING_TYPE)),
                "consent": pa.nulls(n, pa.string()),
                "consent_subjects": pa.nulls(n, CONSENT_TYPE),
                "host_only": pa.nulls(n, pa.bool_()),
                "event_pseudonym": pseudonyms.array(rejects["event_id"], remember=False),
                "source": pa.array(
                    [
                        reject_source(t, self.input_source)
                        for t in rejects["event_type"].to_pylist()
                    ],
                    pa.string(),
                ),
            },
            schema=AUDIT_SCHEMA,
        )


EVERYONE = "everyone"
_NULLABLE_TOP = frozenset({"meeting_id", "participant_id"})
# Content fields that hold media or links rather than words; echo shingles skip them.
_NOT_WORDS = frozenset({"data_b64", "download_url", "uri"})


def _scanned_as_the_gate_scans(config: Config, event_type: EventType) -> tuple[str, ...]:
    """Training columns the first line scanned with exactly the gate's detectors, quarantining
    on any finding: the twin's detector check has nothing to add there."""
    if config.detectors != detectors.DetectorSettings() or config.policy.on_detector_finding != (
        "quarantine"
    ):
        return ()
    return (*ENVELOPE_SCANNED, *scannable_fields(event_type))


def _self_checked(
    twin: GateTwin,
    label: str,
    event_type: str,
    table: pa.Table,
    sent: pa.Table,
    rows: pa.Table,
    scanned: tuple[str, ...],
) -> tuple[pa.Table, pa.Table]:
    """The gate's row checks on `rows`, the de-identified form of `sent` (the records of
    `table` routed to `label`, by event id): failing rows leave `rows` and are re-routed to
    quarantine in `table`, with the check as reason and its column as detail."""
    accounts = sent["account_id"].take(_by_event_id(sent)).to_pylist()
    failed = twin.failures(
        rows, label=label, event_type=event_type, accounts=accounts, scanned=scanned
    )
    if not failed:
        return table, rows
    # `rows` are `sent` in event id order, with the ids pseudonymised.
    ids = sent["event_id"].take(_by_event_id(sent)).to_pylist()
    by_id = {ids[row]: found for row, found in failed.items()}
    keep = np.ones(rows.num_rows, bool)
    keep[list(failed)] = False
    dests, reasons = table[DEST].to_pylist(), table[REASON].to_pylist()
    details: list[str | None] = [None] * table.num_rows
    for i, (event_id, dest) in enumerate(zip(table["event_id"].to_pylist(), dests, strict=True)):
        if dest == label and event_id in by_id:
            check, detail = by_id[event_id]
            dests[i], reasons[i], details[i] = "quarantine", f"{TWIN_PREFIX}{check}", detail
    table = table.set_column(
        table.schema.get_field_index(DEST), DEST, pa.array(dests, pa.string())
    ).set_column(table.schema.get_field_index(REASON), REASON, pa.array(reasons, pa.string()))
    if TWIN_DETAIL in table.column_names:
        earlier = table[TWIN_DETAIL].to_pylist()
        details = [d if d is not None else e for d, e in zip(details, earlier, strict=True)]
        table = table.drop_columns([TWIN_DETAIL])
    table = table.append_column(TWIN_DETAIL, pa.array(details, pa.string()))
    return table, rows.filter(pa.array(keep))


def _row_json(row: dict[str, Any]) -> bytes | None:
    """A Parquet row as JSON for the quarantine; None when no JSON can hold it (too deep)."""
    try:
        return orjson.dumps(row, default=str)
    except orjson.JSONEncodeError:
        return None


def _words_of(value: Any) -> str:
    """Flatten a list content field (whiteboard elements, next steps) into one text."""
    if not value:
        return ""
    parts = [v.get("text") if isinstance(v, dict) else v for v in value]
    return " \n ".join(p for p in parts if isinstance(p, str))


def _line_numbers(locs: pa.ChunkedArray | pa.Array) -> pa.Array:
    return pc.bit_wise_and(locs, (1 << LINE_BITS) - 1)


def _finding_detail(findings: list[dict] | None) -> str | None:
    if not findings:
        return None
    return ", ".join(f"{f['detector']}@{f['field']}[{f['start']}:{f['end']}]" for f in findings)


def _concat(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    if not tables:
        return schema.empty_table()
    return pa.concat_tables([t.cast(schema) for t in tables])


def _deidentify(
    config: Config,
    contract: Contract,
    event_type: EventType,
    record_class: str,
    table: pa.Table,
    event_pseudonyms: pa.Array,
    pseudonyms: Pseudonymizer,
    strings: QualifiedStrings,
    decisions: dict[str, dict[str, int]],
) -> pa.Table:
    """Training rows of `table`: pseudonyms (`event_pseudonyms` those of its event ids, row
    for row), generalisations, redactions, and each service string raw, as its template or
    withheld (counted into `decisions` by field)."""
    schema = training_schema(config, contract, event_type)
    columns: dict[str, Any] = {
        "record_class": pa.array([record_class] * table.num_rows, pa.string())
    }
    for spec in contract.envelope:
        column = table[spec.name]
        if spec.name == "event_id":
            # The event id too: an id is the sender's free choice (a participant id, an email).
            columns[spec.name] = event_pseudonyms
        elif spec.name in _ENVELOPE_IDS:
            columns[spec.name] = pseudonyms.array(column)
        else:
            columns[spec.name] = column
    for spec in event_type.fields:
        rule = _payload_rule(config, spec)
        if rule == "pseudonymise":
            columns[spec.name] = pseudonyms.array(table[spec.name])
        elif rule == "country":
            columns[f"{spec.name}_country"] = country_of(table[spec.name])
        elif rule == "keep":
            columns[spec.name] = table[spec.name]
    columns.update(_redacted_fields(table))
    columns.update(
        _earned_strings(config, contract, event_type, columns, strings, config.strings, decisions)
    )
    return pa.table(columns, schema=schema).take(_by_event_id(table))


def _earned_strings(
    config: Config,
    contract: Contract,
    event_type: EventType,
    columns: Mapping[str, Any],
    strings: QualifiedStrings,
    registry: StringRegistry,
    decisions: dict[str, dict[str, int]],
) -> dict[str, pa.Array]:
    """The string fields as they may be published, and the `withheld_fields` column."""
    names = string_fields(config, contract, event_type)
    n = len(columns["record_class"])
    out: dict[str, pa.Array] = {}
    withheld = np.zeros((n, len(names)), bool)
    for i, name in enumerate(names):
        key = field_key(event_type.name, name)
        out[name], withheld[:, i], counts = publish_column(key, columns[name], strings, registry)
        decisions[key] = add_counts(decisions.get(key, {}), counts)
    # Row-major order of the withheld cells gives each row's names in field order.
    _, fields = np.nonzero(withheld)
    offsets = np.concatenate([[0], np.cumsum(withheld.sum(axis=1))]).astype(np.int32)
    flat = pa.array(np.asarray(names, dtype=object)[fields].tolist(), pa.string())
    out[WITHHELD_COLUMN] = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), flat)
    return out


def _by_event_id(table: pa.Table) -> pa.Array:
    """Row order by event id (stable, by code point as Python compares strings)."""
    return pc.sort_indices(table["event_id"])


def _redacted_fields(table: pa.Table) -> dict[str, pa.Array]:
    """Fields with detector findings, each finding's span replaced (policy `redact`)."""
    spans: dict[str, dict[int, list[tuple[int, int, str]]]] = {}
    flagged = pc.fill_null(pc.greater(pc.list_value_length(table[FINDINGS]), 0), False)
    flagged_rows = np.flatnonzero(flagged.to_numpy())
    for row, findings in zip(
        flagged_rows.tolist(), table[FINDINGS].take(flagged_rows).to_pylist(), strict=True
    ):
        for f in findings:
            spans.setdefault(f["field"], {}).setdefault(row, []).append(
                (f["start"], f["end"], f["detector"])
            )
    columns = {}
    for name, rows in spans.items():
        values = table[name].to_pylist()
        for row, found in rows.items():
            values[row] = redact_spans(values[row], found)
        columns[name] = pa.array(values, pa.string())
    return columns


def _pseudonymised_consent(column: pa.ChunkedArray, pseudonyms: Pseudonymizer) -> pa.Array:
    """The per-subject consent list with each subject id replaced by its pseudonym."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    items = column.flatten()
    subject = pseudonyms.array(items.field("subject"))
    rebuilt = pa.StructArray.from_arrays(
        [subject, items.field("reason"), items.field("basis")], fields=list(items.type)
    )
    return pa.ListArray.from_arrays(column.offsets, rebuilt, mask=column.is_null())


def consented_schema(contract: Contract, event_type: EventType) -> pa.Schema:
    """Columns of a de-identified consented-content row: every field, identifiers pseudonymised,
    derived fields dropped."""
    fields = [pa.field("record_class", pa.string(), nullable=False)]
    fields += [pa.field(s.name, s.arrow_type, nullable=s.nullable) for s in contract.envelope]
    fields += [
        pa.field(s.name, s.arrow_type, nullable=s.nullable)
        for s in event_type.fields
        if s.category != "derived"
    ]
    return pa.schema(fields)


def consented_pseudonym_columns(event_type: EventType) -> tuple[str, ...]:
    return (*_ENVELOPE_IDS, *(s.name for s in event_type.fields if s.category == "identifier"))


def _redact_content(
    column: pa.Array, scanner: ConsentedScanner, detectors: tuple[str, ...], owner: np.ndarray
) -> tuple[pa.Array, dict[str, set[int]]]:
    """Redact a column of any shape (string, list of strings, list of {kind, text}); per
    family, the table rows with a finding (`owner` maps the column's items to table rows)."""
    hits: dict[str, set[int]] = {}
    if pa.types.is_string(column.type):
        redacted, findings = scanner.redact_column(column, detectors)
        for item, item_findings in enumerate(findings):
            for finding in item_findings:
                hits.setdefault(finding.detector, set()).add(int(owner[item]))
        return redacted, hits
    if pa.types.is_list(column.type):
        parents = owner[pc.list_parent_indices(column).to_numpy()]
        inner, hits = _redact_content(column.flatten(), scanner, detectors, parents)
        return pa.ListArray.from_arrays(column.offsets, inner, mask=column.is_null()), hits
    if pa.types.is_struct(column.type):
        children = []
        for i in range(column.type.num_fields):
            child, child_hits = _redact_content(column.field(i), scanner, detectors, owner)
            children.append(child)
            for detector, rows in child_hits.items():
                hits.setdefault(detector, set()).update(rows)
        array = pa.StructArray.from_arrays(
            children, fields=list(column.type), mask=column.is_null()
        )
        return array, hits
    return column, hits


def _deidentify_content(
    contract: Contract,
    event_type: EventType,
    table: pa.Table,
    pseudonyms: Pseudonymizer,
    scanner: ConsentedScanner,
) -> tuple[pa.Table, dict[str, int]]:
    """Consented content for training: identifiers pseudonymised, derived fields dropped, and
    every other string (content and free metadata alike) redacted of known identifiers,
    contact details, card and bank numbers, secrets and long ids; with the number of rows
    redacted per family."""
    columns: dict[str, Any] = {
        "record_class": pa.array(["customer_content"] * table.num_rows, pa.string())
    }
    hits: dict[str, set[int]] = {}
    rows = np.arange(table.num_rows)
    for spec in [*contract.envelope, *event_type.fields]:
        if spec.category == "derived":
            continue
        column = table[spec.name].combine_chunks()
        if spec.category == "identifier":
            column = pseudonyms.array(column)
        elif spec.name != "event_id" and column_detectors(spec.name):
            # `event_id` cannot be redacted: a record whose id holds a finding was quarantined.
            column, found = _redact_content(column, scanner, column_detectors(spec.name), rows)
            for detector, flagged in found.items():
                hits.setdefault(detector, set()).update(flagged)
        columns[spec.name] = column
    schema = consented_schema(contract, event_type)
    counts = {detector: len(flagged) for detector, flagged in sorted(hits.items())}
    return pa.table(columns, schema=schema).take(_by_event_id(table)), counts


def _add_findings(
    rows: list[int],
    entries: list[dict[str, Any]],
    row: int,
    field_name: str,
    findings: Iterable[detectors.Finding],
) -> None:
    for f in findings:
        rows.append(row)
        entries.append(
            {"detector": f.detector, "field": field_name, "start": f.start, "end": f.end}
        )


def _findings_column(rows: list[int], entries: list[dict[str, Any]], count: int) -> pa.Array:
    """The FINDINGS column of `count` rows: each row's entries in the order they were added
    (a row without any holds an empty list)."""
    order = np.argsort(np.asarray(rows, dtype=np.int64), kind="stable")
    values = pa.array([entries[i] for i in order.tolist()], FINDING_TYPE)
    return pa.ListArray.from_arrays(pa.array(list_offsets(rows, count)), values)


def _echo_records(
    event_type: EventType, table: pa.Table
) -> list[tuple[int, str, str, int, list[str], list[str]]]:
    """(loc, meeting key, account, event_ts, subjects, worded texts) of content records."""
    texts = [
        s.name for s in event_type.fields if s.category == "content" and s.name not in _NOT_WORDS
    ]
    columns = []
    for name in texts:
        column = table[name]
        if pa.types.is_list(column.type):
            columns.append([_words_of(v) for v in column.to_pylist()])
        else:
            columns.append(column.to_pylist())
    subjects = content_subjects(event_type, table)
    accounts = table["account_id"].to_pylist()
    meetings = table["meeting_id"].to_pylist()
    times = table["event_ts"].cast(pa.int64()).to_pylist()
    locs = table[LOC].to_pylist()
    records = []
    for row, (loc, meeting, account, ts) in enumerate(
        zip(locs, meetings, accounts, times, strict=True)
    ):
        words = [column[row] for column in columns if column[row]]
        records.append((loc, echo.meeting_key(meeting, account), account, ts, subjects[row], words))
    return records


def content_subjects(event_type: EventType, table: pa.Table) -> list[list[str]]:
    """Whose consent each content record needs, per the contract's subject rule."""
    rule = event_type.subjects or {}
    if "field" in rule:
        return [[v] if v else [] for v in table[rule["field"]].to_pylist()]
    if "envelope" in rule:
        return [[v] if v else [] for v in table[rule["envelope"]].to_pylist()]
    if "list_field" in rule:
        return [sorted(set(v or [])) for v in table[rule["list_field"]].to_pylist()]
    return [[] for _ in range(table.num_rows)]


def _restricted_rows(
    contract: Contract, event_type: EventType, table: pa.Table, pseudonyms: Pseudonymizer
) -> pa.Table:
    subjects = pa.array(content_subjects(event_type, table), pa.list_(pa.string()))
    withheld = [s.name for s in event_type.fields if s.category in ("content", "derived")]
    return pa.table(
        {
            "event_id": table["event_id"],
            "event_type": table["event_type"],
            "event_ts": table["event_ts"],
            "account_id": pseudonyms.array(table["account_id"]),
            "meeting_id": pseudonyms.array(table["meeting_id"]),
            "subjects": pseudonyms.array(subjects),
            "reason": table[REASON],
            "consent_subjects": _pseudonymised_consent(table[CONSENT], pseudonyms),
            "host_only": table[HOST_ONLY],
            "withheld_fields": pa.array([withheld] * table.num_rows, pa.list_(pa.string())),
        },
        schema=RESTRICTED_SCHEMA,
    )


def _group_counts(table: pa.Table, keys: list[str]) -> list[dict[str, Any]]:
    """Rows of `table` counted by `keys`: [{key: value, ..., "n": count}]."""
    if table.num_rows == 0:
        return []
    grouped = table.group_by(keys).aggregate([([], "count_all")])
    return [{**row, "n": row.pop("count_all")} for row in grouped.to_pylist()]


def manifest_counts(counts: dict[str, Any]) -> dict[str, Any]:
    """Summed chunk counts in the manifest's form: every destination present, `duplicates`
    named as the contract names it, host-only subjects as a number. Changes `counts`."""
    for dest in DESTINATIONS:
        counts.setdefault(dest, 0)
    counts.setdefault("input_records", 0)
    counts["duplicates"] = counts.pop("duplicate")
    counts["host_only_participants"] = len(counts.pop("host_only_gap_subjects", []))
    counts.setdefault("host_only_records", 0)
    return counts


def count_outputs(audit: pa.Table) -> dict[str, Any]:
    """Counts of one chunk's audit rows; they add up across chunks (see `add_counts`)."""
    counts: dict[str, Any] = {"input_records": audit.num_rows}
    counts.update(dict.fromkeys(DESTINATIONS, 0))
    by_type: dict[str, dict[str, int]] = {}
    by_class: dict[str, dict[str, int]] = {}
    keys = ["event_type", "record_class", "destination"]
    for row in _group_counts(audit.select(keys), keys):
        dest, n = row["destination"], row["n"]
        counts[dest] += n
        event_type = row["event_type"] if row["record_class"] != "unknown" else "(not an event)"
        by_type.setdefault(event_type, {}).setdefault(dest, 0)
        by_type[event_type][dest] += n
        by_class.setdefault(row["record_class"], {}).setdefault(dest, 0)
        by_class[row["record_class"]][dest] += n
    quarantined = audit.filter(pc.equal(audit["destination"], "quarantine")).select(["reason"])
    counts["quarantine_reasons"] = {
        row["reason"]: row["n"] for row in _group_counts(quarantined, ["reason"])
    }
    findings = pc.list_flatten(audit["detectors"]).combine_chunks()
    hits = pa.table({"detector": findings.field("detector"), "field": findings.field("field")})
    counts["detector_hits"] = {
        f"{row['detector']}@{row['field']}": row["n"]
        for row in _group_counts(hits, ["detector", "field"])
    }

    content = audit.filter(pc.is_valid(audit["consent"]))
    subjects = pc.list_flatten(content["consent_subjects"]).combine_chunks()
    consent = {
        row["reason"]: row["n"]
        for row in _group_counts(pa.table({"reason": subjects.field("reason")}), ["reason"])
    }
    no_subjects = pc.sum(pc.equal(pc.list_value_length(content["consent_subjects"]), 0)).as_py()
    if no_subjects:
        consent["no_subjects"] = no_subjects
    # The host-only gap: records a host-only rule admits that per-participant consent does not.
    gap = content.filter(
        pc.and_(content["host_only"], pc.not_equal(content["consent"], "consented"))
    )
    lacking = pc.list_flatten(gap["consent_subjects"]).combine_chunks()
    lacking = lacking.filter(pc.not_equal(lacking.field("reason"), "consented"))
    counts["consent_by_reason"] = consent
    counts["content_records"] = content.num_rows
    counts["content_consented"] = pc.sum(pc.equal(content["consent"], "consented")).as_py() or 0
    counts["host_only_records"] = gap.num_rows
    counts["host_only_gap_subjects"] = sorted(pc.unique(lacking.field("subject")).to_pylist())
    counts["by_event_type"] = by_type
    counts["by_record_class"] = by_class
    by_source: dict[str, dict[str, int]] = {}
    for row in _group_counts(audit.select(["source", "destination"]), ["source", "destination"]):
        by_source.setdefault(row["source"] or "unknown", {})[row["destination"]] = row["n"]
    counts["by_source"] = by_source
    return counts


def add_counts(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Sum two nested count dicts."""
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, Mapping):
            out[key] = add_counts(out.get(key, {}), value)
        elif isinstance(value, list):
            out[key] = sorted(set(out.get(key, [])) | set(value))
        else:
            out[key] = out.get(key, 0) + value
    return out
