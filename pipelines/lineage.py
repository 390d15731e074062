"""OpenLineage events for a run: START, then COMPLETE or FAIL, with datasets, schemas and
column lineage in which pseudonymised and generalised columns are marked as masked.

Every event is appended to the run's own `DIR/.runs/<run_id>/lineage.jsonl` and to the folder's
history `DIR/lineage.jsonl`; with `OPENLINEAGE_URL` set (or a `transport` passed in) it also goes
there. A transport that fails is logged, never fatal: lineage describes the run, it does not
gate it.

Events carry names, schemas, counts and check names only. The key never reaches this module, and
no record value does either: an error message, which may quote an input line, is reduced to its
exception type (the full text stays in `manifest.json`).
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import attr
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    RunFacet,
    column_lineage_dataset,
    dataset_version_dataset,
    documentation_job,
    error_message_run,
    job_type_job,
    output_statistics_output_dataset,
    processing_engine_run,
    schema_dataset,
)
from openlineage.client.facet_v2 import input_statistics_input_dataset as input_statistics
from openlineage.client.serde import Serde
from openlineage.client.transport import Transport, get_default_factory

from pipelines import __version__, storage
from pipelines.chunk import scannable_fields
from pipelines.config import Config, load_config
from pipelines.contract import EventType, FieldSpec

__all__ = ["JOB_NAME", "JOB_NAMESPACE", "LINEAGE_FILE", "ConsentgateRunFacet", "RunLineage"]

_LOG = logging.getLogger(__name__)

JOB_NAMESPACE = "consentgate"
JOB_NAME = "consentgate.run"
LINEAGE_FILE = "lineage.jsonl"
_PRODUCER = f"https://consentgate.invalid/consentgate/{__version__}"
# Run ids are not UUIDs; OpenLineage's are. The same run id always maps to the same UUID.
_RUN_UUID_NAMESPACE = uuid.UUID("6f1c2d0e-4b7a-5c3e-9f21-8a0d3b5e7c14")
# The client must add nothing from the environment (a facet listing environment variables could
# name the key), nor rename datasets (partition folders are part of our names).
_CLIENT_CONFIG: dict[str, Any] = {
    "facets": {"environment_variables": [], "source_code_location": {"disabled": True}},
    "dataset": {"reducing_enabled": False},
}
_ERROR_TYPE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*:")
_LEDGER_FIELDS = ("subject_id", "account_id", "scope", "purpose", "action", "actor", "decided_at")

_PSEUDONYM = (
    "keyed pseudonym: HMAC-SHA256 under the run's key; not recomputable or reversible without it"
)
_COUNTRY = "generalised to the country code"
_REDACTED_CONTENT = (
    "content kept under consent; emails, phone numbers, card numbers, IP addresses and secret "
    "URLs in it replaced by [REDACTED:<detector>]"
)


@attr.define
class ConsentgateRunFacet(RunFacet):
    """The run as consentgate names it: its id, status, policy and counts (numbers only)."""

    # OpenLineage facets spell their keys in camelCase.
    runId: str
    status: str
    contentPolicy: str | None = attr.field(default=None)
    configHash: str | None = attr.field(default=None)
    codeVersion: str | None = attr.field(default=None)
    publishedRunId: str | None = attr.field(default=None)
    counts: dict[str, int] | None = attr.field(default=None)
    gateChecks: dict[str, bool] | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return "https://consentgate.invalid/spec/facets/1-0-0/ConsentgateRunFacet.json"


@dataclass(frozen=True)
class _Edge:
    """One input field an output column comes from, and how."""

    field: str
    kind: str  # DIRECT or INDIRECT
    subtype: str
    description: str
    masking: bool
    ledger: bool = False  # from the consent ledger rather than the events


def _identity(field: str) -> _Edge:
    return _Edge(field, "DIRECT", "IDENTITY", "copied as is", False)


def _masked(field: str, description: str = _PSEUDONYM) -> _Edge:
    return _Edge(field, "DIRECT", "TRANSFORMATION", description, True)


def _filter(field: str, description: str, *, ledger: bool = False) -> _Edge:
    return _Edge(field, "INDIRECT", "FILTER", description, False, ledger)


def run_uuid(run_id: str) -> str:
    """The OpenLineage runId (a UUID) of a consentgate run id."""
    return str(uuid.uuid5(_RUN_UUID_NAMESPACE, run_id))


def _dataset_name(path: str) -> tuple[str, str]:
    """(namespace, name) per OpenLineage's naming: `file` + absolute path, or scheme://bucket."""
    if "://" in path:
        scheme, rest = path.split("://", 1)
        bucket, _, key = rest.partition("/")
        return f"{scheme}://{bucket}", key
    return "file", os.path.abspath(path)


def _iso(moment: datetime | str | None) -> str:
    if moment is None:
        moment = datetime.now(UTC)
    if isinstance(moment, str):
        return moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def _http_from_env() -> dict[str, Any] | None:
    url = os.environ.get("OPENLINEAGE_URL")
    if not url:
        return None
    config: dict[str, Any] = {
        "type": "http",
        "url": url,
        "endpoint": os.environ.get("OPENLINEAGE_ENDPOINT", "api/v1/lineage"),
    }
    if api_key := os.environ.get("OPENLINEAGE_API_KEY"):
        config["auth"] = {"type": "api_key", "apiKey": api_key}
    return config


class _AppendTransport(Transport):
    """One JSON line per event appended to a local file: opened without following a link,
    created owner-only (0600); a link planted at the path makes the append fail, not follow."""

    kind = "file"

    def __init__(self, path: str) -> None:
        self.path = path

    def emit(self, event: Any) -> None:
        storage.append_private(self.path, [Serde.to_json(event)])


class RunLineage:
    """The OpenLineage events of one run of the job."""

    def __init__(
        self,
        run_dir: str | Path,
        run_id: str,
        job_namespace: str = JOB_NAMESPACE,
        job_name: str = JOB_NAME,
        transport: Transport | Mapping[str, Any] | None = None,
        *,
        config: Config | None = None,
    ) -> None:
        self.root = Path(os.path.abspath(run_dir))
        self.run_id = run_id
        self.run_uuid = run_uuid(run_id)
        self.config = config or load_config()
        self._contract = self.config.contract()
        self._job_namespace = job_namespace
        self._job_name = job_name
        self._inputs: list[InputDataset] = []
        self._ledger: InputDataset | None = None
        self.files = [self.root / ".runs" / run_id / LINEAGE_FILE, self.root / LINEAGE_FILE]
        transports: list[Transport] = [_AppendTransport(str(path)) for path in self.files]
        extra = transport if transport is not None else _http_from_env()
        if isinstance(extra, Mapping):
            extra = get_default_factory().create(dict(extra))
        if extra is not None:
            transports.append(extra)
        self._clients = [OpenLineageClient(transport=t, config=_CLIENT_CONFIG) for t in transports]

    # -- the three events -------------------------------------------------------------------
    def start(
        self,
        inputs: Sequence[Mapping[str, Any]],
        started_at: datetime | str | None = None,
        *,
        consent: str | None = None,
    ) -> None:
        """START: the input files (`path`, `size`, `sha256` as in the manifest) and the outputs
        the run will publish if its gate passes."""
        self._set_inputs(inputs, consent)
        policy = self.config.policy.content_policy
        outputs = [self._output(table, name, None) for table, name in self._planned(policy)]
        self._emit(RunState.START, _iso(started_at), outputs, self._run_facets(None))

    def complete(self, manifest: Mapping[str, Any]) -> None:
        """COMPLETE: the published outputs with their row counts."""
        self._ensure_inputs(manifest)
        outputs = [
            self._output(table, event_type, files, published=True)
            for (table, event_type), files in _files_by_dataset(manifest).items()
        ]
        self._emit(RunState.COMPLETE, _iso(None), outputs, self._run_facets(manifest))

    def fail(self, manifest: Mapping[str, Any], error: str) -> None:
        """FAIL: nothing was published; staged outputs (kept for review) are named by their
        staging path. `error` is reduced to its exception type."""
        self._ensure_inputs(manifest)
        outputs = [
            self._output(table, event_type, files, published=False)
            for (table, event_type), files in _files_by_dataset(manifest).items()
        ]
        facets = self._run_facets(manifest)
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=_error_summary(manifest, error), programmingLanguage="python"
        )
        self._emit(RunState.FAIL, _iso(None), outputs, facets)

    # -- datasets ---------------------------------------------------------------------------
    def _set_inputs(self, inputs: Sequence[Mapping[str, Any]], consent: str | None) -> None:
        schema = self._events_schema()
        self._inputs = []
        for item in inputs:
            namespace, name = _dataset_name(str(item["path"]))
            facets: dict[str, Any] = {"schema": schema}
            if item.get("sha256"):
                facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
                    datasetVersion=f"sha256:{item['sha256']}"
                )
            self._inputs.append(
                InputDataset(
                    namespace=namespace,
                    name=name,
                    facets=facets,
                    inputFacets={
                        "inputStatistics": input_statistics.InputStatisticsInputDatasetFacet(
                            size=item.get("size"), fileCount=1
                        )
                    },
                )
            )
        self._ledger = None
        if consent:
            namespace, name = _dataset_name(consent)
            self._ledger = InputDataset(
                namespace=namespace,
                name=name,
                facets={"schema": _schema_of(self._contract.consent_fields)},
            )

    def _ensure_inputs(self, manifest: Mapping[str, Any]) -> None:
        if not self._inputs:
            self._set_inputs(manifest.get("inputs", []), manifest.get("consent"))

    def _all_inputs(self) -> list[InputDataset]:
        return [*self._inputs, *([self._ledger] if self._ledger else [])]

    def _events_schema(self) -> schema_dataset.SchemaDatasetFacet:
        """The envelope, and `payload` as the union of every event type's payload fields."""
        payload: dict[str, list[tuple[str, FieldSpec]]] = {}
        for name, event_type in sorted(self._contract.event_types.items()):
            for spec in event_type.fields:
                payload.setdefault(spec.name, []).append((name, spec))
        nested = []
        for position, (field_name, uses) in enumerate(sorted(payload.items()), 1):
            by_category: dict[str, list[str]] = {}
            for type_name, spec in uses:
                by_category.setdefault(spec.category, []).append(type_name)
            types = sorted({str(spec.arrow_type) for _, spec in uses})
            nested.append(
                schema_dataset.SchemaDatasetFacetFields(
                    name=field_name,
                    type=" | ".join(types),
                    description="; ".join(
                        f"category {category} in {', '.join(names)}"
                        for category, names in sorted(by_category.items())
                    ),
                    ordinal_position=position,
                )
            )
        fields = _schema_of(self._contract.envelope).fields or []
        fields.append(
            schema_dataset.SchemaDatasetFacetFields(
                name="payload",
                type="struct",
                description="per event type; each field's category is given below",
                ordinal_position=len(fields) + 1,
                fields=nested,
            )
        )
        return schema_dataset.SchemaDatasetFacet(fields=fields)

    def _planned(self, policy: str) -> list[tuple[str, str | None]]:
        classes = {"training": "service_generated", "consented_content": "customer_content"}
        planned: list[tuple[str, str | None]] = []
        for table, record_class in classes.items():
            if table == "consented_content" and policy != "per_participant":
                continue
            planned += [
                (table, name)
                for name, spec in sorted(self._contract.event_types.items())
                if spec.record_class == record_class
            ]
        return [*planned, ("restricted", None), ("quarantine", None), ("audit", None)]

    def _output(
        self,
        table: str,
        event_type: str | None,
        files: list[Mapping[str, Any]] | None,
        *,
        published: bool = True,
    ) -> OutputDataset:
        base = self.root if published else self.root / ".runs" / self.run_id
        relative = {
            "training": f"training/service_generated/event_type={event_type}",
            "consented_content": f"training/consented_content/event_type={event_type}",
        }.get(table, table)
        doc = self.config.schemas[f"outputs/{table}.json"]
        # An event type the output schema does not know (the gate fails such a run) has no
        # declared columns to describe.
        properties = (
            doc["$defs"].get(event_type, {}).get("properties", {})
            if event_type
            else doc["properties"]
        )
        masked = set(doc.get("x-pseudonym-columns", {}).get(event_type, []))
        facets: dict[str, Any] = {
            "schema": schema_dataset.SchemaDatasetFacet(
                fields=[
                    schema_dataset.SchemaDatasetFacetFields(
                        name=column,
                        type=prop.get("x-arrow-type"),
                        description=_PSEUDONYM if column in masked else None,
                        ordinal_position=position,
                    )
                    for position, (column, prop) in enumerate(properties.items(), 1)
                ]
            ),
            "columnLineage": self._column_lineage(table, event_type, list(properties)),
            "version": dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=self.run_id
            ),
        }
        output_facets: dict[str, Any] = {}
        if files is not None:
            sizes = [self._size(str(f["path"])) for f in files]
            output_facets["outputStatistics"] = (
                output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                    rowCount=sum(int(f.get("rows") or 0) for f in files),
                    fileCount=len(files),
                    size=None if None in sizes else sum(s or 0 for s in sizes),
                )
            )
        return OutputDataset(
            namespace="file",
            name=str(base / relative),
            facets=facets,
            outputFacets=output_facets,
        )

    def _size(self, relative: str) -> int | None:
        try:
            return (self.root / ".runs" / self.run_id / relative).stat().st_size
        except OSError:
            return None

    # -- column lineage ---------------------------------------------------------------------
    def _column_lineage(
        self, table: str, event_type: str | None, columns: list[str]
    ) -> column_lineage_dataset.ColumnLineageDatasetFacet:
        if table == "training" and event_type:
            fields, dataset = self._training_edges(self._contract.event_types[event_type], columns)
        elif table == "consented_content" and event_type:
            fields, dataset = self._consented_edges(self._contract.event_types[event_type], columns)
        else:
            fields, dataset = self._table_edges(table), []
        return column_lineage_dataset.ColumnLineageDatasetFacet(
            fields={
                column: column_lineage_dataset.Fields(inputFields=self._input_fields(edges))
                for column, edges in fields.items()
                if column in columns and edges
            },
            dataset=self._input_fields(dataset),
        )

    def _input_fields(self, edges: Iterable[_Edge]) -> list[column_lineage_dataset.InputField]:
        out = []
        ledger = [self._ledger] if self._ledger else []
        for edge in edges:
            for dataset in ledger if edge.ledger else self._inputs:
                out.append(
                    column_lineage_dataset.InputField(
                        namespace=dataset.namespace,
                        name=dataset.name,
                        field=edge.field,
                        transformations=[
                            column_lineage_dataset.Transformation(
                                type=edge.kind,
                                subtype=edge.subtype,
                                description=edge.description,
                                masking=edge.masking,
                            )
                        ],
                    )
                )
        return out

    def _envelope_edge(self, column: str, masked: set[str]) -> list[_Edge]:
        if column == "record_class":
            return [
                _Edge(
                    "event_type",
                    "DIRECT",
                    "TRANSFORMATION",
                    "the record class of the event type in the contract",
                    False,
                )
            ]
        return [_masked(column) if column in masked else _identity(column)]

    def _training_edges(
        self, event_type: EventType, columns: list[str]
    ) -> tuple[dict[str, list[_Edge]], list[_Edge]]:
        doc = self.config.schemas["outputs/training.json"]
        masked = set(doc["x-pseudonym-columns"].get(event_type.name, []))
        envelope = {s.name for s in self._contract.envelope} | {"record_class"}
        payload = {s.name for s in event_type.fields}
        scanned = set(scannable_fields(event_type))
        redact = self.config.policy.on_detector_finding == "redact"
        fields: dict[str, list[_Edge]] = {}
        for column in columns:
            if column in envelope:
                fields[column] = self._envelope_edge(column, masked)
            elif column in payload and column in masked:
                fields[column] = [_masked(f"payload.{column}")]
            elif column in payload and column in scanned and redact:
                fields[column] = [
                    _Edge(
                        f"payload.{column}",
                        "DIRECT",
                        "TRANSFORMATION",
                        "detector findings replaced by [REDACTED:<detector>]",
                        False,
                    )
                ]
            elif column in payload:
                fields[column] = [_identity(f"payload.{column}")]
            elif column.endswith("_country") and column.removesuffix("_country") in payload:
                fields[column] = [_masked(f"payload.{column.removesuffix('_country')}", _COUNTRY)]
        finding = "a detector finding " + ("is redacted" if redact else "quarantines the record")
        dataset = [
            _filter("event_type", "routing: only service-generated event types enter"),
            _filter("event_id", "de-duplication: a repeated id counts once or is quarantined"),
            _Edge("event_id", "INDIRECT", "SORT", "rows are written in event_id order", False),
            *(
                _filter(f"payload.{name}", f"scanned by the detectors; {finding}")
                for name in sorted(scanned)
            ),
        ]
        return fields, dataset

    def _consented_edges(
        self, event_type: EventType, columns: list[str]
    ) -> tuple[dict[str, list[_Edge]], list[_Edge]]:
        doc = self.config.schemas["outputs/consented_content.json"]
        masked = set(doc["x-pseudonym-columns"].get(event_type.name, []))
        envelope = {s.name for s in self._contract.envelope} | {"record_class"}
        payload = {s.name: s for s in event_type.fields}
        fields: dict[str, list[_Edge]] = {}
        for column in columns:
            if column in envelope:
                fields[column] = self._envelope_edge(column, masked)
            elif column in masked:
                fields[column] = [_masked(f"payload.{column}")]
            elif column in payload and payload[column].category == "content":
                fields[column] = [
                    _Edge(f"payload.{column}", "DIRECT", "TRANSFORMATION", _REDACTED_CONTENT, False)
                ]
            elif column in payload:
                fields[column] = [_identity(f"payload.{column}")]
        dataset = [
            _filter("event_type", "routing: only customer-content event types enter"),
            _filter("event_id", "de-duplication: a repeated id counts once or is quarantined"),
            *(
                _filter(field, "consent: every content subject's own grant must cover the event")
                for field in self._subject_fields([event_type])
            ),
            _filter("event_ts", "consent: the decision in force at the event's time"),
            _filter("account_id", "consent: account scope"),
            _filter("meeting_id", "consent: meeting scope"),
            *(
                _filter(field, "consent decisions of the ledger", ledger=True)
                for field in _LEDGER_FIELDS
            ),
        ]
        return fields, dataset

    def _subject_fields(self, event_types: Iterable[EventType]) -> list[str]:
        """Input fields naming content subjects, per the contract's subject rules."""
        found: list[str] = []
        for event_type in event_types:
            for kind, name in (event_type.subjects or {}).items():
                field = name if kind == "envelope" else f"payload.{name}"
                if field not in found:
                    found.append(field)
        return found

    def _table_edges(self, table: str) -> dict[str, list[_Edge]]:
        content = [t for t in self._contract.event_types.values() if t.subjects is not None]
        subjects = [_masked(field) for field in self._subject_fields(content)]
        decisions = [
            _Edge(field, "DIRECT", "TRANSFORMATION", "described without identifiers", False, True)
            for field in ("action", "actor", "purpose", "scope", "decided_at")
        ]
        common = {"event_id": [_identity("event_id")], "event_type": [_identity("event_type")]}
        if table == "restricted":
            return {
                **common,
                "event_ts": [_identity("event_ts")],
                "account_id": [_masked("account_id")],
                "meeting_id": [_masked("meeting_id")],
                "subjects": subjects,
                "consent_subjects": [*subjects, *decisions],
            }
        if table == "quarantine":
            raw = [
                _Edge(
                    field,
                    "DIRECT",
                    "IDENTITY",
                    "the record as read, held for review; quarantine is never training data",
                    False,
                )
                for field in [*(s.name for s in self._contract.envelope), "payload"]
            ]
            ledger_raw = [
                _Edge(
                    field, "DIRECT", "IDENTITY", "a ledger row that broke its schema", False, True
                )
                for field in _LEDGER_FIELDS
            ]
            return {**common, "raw": [*raw, *ledger_raw]}
        return {**common, "consent_subjects": [*subjects, *decisions]}

    # -- run facets and emission ------------------------------------------------------------
    def _run_facets(self, manifest: Mapping[str, Any] | None) -> dict[str, Any]:
        try:
            beam = metadata.version("apache-beam")
        except metadata.PackageNotFoundError:
            beam = "unknown"
        facets: dict[str, Any] = {
            "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
                version=beam, name="Apache Beam", openlineageAdapterVersion=__version__
            )
        }
        manifest = manifest or {}
        counts = {
            k: v
            for k, v in (manifest.get("counts") or {}).items()
            if isinstance(v, int) and not isinstance(v, bool)
        }
        checks = (manifest.get("gate") or {}).get("checks") or {}
        facets["consentgate_run"] = ConsentgateRunFacet(
            runId=self.run_id,
            status=str(manifest.get("status", "running")),
            contentPolicy=manifest.get("content_policy", self.config.policy.content_policy),
            configHash=manifest.get("config_hash", self.config.config_hash),
            codeVersion=manifest.get("code_version", __version__),
            publishedRunId=manifest.get("published_run_id"),
            counts=counts or None,
            gateChecks={name: bool(c.get("passed")) for name, c in checks.items()} or None,
        )
        return facets

    def _emit(
        self, state: RunState, when: str, outputs: list[OutputDataset], run_facets: dict[str, Any]
    ) -> None:
        event = RunEvent(
            eventType=state,
            eventTime=when,
            run=Run(runId=self.run_uuid, facets=run_facets),
            job=Job(
                namespace=self._job_namespace,
                name=self._job_name,
                facets={
                    "jobType": job_type_job.JobTypeJobFacet(
                        processingType="BATCH", integration="CONSENTGATE", jobType="JOB"
                    ),
                    "documentation": documentation_job.DocumentationJobFacet(
                        description="Classify, de-identify, route and gate meeting-platform "
                        "events; publish only de-identified service records (and consented "
                        "content) to training."
                    ),
                },
            ),
            inputs=self._all_inputs(),
            outputs=outputs,
            producer=_PRODUCER,
        )
        for path in self.files:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        for client in self._clients:
            try:
                client.emit(event)
            except Exception as exc:  # a lineage backend being down must not fail the run
                _LOG.warning(
                    "run %s: could not send the %s lineage event with the %s transport: %s",
                    self.run_id,
                    state.value,
                    client.transport.kind,
                    exc,
                )


def _files_by_dataset(
    manifest: Mapping[str, Any],
) -> dict[tuple[str, str | None], list[Mapping[str, Any]]]:
    grouped: dict[tuple[str, str | None], list[Mapping[str, Any]]] = {}
    for item in manifest.get("files") or []:
        grouped.setdefault((item["table"], item.get("event_type")), []).append(item)
    return dict(sorted(grouped.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")))


def _schema_of(specs: Iterable[FieldSpec]) -> schema_dataset.SchemaDatasetFacet:
    return schema_dataset.SchemaDatasetFacet(
        fields=[
            schema_dataset.SchemaDatasetFacetFields(
                name=spec.name,
                type=str(spec.arrow_type),
                description=f"category {spec.category}",
                ordinal_position=position,
            )
            for position, spec in enumerate(specs, 1)
        ]
    )


def _error_summary(manifest: Mapping[str, Any], error: str) -> str:
    """What went wrong, without the message text (it may quote an input line)."""
    if manifest.get("status") == "gate_failed":
        checks = (manifest.get("gate") or {}).get("checks") or {}
        failed = sorted(name for name, c in checks.items() if not c.get("passed"))
        return f"the leak gate failed: {', '.join(failed) or 'see manifest.json'}"
    match = _ERROR_TYPE.match(error or "")
    kind = match.group(1) if match else "error"
    return f"the run failed: {kind} (the message is in manifest.json)"
