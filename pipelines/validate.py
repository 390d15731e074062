"""`consentgate validate RUN_DIR`: re-run the leak gate on a finished run's published outputs.

The run's manifest names its inputs; they are read again (for the content fingerprints and the
known identifiers), and the same `LeakGate` transform judges the files now under
`RUN_DIR/training/` and `RUN_DIR/audit/`. Nothing is written to the run folder.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import apache_beam as beam
import pyarrow.parquet as pq

from pipelines.config import Config
from pipelines.errors import InputError
from pipelines.gate.leak_gate import LeakGate
from pipelines.gate.verdict import consent_recheck, expectations_check, reconcile
from pipelines.pipeline import read_inputs
from pipelines.rules.deidentify import key_from_env
from pipelines.run import expand_inputs, pipeline_options
from pipelines.transforms.write import StagedChunk, StagedFile

__all__ = ["validate_run"]


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


def validate_run(
    config: Config, run_dir: str | Path, beam_args: Sequence[str] = ()
) -> dict[str, dict[str, Any]]:
    """Every gate check on the published outputs of `run_dir`, by name."""
    root = Path(run_dir)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise InputError(f"{manifest_path}: no manifest; is {run_dir} a run folder?")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    published = manifest.get("published_run_id")
    if not published:
        raise InputError(f"{run_dir}: nothing was ever published here")
    if manifest.get("run_id") != published:
        # The latest run failed; the published outputs are an earlier run's: check against
        # that run's own manifest (inputs, counts, policy), kept in its staging folder.
        manifest = json.loads((root / ".runs" / published / "manifest.json").read_text())
    key = key_from_env()
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
    if manifest.get("content_policy") == "per_participant" and manifest.get("consent"):
        as_of = datetime.fromisoformat(manifest["consent_as_of"])
        checks["consent_recheck"] = consent_recheck(
            config, manifest["consent"], str(root), key, as_of
        )
    return checks
