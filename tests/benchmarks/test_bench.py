"""The benchmark works: a tiny run of both formats and the floor. No timing is asserted."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.benchmarks import bench

pytestmark = pytest.mark.e2e

# Enough for every planted kind in each shard: the bench is tested here, not its speed.
EVENTS = 2_000


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    workdir = tmp_path_factory.mktemp("bench")
    code = bench.main(["--events", str(EVENTS), "--workdir", str(workdir), "--modes", "job,floor"])
    assert code == 0
    return json.loads((workdir / "bench.json").read_text())


def test_every_mode_and_format_is_measured(report):
    measured = {(r["mode"], r["format"]) for r in report["results"]}
    assert measured == {(m, f) for m in ("job", "floor") for f in ("jsonl", "parquet")}
    for row in report["results"]:
        assert row["events"] == EVENTS
        assert row["error"] is None
        assert row["returncode"] == 0
        assert row["wall_s"] > 0
        assert row["events_per_s"] > 0
        assert row["peak_rss_mb"] > 0
    assert set(report["ratios"]) == {"jsonl", "parquet"}
    assert all(v > 0 for entry in report["ratios"].values() for v in entry.values())


def test_the_job_published_every_record(report):
    for row in (r for r in report["results"] if r["mode"] == "job"):
        manifest = json.loads((Path(row["out"]) / "manifest.json").read_text())
        assert manifest["status"] == "published"
        assert manifest["counts"]["input_records"] == EVENTS
        assert manifest["counts"]["training"] > 0


def test_the_floor_keeps_only_service_generated_types(report):
    import pyarrow.parquet as pq

    kept = set(bench.service_event_types())
    assert kept and not any(t.startswith("content.") for t in kept)
    for row in (r for r in report["results"] if r["mode"] == "floor"):
        table = pq.read_table(row["out"])
        assert table.num_rows == row["rows_written"] > 0
        assert set(table.column("event_type").to_pylist()) <= kept


def test_input_sets_are_reused(tmp_path, capsys):
    say = capsys.readouterr
    first = bench.input_set(tmp_path, "jsonl", 1000, 3, 2, print)
    again = bench.input_set(tmp_path, "jsonl", 1000, 3, 2, print)
    assert not first.reused and again.reused
    assert "reusing jsonl input set" in say().out


def test_every_job_run_reports_its_stage_times(report):
    for row in (r for r in report["results"] if r["mode"] == "job"):
        stages = row["stage_us"]
        assert list(stages) == list(bench.STAGES)
        # Every stage of the data path ran on these records, so each took some time.
        for stage in ("read", "classify", "detect", "deidentify", "write", "gate", "publish"):
            assert stages[stage] > 0, stage
        # The stages' own time is part of the whole run's, never more than it.
        assert sum(stages.values()) < row["wall_s"] / row["events"] * 1e6
    assert "read" in bench.format_stages(report["results"])


def test_a_vendor_corpus_is_made_and_run_as_its_source(tmp_path):
    data = bench.input_set(tmp_path, "jsonl", 200, 3, 1, print, source="livekit-webhook")
    assert (data.label, data.source, data.reused) == ("livekit-webhook", "livekit-webhook", False)
    assert data.folder.name.startswith("livekit-webhook-n200-")
    assert bench._run_args(data, tmp_path / "out")[-2:] == ["--source", "livekit-webhook"]
    assert bench.input_set(tmp_path, "jsonl", 200, 3, 1, print, source="livekit-webhook").reused


def test_a_run_shorter_than_one_poll_still_has_its_peak_memory(tmp_path):
    # The poll never sees this child hold its 200 MB: it is read once, at start, then the
    # measure waits out a poll far longer than the child lives. The peak must still count it.
    hold = "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096])"
    env = {"PATH": "/usr/bin:/bin"}
    measured = bench.measure(
        [sys.executable, "-c", hold], log=tmp_path / "log", env=env, interval=60.0
    )
    assert measured.returncode == 0
    assert measured.peak_rss_bytes >= 200 * 2**20
    assert measured.wall_s < 60


def test_a_failing_run_keeps_its_exit_status(tmp_path):
    measured = bench.measure(
        [sys.executable, "-c", "raise SystemExit(3)"], log=tmp_path / "log", env={}, interval=0.05
    )
    assert measured.returncode == 3
