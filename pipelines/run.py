"""`consentgate run`: check the request, run the Beam job into staging, gate, publish, manifest."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipelines import __version__, storage
from pipelines.config import Config, load_config
from pipelines.contract import micros_of
from pipelines.errors import ConfigError, GateFailed, InputError, RunFailed
from pipelines.gate import verdict
from pipelines.lineage import RunLineage
from pipelines.lock import PartitionLock
from pipelines.pipeline import SUMMARY_NAME, build
from pipelines.progress import progress
from pipelines.publish import RunFolder
from pipelines.report.html import write_report
from pipelines.rules.deidentify import KEY_ENV, key_fingerprint, key_from_env
from pipelines.rules.route import DESTINATIONS
from pipelines.transforms.consent import estimate_decisions
from pipelines.transforms.read import InputFile

__all__ = [
    "LOCAL_RUNNER",
    "RunRequest",
    "expand_inputs",
    "pipeline_options",
    "resolve_paths",
    "run_job",
    "summary_line",
]

_LOG = logging.getLogger(__name__)
# Beam's DirectRunner first tries to download the Prism runner; name the in-process runner.
LOCAL_RUNNER = "FnApiRunner"
_EVENT_SUFFIXES = {".jsonl": "jsonl", ".jsonl.gz": "jsonl", ".parquet": "parquet"}


@dataclass
class RunRequest:
    """What the user asked for on the command line."""

    inputs: Sequence[str]
    out: str | None
    consent: str | None = None
    content_policy: str | None = None
    config_file: str | None = None
    date: str | None = None
    as_of: datetime | None = None
    beam_args: Sequence[str] = field(default_factory=list)
    progress: bool = False


def _fill(template: str, day: str | None, what: str) -> str:
    """Put the run's date into a path template (`{date}`); a template needs `--date`."""
    if "{date}" not in template:
        return template
    if day is None:
        raise ConfigError(f"{what} {template}: has {{date}} in it; give --date YYYY-MM-DD")
    return template.replace("{date}", day)


def resolve_paths(request: RunRequest, config: Config) -> RunRequest:
    """The request with `{date}` filled in, and inputs, output and ledger taken from the
    config's `schedule` templates where the command line left them out."""
    day = request.date
    schedule = config.schedule
    inputs = list(request.inputs)
    if not inputs and schedule.input and day:
        inputs = [schedule.input]
    out = request.out or (schedule.out if day else None)
    consent = request.consent or (schedule.consent if day else None)
    if not inputs:
        raise ConfigError("no --input given (or schedule.input in the config, with --date)")
    if not out:
        raise ConfigError("no --out given (or schedule.out in the config, with --date)")
    # Workers (a Flink TaskManager's, say) open the staging folder and the ledger from their own
    # working directory: hand them absolute paths.
    return replace(
        request,
        inputs=[_fill(p, day, "--input") for p in inputs],
        out=_absolute(_fill(out, day, "--out")),
        consent=_absolute(_fill(consent, day, "--consent")) if consent else None,
    )


def _absolute(path: str) -> str:
    return path if storage.is_remote(path) else os.path.abspath(path)


def _format_of(path: str) -> str | None:
    for suffix, fmt in _EVENT_SUFFIXES.items():
        if path.endswith(suffix):
            return fmt
    return None


def expand_inputs(patterns: Sequence[str], exclude: Sequence[str] = ()) -> list[InputFile]:
    """Files, folders or globs -> sorted, de-duplicated event files; nothing found is an error."""
    excluded = {os.path.abspath(p) if "://" not in p else p for p in exclude}
    found: dict[str, int] = {}
    for pattern in patterns:
        if "://" not in pattern:
            # Manifests record absolute paths, so `validate` finds the inputs from anywhere.
            pattern = os.path.abspath(pattern)
        is_dir = "://" not in pattern and os.path.isdir(pattern)
        glob = pattern.rstrip("/") + "/*" if is_dir else pattern
        try:
            matched = FileSystems.match([glob])[0].metadata_list
        except Exception as exc:  # Beam raises BeamIOError and friends
            raise InputError(f"--input {pattern}: cannot be listed ({exc})") from None
        files = [m for m in matched if _format_of(m.path) is not None or not is_dir]
        files = [
            m
            for m in files
            if (os.path.abspath(m.path) if "://" not in m.path else m.path) not in excluded
        ]
        if not files:
            raise InputError(
                f"--input {pattern}: no event files found (expected .jsonl, .jsonl.gz or .parquet)"
            )
        for m in files:
            if _format_of(m.path) is None:
                raise InputError(
                    f"--input {m.path}: unknown file type; use .jsonl, .jsonl.gz or .parquet"
                )
            found[m.path] = m.size_in_bytes
    return [
        InputFile(index=i, path=path, size=found[path], format=_format_of(path) or "")
        for i, path in enumerate(sorted(found))
    ]


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def pipeline_options(beam_args: Sequence[str]) -> PipelineOptions:
    """Beam options exactly as given after `--`, with the local runner named when none is."""
    options = PipelineOptions(list(beam_args))
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = LOCAL_RUNNER
    return options


def _new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


def run_job(request: RunRequest, *, config: Config | None = None) -> dict[str, Any]:
    """Run the whole job; return the manifest. Raises a ConsentgateError with its exit code."""
    started = time.monotonic()
    config = config or load_config(override_file=request.config_file)
    if request.content_policy:
        config = config.with_policy(content_policy=request.content_policy)
    key = key_from_env()
    as_of = request.as_of or _end_of(request.date) or datetime.now(UTC)
    request = resolve_paths(request, config)
    assert request.out is not None
    options = pipeline_options(request.beam_args)
    # Remote paths (s3://, gs://) need the Beam options (endpoints, credentials) before any
    # file is listed; the pipeline sets them again for its workers.
    FileSystems.set_options(options)
    decisions = 0
    if request.consent:
        if not FileSystems.exists(request.consent):
            raise InputError(f"--consent {request.consent}: no such file")
        decisions = estimate_decisions(request.consent)
    # A ledger past this size is joined by key instead of shipped whole to every worker.
    consent_join = decisions > config.policy.consent_side_input_max_decisions
    inputs = expand_inputs(request.inputs, exclude=[request.consent] if request.consent else [])

    folder = RunFolder(request.out)
    run_id = _new_run_id()
    try:
        with PartitionLock(folder.root, run_id, config.schedule.lock_stale_after_s):
            return _run_locked(
                request, config, key, inputs, options, folder, run_id, as_of, consent_join, started
            )
    except OSError as exc:  # a full disk, an unwritable --out: nothing was published
        raise RunFailed(f"run {run_id} failed writing {folder.root}: {exc}") from None


def _run_locked(
    request: RunRequest,
    config: Config,
    key: bytes,
    inputs: list[InputFile],
    options: PipelineOptions,
    folder: RunFolder,
    run_id: str,
    as_of: datetime,
    consent_join: bool,
    started: float,
) -> dict[str, Any]:
    staging = folder.prepare(run_id)
    previous = folder.read_manifest()
    fingerprint = key_fingerprint(key)
    previous_fingerprint = previous.get("pseudonym_key_fingerprint") if previous else None
    key_changed = previous_fingerprint is not None and previous_fingerprint != fingerprint
    warnings = _warnings(request, config, key_changed, previous_fingerprint, fingerprint)
    for warning in warnings:
        _LOG.warning("%s", warning)
    manifest: dict[str, Any] = {
        "run_id": run_id,
        "status": "failed",
        "code_version": __version__,
        "config_hash": config.config_hash,
        "content_policy": config.policy.content_policy,
        "pseudonym_key_env": KEY_ENV,
        "pseudonym_key_fingerprint": fingerprint,
        "pseudonym_key_version": os.environ.get("CONSENTGATE_PSEUDONYM_KEY_VERSION", "unversioned"),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "inputs": [{"path": f.path, "size": f.size, "sha256": _sha256(f.path)} for f in inputs],
        "out": folder.root,
        "consent": request.consent,
        "date": request.date,
        "consent_as_of": as_of.isoformat(timespec="seconds"),
        "consent_join": "keyed_join" if consent_join else "side_input",
        "runner": options.view_as(StandardOptions).runner,
        "previous_run_id": previous.get("run_id") if previous else None,
        # The previous run's figures travel with this manifest, so the report can show the
        # change even after that run's staging folder is pruned.
        "previous": _previous_figures(previous),
        "published_run_id": previous.get("published_run_id") if previous else None,
        # A new key gives every identifier a new pseudonym: joins with earlier runs break.
        "key_changed": key_changed,
        "warnings": warnings,
    }
    if key_changed:
        manifest["previous_key_fingerprint"] = previous_fingerprint
    # Lineage files are appended to, which object stores cannot do: local folders only.
    lineage = None if folder.remote else RunLineage(folder.root, run_id, config=config)
    _emit(lineage, "start", manifest["inputs"], manifest["started_at"], consent=request.consent)
    _LOG.info("run %s: %d input file(s), staging in %s", run_id, len(inputs), staging)
    progress.configure(request.progress)
    try:
        with beam.Pipeline(options=options) as pipeline:
            build(
                pipeline,
                config,
                inputs,
                staging,
                consent=[request.consent] if request.consent else [],
                as_of=micros_of(as_of),
                consent_join=consent_join,
            )
        progress.finish()
        summary = json.loads(storage.read_bytes(storage.join(staging, SUMMARY_NAME)))
    except Exception as exc:
        progress.finish()
        manifest["error"] = f"{type(exc).__name__}: {exc}".replace(
            key.decode("utf-8", "replace"), "***"
        )
        manifest["duration_s"] = round(time.monotonic() - started, 3)
        folder.write_manifest(manifest)
        _emit(lineage, "fail", manifest, manifest["error"])
        raise RunFailed(f"run {run_id} failed: {manifest['error']}") from None

    _LOG.info("run %s: staged; checking the gate's results", run_id)
    counts = summary["counts"]
    files = counts.pop("files", [])
    for dest in DESTINATIONS:
        counts.setdefault(dest, 0)
    counts.setdefault("input_records", 0)
    counts["duplicates"] = counts.pop("duplicate")
    counts["host_only_participants"] = len(counts.pop("host_only_gap_subjects", []))
    counts.setdefault("host_only_records", 0)
    files = [{**f, "path": storage.relative(f["path"], staging)} for f in files]
    gate = dict(summary["gate"]["checks"])
    gate["conservation"] = verdict.conservation({**counts, "duplicate": counts["duplicates"]})
    gate["training_rows_reconcile"] = verdict.reconcile(files, counts)
    gate["expectations"] = verdict.expectations_check(summary["gate"]["expectations"])
    if config.policy.content_policy == "per_participant" and request.consent:
        gate["consent_recheck"] = verdict.consent_recheck(
            config, request.consent, staging, key, as_of
        )
    passed = all(check["passed"] for check in gate.values())
    evidence = verdict.write_evidence(staging, gate, summary["gate"]["expectations"])
    manifest.update(
        counts=counts,
        gate={"passed": passed, "checks": gate, "evidence": evidence},
        files=files,
        duration_s=round(time.monotonic() - started, 3),
    )
    if passed:
        manifest["status"] = "published"
        manifest["published_run_id"] = run_id
        write_report(folder.root, manifest)
        folder.publish(run_id, manifest)
        _replace_report(folder, run_id)
        _emit(lineage, "complete", manifest)
        return manifest
    manifest["status"] = "gate_failed"
    write_report(folder.root, manifest)
    folder.write_manifest(manifest)
    _replace_report(folder, run_id)
    _emit(lineage, "fail", manifest, "the leak gate failed")
    failed = [name for name, check in gate.items() if not check["passed"]]
    raise GateFailed(
        f"run {run_id}: the leak gate failed ({', '.join(failed)}); nothing was published"
    )


def _warnings(
    request: RunRequest,
    config: Config,
    key_changed: bool,
    previous_fingerprint: str | None,
    fingerprint: str,
) -> list[str]:
    """What the run does that its operator may not mean; logged, and kept in the manifest."""
    warnings = []
    if config.policy.content_policy == "per_participant" and not request.consent:
        warnings.append(
            "--content-policy per_participant without --consent: there is no consent ledger, so "
            "no content record can be admitted; all content goes to restricted "
            "(no_consent:no_decision)"
        )
    if key_changed:
        warnings.append(
            f"the pseudonymisation key changed since the previous run of {request.out} (key "
            f"fingerprint {previous_fingerprint}, now {fingerprint}): every pseudonym differs "
            "from that run's"
        )
    return warnings


def summary_line(manifest: dict[str, Any]) -> str:
    """One line for the operator; its destinations add up to the records in."""
    counts = manifest["counts"]
    return (
        f"published run {manifest['run_id']}: {counts['input_records']:,} records in = "
        f"{counts['training']:,} training + {counts['consented_content']:,} consented content + "
        f"{counts['restricted']:,} restricted + {counts['quarantine']:,} quarantined + "
        f"{counts['duplicates']:,} duplicates. Report: {manifest['out']}/report.html"
    )


def _end_of(day: str | None) -> datetime | None:
    """The end of a `--date` day in UTC: the consent as-of time of that day's run."""
    if day is None:
        return None
    try:
        start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ConfigError(f"--date {day!r}: expected YYYY-MM-DD") from None
    return start + timedelta(days=1)


def _emit(lineage: RunLineage | None, event: str, *args: Any, **kwargs: Any) -> None:
    """Send one lineage event; lineage is observability and never decides a run's outcome."""
    if lineage is None:
        return
    try:
        getattr(lineage, event)(*args, **kwargs)
    except Exception as exc:
        _LOG.warning("lineage event not emitted (%s)", type(exc).__name__)


def _previous_figures(previous: dict[str, Any] | None) -> dict[str, Any] | None:
    if not previous:
        return None
    keep = ("input_records", *DESTINATIONS[:-1], "duplicates", "host_only_records")
    counts = previous.get("counts", {})
    return {
        "run_id": previous.get("run_id"),
        "status": previous.get("status"),
        "counts": {k: counts[k] for k in keep if k in counts},
        "by_event_type": counts.get("by_event_type", {}),
        "pseudonym_key_fingerprint": previous.get("pseudonym_key_fingerprint"),
    }


def _replace_report(folder: RunFolder, run_id: str) -> None:
    """Copy the run's report.html and report.json to DIR/, each all at once."""
    for name in ("report.html", "report.json"):
        source = storage.join(folder.staging(run_id), name)
        storage.write_bytes(storage.join(folder.root, name), storage.read_bytes(source))
