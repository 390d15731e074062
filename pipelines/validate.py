"""`consentgate validate RUN_DIR`: re-run the leak gate on a finished run's published outputs.

The run's manifest names its inputs; they are read again (for the content fingerprints and the
known identifiers), and the same `LeakGate` transform judges the files now under
`RUN_DIR/.runs/<run_id>/training/` and `.../audit/` (for the published run, what
`RUN_DIR/training/` links to). Nothing is written to the run folder.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import apache_beam as beam
import pyarrow.parquet as pq

from pipelines.config import Config
from pipelines.errors import ConfigError, InputError
from pipelines.gate.expectations import check_suite_types
from pipelines.gate.leak_gate import LeakGate
from pipelines.gate.verdict import consent_recheck, expectations_check, reconcile
from pipelines.pipeline import read_inputs
from pipelines.rules.deidentify import KEY_ENV, key_fingerprint, key_from_env
from pipelines.run import expand_inputs, pipeline_options
from pipelines.transforms.write import StagedChunk, StagedFile

__all__ = ["chosen_run", "validate_run"]

_RUN_ID = re.compile(r"^[A-Za-z0-9._-]+$")


def _published_files(root: Path) -> list[StagedFile]:
    files = []
    for table, folder in (
        ("training", root / "training" / "service_generated"),
        ("consented_content", root / "training" / "consented_content"),
    ):
        for path in sorted(folder.glob("event_type=*/*.parquet")) if folder.is_dir() else []:
            event_type = path.parent.name.removeprefix("event_type=")
            rows = pq.ParquetFile(path).metadata.num_rows
            files.append(StagedFile(table, event_type, str(path), rows))
    for path in sorted((root / "audit").glob("*.parquet")) if (root / "audit").is_dir() else []:
        files.append(StagedFile("audit", None, str(path), pq.ParquetFile(path).metadata.num_rows))
    return files


def _write(verdict: dict[str, Any], path: str) -> None:
    Path(path).write_text(json.dumps(verdict, sort_keys=True), encoding="utf-8")


def chosen_run(run_dir: str | Path, run_id: str | None = None) -> dict[str, Any]:
    """The run `validate` checks: the latest run if it published, else only the one asked for.

    A folder whose latest run did not publish is refused without `run_id`: checking the older
    published run in silence would read as a verdict on the latest one.
    """
    root = Path(run_dir)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise InputError(f"{manifest_path}: no manifest; is {run_dir} a run folder?")
    try:
        latest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{manifest_path}: cannot be read ({exc})") from None
    published = latest.get("published_run_id")
    if run_id is None:
        status = latest.get("status", "unknown")
        if status != "published":
            hint = (
                f"--run-id {published} checks the published run, --run-id {latest.get('run_id')} "
                "the latest run's staged outputs"
                if published
                else f"nothing was ever published here; --run-id {latest.get('run_id')} checks "
                "the latest run's staged outputs"
            )
            raise InputError(
                f"{run_dir}: the latest run {latest.get('run_id')} did not publish (status "
                f"{status}); {hint}"
            )
        manifest = latest
    else:
        if not _RUN_ID.match(run_id):
            raise InputError(f"--run-id {run_id!r}: not a run id")
        path = root / ".runs" / run_id / "manifest.json"
        if not path.is_file():
            raise InputError(f"--run-id {run_id}: no such run under {root / '.runs'}")
        manifest = json.loads(path.read_text(encoding="utf-8"))
    return {
        "run_id": manifest["run_id"],
        "status": manifest.get("status", "unknown"),
        "published": manifest["run_id"] == published,
        "folder": str(root / ".runs" / manifest["run_id"]),
        "manifest": manifest,
    }


def validate_run(
    config: Config,
    run_dir: str | Path,
    beam_args: Sequence[str] = (),
    *,
    run_id: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Every gate check on the outputs of one run of `run_dir` (see `chosen_run`), by name."""
    run = chosen_run(run_dir, run_id)
    manifest, root = run["manifest"], Path(run["folder"])
    key = key_from_env()
    if manifest.get("pseudonym_key_fingerprint") != key_fingerprint(key):
        raise ConfigError(
            f"{KEY_ENV} is not the key run {run['run_id']} was published with (key fingerprint "
            f"{key_fingerprint(key)}, the manifest says {manifest.get('pseudonym_key_fingerprint')}"
            "): its pseudonyms cannot be re-checked; export that run's key"
        )
    check_suite_types(config.expectations)  # the gate's; imports GE, so after the quick checks
    # The inputs are read again as the run read them: in the shape it was told (`--source`).
    config = config.with_policy(input_source=manifest.get("source") or "contract")
    inputs = expand_inputs([i["path"] for i in manifest.get("inputs", [])])
    files = _published_files(root)
    with tempfile.TemporaryDirectory() as scratch:
        out = str(Path(scratch) / "verdict.json")
        with beam.Pipeline(options=pipeline_options(beam_args)) as pipeline:
            chunks, context = read_inputs(pipeline, config, inputs)
            staged = pipeline | "Published" >> beam.Create(
                [StagedChunk("published", tuple(files), {})]
            )
            (
                staged
                | "LeakGate" >> LeakGate(config, context, chunks)
                | "Write" >> beam.Map(_write, out)
            )
        verdict = json.loads(Path(out).read_text(encoding="utf-8"))
    checks = dict(verdict["checks"])
    checks["expectations"] = expectations_check(verdict["expectations"])
    checks["training_rows_reconcile"] = reconcile(
        [{"table": f.table, "rows": f.rows} for f in files], manifest.get("counts", {})
    )
    # After a purge, the remaining consented rows are held to the purge's ledger and time.
    judged = (manifest.get("purges") or [manifest])[-1]
    if manifest.get("content_policy") == "per_participant" and judged.get("consent"):
        as_of = datetime.fromisoformat(judged["consent_as_of"])
        checks["consent_recheck"] = consent_recheck(
            config, judged["consent"], str(root), key, as_of
        )
    return checks
