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


def test_date_fills_the_config_templates_and_sets_the_consent_as_of(partitions, schedule_config):
    done = consentgate("-q", "run", "--config", str(schedule_config), "--date", DAYS[0])
    assert done.returncode == 0, done.stderr
    manifest = json.loads((partitions / "out" / f"dt={DAYS[0]}" / "manifest.json").read_text())
    assert manifest["status"] == "published"
    assert manifest["date"] == DAYS[0]
    assert manifest["consent_as_of"] == "2026-11-25T00:00:00+00:00"
    assert manifest["consent"].endswith(f"dt={DAYS[0]}/consent.jsonl")
    assert [Path(i["path"]).name for i in manifest["inputs"]] == [
        f"events-0000{i}-of-00003.jsonl.gz" for i in range(3)
    ]


def test_a_template_without_date_is_refused_with_exit_2(partitions):
    done = consentgate("run", "--input", str(partitions / "input" / "dt={date}"), "--out", "x")
    assert done.returncode == 2
    assert "give --date" in done.stderr


def test_reruns_give_byte_identical_training_files_with_one_and_two_workers(partitions, tmp_path):
    day = partitions / "input" / f"dt={DAYS[1]}"
    common = ["--input", str(day), "--consent", str(day / "consent.jsonl"), "--date", DAYS[1]]
    first = consentgate("-q", "run", *common, "--out", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr
    published = training_files(tmp_path / "a")
    assert len(published) >= 10

    again = consentgate("-q", "run", *common, "--out", str(tmp_path / "a"))
    assert again.returncode == 0, again.stderr
    assert training_files(tmp_path / "a") == published
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    # A rerun replaces the partition: the links point at the new run only, rows are not added.
    assert manifest["published_run_id"] != manifest["previous_run_id"]
    rows = sum(pq.read_metadata(tmp_path / "a" / "training" / f).num_rows for f in published)
    assert rows == manifest["counts"]["training"]

    multi = consentgate(
        "-q",
        "run",
        *common,
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


def test_a_lock_left_by_a_dead_run_is_taken_over(partitions, tmp_path):
    day = partitions / "input" / f"dt={DAYS[2]}" / "events-*.jsonl.gz"
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK_NAME).write_text(
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
    done = consentgate("run", "--input", str(day), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "taking over the lock of run 20261127T000000000000Z-dead00" in done.stderr
    assert "no longer running" in done.stderr


def test_backfill_reports_the_broken_day_and_publishes_the_others(partitions, tmp_path):
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
    done = consentgate(
        "backfill", "--from", DAYS[0], "--to", DAYS[2], "--config", str(config), timeout=600
    )
    assert done.returncode == 4, done.stderr
    table = done.stdout.splitlines()
    assert table[0].split()[:2] == ["date", "status"]
    status = {line.split()[0]: line.split()[1] for line in table[1:4]}
    assert status == {DAYS[0]: "published", DAYS[1]: "failed", DAYS[2]: "published"}
    assert "not a readable gzip file" in done.stdout
    assert "2 of 3 days published" in done.stdout
    for day, published in ((DAYS[0], True), (DAYS[1], False), (DAYS[2], True)):
        out = tmp_path / "out" / f"dt={day}"
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["status"] == ("published" if published else "failed")
        assert (out / "training").exists() == published
