"""Scheduled use, as cron or Airflow would drive it: dated partitions, identical reruns with one
and two worker processes, one run per partition at a time, and backfills past a broken day."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from pipelines.generate import generate
from pipelines.lock import LOCK_NAME

pytestmark = pytest.mark.e2e

KEY = "schedule-test-key-" + "s" * 32
DAYS = ("2026-11-24", "2026-11-25", "2026-11-26")


def consentgate(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONSENTGATE_PSEUDONYM_KEY": KEY}
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def partitions(tmp_path_factory) -> Path:
    """input/dt=<day>/ for three days: three shards each, and the day's consent ledger."""
    root = tmp_path_factory.mktemp("sched")
    for i, day in enumerate(DAYS):
        generate(root / "input" / f"dt={day}", events=1500, seed=20 + i, shards=3, date=day)
    return root


@pytest.fixture(scope="module")
def schedule_config(partitions) -> Path:
    path = partitions / "schedule.json"
    path.write_text(
        json.dumps(
            {
                "schedule": {
                    "input": str(partitions / "input" / "dt={date}" / "events-*.jsonl.gz"),
                    "consent": str(partitions / "input" / "dt={date}" / "consent.jsonl"),
                    "out": str(partitions / "out" / "dt={date}"),
                }
            }
        )
    )
    return path


def training_files(out: Path) -> dict[str, bytes]:
    root = out / "training"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


@pytest.fixture(scope="module")
def dated_run(partitions, schedule_config) -> Path:
    """The first day run from the config's templates alone, as cron would call it (through the
    CLI's entry point, in this process: the reruns below go through fresh interpreters)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONSENTGATE_PSEUDONYM_KEY", KEY)
        assert main(["-q", "run", "--config", str(schedule_config), "--date", DAYS[0]]) == 0
    return partitions / "out" / f"dt={DAYS[0]}"


def test_date_fills_the_config_templates_and_sets_the_consent_as_of(dated_run):
    manifest = json.loads((dated_run / "manifest.json").read_text())
    assert manifest["status"] == "published"
    assert manifest["date"] == DAYS[0]
    assert manifest["consent_as_of"] == "2026-11-25T00:00:00+00:00"
    assert manifest["consent"].endswith(f"dt={DAYS[0]}/consent.jsonl")
    assert [Path(i["path"]).name for i in manifest["inputs"]] == [
        f"events-0000{i}-of-00003.jsonl.gz" for i in range(3)
    ]


def test_a_template_without_date_is_refused_with_exit_2(partitions, capsys, monkeypatch):
    monkeypatch.setenv("CONSENTGATE_PSEUDONYM_KEY", KEY)
    code = main(["run", "--input", str(partitions / "input" / "dt={date}"), "--out", "x"])
    assert code == 2
    assert "give --date" in capsys.readouterr().err


def test_reruns_after_a_killed_run_give_byte_identical_training_with_one_and_two_workers(
    dated_run, schedule_config, tmp_path
):
    published = training_files(dated_run)
    assert len(published) >= 10
    first = json.loads((dated_run / "manifest.json").read_text())["published_run_id"]
    # A run that died holding the lock (its pid is gone): the rerun takes the lock over.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (dated_run / LOCK_NAME).write_text(
        json.dumps(
            {
                "run_id": "20261127T000000000000Z-dead00",
                "pid": dead.pid,
                "host": os.uname().nodename,
                "started_at": "2026-11-27T00:00:00+00:00",
                "heartbeat_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
            }
        )
    )
    again = consentgate("run", "--config", str(schedule_config), "--date", DAYS[0])
    assert again.returncode == 0, again.stderr
    assert "taking over the lock of run 20261127T000000000000Z-dead00" in again.stderr
    assert "no longer running" in again.stderr
    assert training_files(dated_run) == published
    manifest = json.loads((dated_run / "manifest.json").read_text())
    # A rerun replaces the partition: the link points at the new run only, rows are not added.
    assert manifest["published_run_id"] != first
    rows = sum(pq.read_metadata(dated_run / "training" / f).num_rows for f in published)
    assert rows == manifest["counts"]["training"]

    # Into another folder, with two worker processes: the same bytes again.
    multi = consentgate(
        "-q",
        "run",
        "--config",
        str(schedule_config),
        "--date",
        DAYS[0],
        "--out",
        str(tmp_path / "b"),
        "--",
        "--direct_num_workers=2",
        "--direct_running_mode=multi_processing",
    )
    assert multi.returncode == 0, multi.stderr
    assert training_files(tmp_path / "b") == published


def test_a_second_run_on_the_same_partition_is_refused_while_the_first_runs(partitions, tmp_path):
    day = partitions / "input" / f"dt={DAYS[2]}" / "events-*.jsonl.gz"
    out = tmp_path / "out"
    env = {**os.environ, "CONSENTGATE_PSEUDONYM_KEY": KEY}
    first = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "-q", "run", "--input", str(day), "--out", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (out / LOCK_NAME).exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.05)
        holder = json.loads((out / LOCK_NAME).read_text() or "{}")
        second = consentgate("run", "--input", str(day), "--out", str(out))
        assert second.returncode == 2, second.stderr
        assert "is writing this output partition" in second.stderr
        assert f"pid {first.pid}" in second.stderr
        if holder:
            assert holder["run_id"] in second.stderr
    finally:
        _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert not (out / LOCK_NAME).exists()
    assert json.loads((out / "manifest.json").read_text())["status"] == "published"


def test_backfill_reports_the_broken_day_and_publishes_the_others(
    partitions, tmp_path, monkeypatch, capsys
):
    # A copy of the three days, one of them with a truncated gzip shard.
    root = tmp_path / "input"
    shutil.copytree(partitions / "input", root)
    broken = root / f"dt={DAYS[1]}" / "events-00001-of-00003.jsonl.gz"
    whole = broken.read_bytes()
    broken.write_bytes(whole[: len(whole) // 2])
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "schedule": {
                    "input": str(root / "dt={date}" / "events-*.jsonl.gz"),
                    "consent": str(root / "dt={date}" / "consent.jsonl"),
                    "out": str(tmp_path / "out" / "dt={date}"),
                }
            }
        )
    )
    monkeypatch.setenv("CONSENTGATE_PSEUDONYM_KEY", KEY)
    code = main(["-q", "backfill", "--from", DAYS[0], "--to", DAYS[2], "--config", str(config)])
    stdout = capsys.readouterr().out
    assert code == 4, stdout
    table = stdout.splitlines()
    assert table[0].split()[:2] == ["date", "status"]
    status = {line.split()[0]: line.split()[1] for line in table[1:4]}
    assert status == {DAYS[0]: "published", DAYS[1]: "failed", DAYS[2]: "published"}
    assert "not a readable gzip file" in stdout
    assert "2 of 3 days published" in stdout
    for day, published in ((DAYS[0], True), (DAYS[1], False), (DAYS[2], True)):
        out = tmp_path / "out" / f"dt={day}"
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["status"] == ("published" if published else "failed")
        assert (out / "training").exists() == published


def test_a_backfill_into_one_undated_folder_is_refused(capsys):
    code = main(["backfill", "--from", DAYS[0], "--to", DAYS[1], "--out", "runs/all"])
    assert code == 2
    assert "needs {date}" in capsys.readouterr().err
