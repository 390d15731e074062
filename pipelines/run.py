"""`consentgate run`: check the request, run the Beam job into staging, gate, publish, manifest."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipelines import __version__, storage
from pipelines.chunk import manifest_counts
from pipelines.config import Config, check_beam_options, load_config
from pipelines.contract import micros_of
from pipelines.errors import (
    ConfigError,
    GateFailed,
    InputError,
    InputMissing,
    Interrupted,
    RunFailed,
)
from pipelines.gate import verdict
from pipelines.gate.expectations import check_suite_types
from pipelines.lineage import RunLineage
from pipelines.lock import PartitionLock
from pipelines.pipeline import SUMMARY_NAME, build, spill_folder
from pipelines.progress import progress
from pipelines.publish import RunFolder
from pipelines.report.html import write_report
from pipelines.rules.deidentify import KEY_ENV, key_fingerprint, key_from_env
from pipelines.rules.route import DESTINATIONS
from pipelines.stage_times import stage_seconds
from pipelines.transforms.consent import estimate_decisions
from pipelines.transforms.process import WORKER_KEY_FINGERPRINTS
from pipelines.transforms.read import InputFile

__all__ = [
    "LOCAL_RUNNER",
    "RunRequest",
    "check_out_apart",
    "expand_inputs",
    "is_event_file_name",
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
    quiet: bool = False
    source: str = "contract"


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


# Names in an input folder (or matched by a glob) that are never events, whatever their
# suffix: consent ledgers, and what consentgate itself writes (run folders' records, the
# generator's ground truth, purge logs). Hidden (`.`) and `_` names are bookkeeping too.
_NOT_EVENTS = ("consent", "ledger", "lineage", "purge-log", "report", "manifest", "truth")


def is_event_file_name(name: str) -> bool:
    """Whether a file name found in a folder or by a glob is read as events.

    The rule: an event suffix (`.jsonl`, `.jsonl.gz`, `.parquet`), and a name that does not
    start with `.`, `_` or one of the reserved words (`consent`, `ledger`, `lineage`,
    `purge-log`, `report`, `manifest`, `truth`). A file named on the command line is read as
    given.
    """
    lowered = name.lower()
    return (
        _format_of(name) is not None
        and not lowered.startswith((".", "_"))
        and not lowered.startswith(_NOT_EVENTS)
    )


def _local(path: str) -> str:
    return path if "://" in path else os.path.abspath(path)


def _inside(path: str, folder: str) -> bool:
    """Whether `path` is `folder` or lies under it (local paths absolute, URLs as text)."""
    folder = folder.rstrip("/")
    return path == folder or path.startswith(folder + "/")


def _run_folder_of(path: str) -> str | None:
    """The run folder (one holding `manifest.json` or `.runs`) a local file lies in, if any."""
    if "://" in path:
        return None
    folder = os.path.dirname(path)
    while True:
        if os.path.isfile(os.path.join(folder, "manifest.json")) or os.path.isdir(
            os.path.join(folder, ".runs")
        ):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def check_out_apart(patterns: Sequence[str], out: str) -> None:
    """`--out` must not be an input folder or lie inside one: the run would read its own
    records (lineage, reports, staged tables) as events on the next run."""
    target = _local(out)
    for pattern in patterns:
        folder = _local(pattern)
        if "://" not in folder and not os.path.isdir(folder):
            continue
        if "://" in folder and any(c in folder for c in "*?["):
            continue
        if _inside(target, folder):
            raise ConfigError(
                f"--out {out}: lies inside the input folder {pattern}; put the run folder "
                "outside the input (or give the input files by name or glob)"
            )


def expand_inputs(
    patterns: Sequence[str], exclude: Sequence[str] = (), out: str | None = None
) -> list[InputFile]:
    """Files, folders or globs -> sorted, de-duplicated event files.

    A folder (not recursive) and a glob contribute only the files `is_event_file_name`
    accepts, never one under a run folder or under `out`; a file named exactly is read as
    given. A pattern that matches nothing raises InputMissing (exit 5: the day's data may
    not have landed yet); a named file of another type raises InputError.
    """
    excluded = {_local(p) for p in exclude}
    skip_under = [_local(out)] if out else []
    found: dict[str, int] = {}
    for pattern in patterns:
        # Manifests record absolute paths, so `validate` finds the inputs from anywhere.
        pattern = _local(pattern)
        is_dir = "://" not in pattern and os.path.isdir(pattern)
        if is_dir and _run_folder_of(os.path.join(pattern, "x")):
            raise InputError(
                f"--input {pattern}: is (or lies in) a consentgate run folder; give the event "
                "files themselves"
            )
        named = not is_dir and not any(c in pattern for c in "*?[")
        glob = pattern.rstrip("/") + "/*" if is_dir else pattern
        try:
            matched = FileSystems.match([glob])[0].metadata_list
        except Exception as exc:  # Beam raises BeamIOError and friends
            if named and not FileSystems.exists(pattern):
                raise InputMissing(
                    f"--input {pattern}: no such file (has the day's data landed?)"
                ) from None
            raise InputError(f"--input {pattern}: cannot be listed ({exc})") from None
        files = [m for m in matched if _local(m.path) not in excluded]
        if not named:
            files = [
                m
                for m in files
                if is_event_file_name(m.path.rsplit("/", 1)[-1])
                and not any(_inside(_local(m.path), o) for o in skip_under)
                and _run_folder_of(_local(m.path)) is None
            ]
        if not files:
            raise InputMissing(
                f"--input {pattern}: no event files found (expected .jsonl, .jsonl.gz or "
                ".parquet; has the day's data landed?)"
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
    """Beam options exactly as given after `--`, with the local runner named when none is.

    An option no Beam options class knows is refused (ConfigError) rather than dropped.
    """
    check_beam_options(beam_args)
    options = PipelineOptions(list(beam_args))
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = LOCAL_RUNNER
    return options


class StopSignals:
    """SIGINT and SIGTERM end a run by raising Interrupted in the main thread.

    Inside `held()` (taking the lock, publishing, writing the closing records) a signal is
    noted and acted on when the block ends, so a run is never stopped half-way through its
    bookkeeping. Once a run is stopping, further signals are noted and ignored.
    """

    def __init__(self) -> None:
        self.received: str | None = None
        self._holding = 0
        self._raised = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._on_signal)
            self._thread_hook = threading.excepthook
            threading.excepthook = self._thread_failed
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        if self._previous:
            threading.excepthook = self._thread_hook
        self._previous.clear()

    def _thread_failed(self, args: Any) -> None:
        """Once a run is stopping, Beam's threads that watched the stopped worker processes
        fail; that is the stop itself, said once by the command, not an error to print."""
        if self.received is None:
            self._thread_hook(args)
        else:
            _LOG.debug("thread %s ended with the stop: %s", args.thread, args.exc_type)

    def _on_signal(self, number: int, frame: object) -> None:
        self.received = self.received or signal.Signals(number).name
        if self._holding or self._raised:
            return
        self._raised = True
        _stop_worker_processes()
        raise Interrupted(self.received)

    @contextmanager
    def held(self, *, act_after: bool = True) -> Iterator[None]:
        """Signals wait until the block ends; then they stop the run unless `act_after` is
        False (the run has just published: it is finished, not interrupted)."""
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1
        if act_after and not self._holding:
            self.check()

    def check(self) -> None:
        """Raise Interrupted if a signal came, even one whose first raise something swallowed
        (a runner thread or a library's broad `except` on the way out)."""
        if self.received:
            self._raised = True
            raise Interrupted(self.received)


def _stop_worker_processes() -> None:
    """Stop the local worker processes Beam started (`direct_running_mode=multi_processing`).

    On its way out the runner waits for each worker process to end, and an idle worker never
    does, so a stopped run would hang with its lock held. The workers are this process's
    descendants (read from /proc; elsewhere there is nothing to do); each gets SIGTERM.
    """
    parents: dict[int, list[int]] = {}
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The fields after the command name (which may hold spaces and parentheses).
        fields = stat.rsplit(b")", 1)[-1].split()
        if len(fields) > 1:
            parents.setdefault(int(fields[1]), []).append(int(entry))
    pending = list(parents.get(os.getpid(), []))
    while pending:
        pid = pending.pop()
        pending.extend(parents.get(pid, []))
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            continue


def _new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


def run_job(request: RunRequest, *, config: Config | None = None) -> dict[str, Any]:
    """Run the whole job; return the manifest. Raises a ConsentgateError with its exit code."""
    started = time.monotonic()
    config = config or load_config(override_file=request.config_file)
    if request.content_policy:
        config = config.with_policy(content_policy=request.content_policy)
    if request.source != "contract":
        config = config.with_policy(input_source=request.source)
    key = key_from_env()
    as_of = request.as_of or _end_of(request.date) or datetime.now(UTC)
    request = resolve_paths(request, config)
    assert request.out is not None
    options = pipeline_options(request.beam_args)
    # Remote paths (s3://, gs://) need the Beam options (endpoints, credentials) before any
    # file is listed; the pipeline sets them again for its workers.
    FileSystems.set_options(options)
    check_out_apart(request.inputs, request.out)
    decisions = 0
    if request.consent:
        if not FileSystems.exists(request.consent):
            raise InputMissing(
                f"--consent {request.consent}: no such file (has the day's ledger landed?)"
            )
        decisions = estimate_decisions(request.consent)
    # A ledger past this size is joined by key instead of shipped whole to every worker.
    consent_join = decisions > config.policy.consent_side_input_max_decisions
    inputs = expand_inputs(
        request.inputs, exclude=[request.consent] if request.consent else [], out=request.out
    )

    check_suite_types(config.expectations)  # the gate's; imports GE, so after the quick checks
    folder = RunFolder(request.out)
    folder.check_links()  # before the lock, the Beam job or any write: exit 2 names the link
    run_id = _new_run_id()
    lock = PartitionLock(folder.root, run_id, config.schedule.lock_stale_after_s)
    with StopSignals() as signals:
        try:
            with signals.held():
                lock.acquire()
            return _run_locked(
                request,
                config,
                key,
                inputs,
                options,
                folder,
                run_id,
                as_of,
                consent_join,
                started,
                signals,
            )
        except OSError as exc:  # a full disk, an unwritable --out: nothing was published
            raise RunFailed(f"run {run_id} failed writing {folder.root}: {exc}") from None
        finally:
            with signals.held(act_after=False):
                lock.release()


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
    signals: StopSignals,
) -> dict[str, Any]:
    with signals.held():
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
        "source": config.policy.input_source,
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
        return _stage_gate_publish(
            request,
            config,
            key,
            inputs,
            options,
            folder,
            run_id,
            as_of,
            consent_join,
            started,
            signals,
            staging,
            manifest,
            lineage,
        )
    except BaseException:
        if signals.received is None:
            raise
        # Stopped by a signal (whatever Beam made of it on the way out): the closing records
        # say so, all of them, and nothing new is published.
        with signals.held(act_after=False):
            progress.finish()
            _close_unpublished(
                folder, manifest, lineage, started, "interrupted", f"stopped by {signals.received}"
            )
        raise Interrupted(signals.received) from None


def _stage_gate_publish(
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
    signals: StopSignals,
    staging: str,
    manifest: dict[str, Any],
    lineage: RunLineage | None,
) -> dict[str, Any]:
    try:
        with (
            _worker_output(staging, request.quiet and not folder.remote),
            beam.Pipeline(options=options) as pipeline,
        ):
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
        stages = stage_seconds(pipeline.result)
        summary = json.loads(storage.read_bytes(storage.join(staging, SUMMARY_NAME)))
    except Exception as exc:
        if signals.received:
            raise
        progress.finish()
        error = f"{type(exc).__name__}: {exc}".replace(key.decode("utf-8", "replace"), "***")
        with signals.held():
            _close_unpublished(folder, manifest, lineage, started, "failed", error)
        raise RunFailed(f"run {run_id} failed: {error}") from None
    finally:
        # Chunks a large run parked on disk hold raw records: never left beside the outputs.
        storage.delete_tree(spill_folder(staging))

    counts = summary["counts"]
    workers_keys = counts.pop(WORKER_KEY_FINGERPRINTS, [])
    mismatch = worker_key_mismatch(manifest["pseudonym_key_fingerprint"], workers_keys)
    if mismatch is not None:
        manifest["worker_key_fingerprints"] = workers_keys
        with signals.held():
            _close_unpublished(folder, manifest, lineage, started, "failed", mismatch)
        raise ConfigError(f"run {run_id}: {mismatch}")
    _LOG.info("run %s: staged; checking the gate's results", run_id)
    checked_from = time.perf_counter()
    files = counts.pop("files", [])
    manifest_counts(counts)
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
    stages["gate"] = stages.get("gate", 0.0) + time.perf_counter() - checked_from
    published_from = time.perf_counter()
    manifest.update(
        counts=counts,
        gate={"passed": passed, "checks": gate, "evidence": evidence},
        files=files,
        duration_s=round(time.monotonic() - started, 3),
    )
    # A signal Beam caught on its way out still stops the run before anything is published.
    signals.check()
    if passed:
        manifest["status"] = "published"
        manifest["published_run_id"] = run_id
        write_report(folder.root, manifest)
        # Past this point the run is finished: a signal now changes nothing.
        with signals.held(act_after=False):
            folder.publish(run_id, manifest)
            _replace_report(folder, run_id)
            _emit(lineage, "complete", manifest)
        stages["publish"] = time.perf_counter() - published_from
        _LOG.info("run %s: stage seconds %s", run_id, json.dumps(stages, sort_keys=True))
        return manifest
    manifest["status"] = "gate_failed"
    write_report(folder.root, manifest)
    with signals.held():
        folder.write_manifest(manifest)
        _replace_report(folder, run_id)
        _emit(lineage, "fail", manifest, "the leak gate failed")
    failed = [name for name, check in gate.items() if not check["passed"]]
    raise GateFailed(
        f"run {run_id}: the leak gate failed ({', '.join(failed)}); nothing was published"
    )


def worker_key_mismatch(expected: str, reported: Sequence[str]) -> str | None:
    """Why the run must not publish when the job's workers pseudonymised with another key
    than the launcher's (`expected`: its fingerprint; `reported`: the workers'), else None.

    The manifest names the launcher's key; pseudonyms made under another would be published
    under the wrong fingerprint (a remote runner's workers read the key from their own
    environment).
    """
    others = sorted(set(reported) - {expected})
    if not others:
        return None
    return (
        f"the job's workers pseudonymised with another key than this machine's {KEY_ENV} (key "
        f"fingerprint {', '.join(others)}, here {expected}); nothing was published. Give the "
        f"workers the launcher's key (on the local Flink cluster: `make flink-up` with the same "
        f"{KEY_ENV}) and run again"
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


@contextmanager
def _worker_output(staging: str, quiet: bool) -> Iterator[None]:
    """Under --quiet, what the job's processes write to stderr while the pipeline runs goes to
    `.runs/<run_id>/workers.log` instead of the terminal.

    Beam's local worker processes (`direct_running_mode=multi_processing`) log at INFO to the
    stderr they inherit, before any option or logging set-up of ours can reach them; the file
    descriptor is the one thing they share with this process. Errors still end the command
    with the one-line message, after the terminal is given back.
    """
    if not quiet:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    log = os.open(
        os.path.join(staging, "workers.log"),
        os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW,
        0o600,
    )
    try:
        os.dup2(log, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(log)


def _close_unpublished(
    folder: RunFolder,
    manifest: dict[str, Any],
    lineage: RunLineage | None,
    started: float,
    status: str,
    error: str,
) -> None:
    """The records of a run that stopped before its gate: manifest and report agree on it.

    The report is written first (in the staging folder), then the manifest, then the report is
    copied beside it; the published links are not touched.
    """
    manifest.update(status=status, error=error, duration_s=round(time.monotonic() - started, 3))
    try:
        write_report(folder.root, manifest)
    except Exception as exc:  # the report is an account of the run, never its cause of failure
        _LOG.warning("report of run %s not written (%s)", manifest["run_id"], type(exc).__name__)
        folder.write_manifest(manifest)
    else:
        folder.write_manifest(manifest)
        _replace_report(folder, manifest["run_id"])
    _emit(lineage, "fail", manifest, error)


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
