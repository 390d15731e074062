"""Decompression bombs: a few KB of gzip expanding to hundreds of thousands of tiny records.

Memory stays that of a chunk whatever the ratio (peak RSS of whole runs, measured), and the
per-file limits `policy.max_file_records` / `policy.max_decompressed_bytes` fail such a file
with its name and the limit (exit 4) instead of reading on.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from pipelines.transforms.read import InputFile, InputFileError, _ReadInputFile, count_records

KEY = "bomb-test-key-" + "b" * 32
MAX_LINE = 1 << 20


def _bomb(path: Path, lines: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(b"{}\n" * lines)
    return path


def _file(path: Path, fmt: str = "jsonl") -> InputFile:
    return InputFile(index=0, path=str(path), size=path.stat().st_size, format=fmt)


# Run one job in a fresh interpreter (the in-process runner: the job's memory is this process's)
# and print its peak resident set size in bytes.
_MEASURE = """
import resource, sys
from pipelines.cli import main
code = main(sys.argv[1:])
print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "EXIT", code)
"""


def _peak_rss(tmp_path: Path, bomb: Path, config: Path) -> int:
    out = tmp_path / f"out-{bomb.parent.name}"
    args = ["--out", str(out), "--config", str(config)]
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, "run", "--quiet", "--input", str(bomb), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "CONSENTGATE_PSEUDONYM_KEY": KEY},
        timeout=300,
    )
    words = done.stdout.split()
    assert "PEAK" in words and words[-1] == "0", done.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["input_records"] == manifest["counts"]["quarantine"]
    return int(words[words.index("PEAK") + 1])


@pytest.mark.e2e
def test_peak_memory_does_not_grow_with_the_records_of_a_bomb(tmp_path: Path):
    """100k and 600k records of `{}` (under 2 KB of gzip each): 500k more records cost under
    150 MB more at the peak (about 300 bytes a record at most). Before the fix each record
    held about 700 bytes: the larger run peaked some 350 MB above the smaller one."""
    small = _bomb(tmp_path / "small" / "events.jsonl.gz", 100_000)
    large = _bomb(tmp_path / "large" / "events.jsonl.gz", 600_000)
    assert large.stat().st_size < 4096
    assert count_records([_file(large)], 10**9) == 600_000
    config = tmp_path / "policy.json"
    # Above 300k records the chunks are spilled to disk rather than held for the side inputs:
    # the small run holds its chunks, the large one does not (the default is 2M records).
    config.write_text(json.dumps({"policy": {"reread_inputs_above_records": 300_000}}))
    peak_small = _peak_rss(tmp_path, small, config)
    peak_large = _peak_rss(tmp_path, large, config)
    grown = peak_large - peak_small
    print(f"peak RSS: 100k records {peak_small >> 20} MiB, 600k records {peak_large >> 20} MiB")
    assert grown < 150 << 20, f"{grown >> 20} MiB more for 500k more records"


@pytest.mark.parametrize(
    ("key", "limit"),
    [("max_file_records", 50_000), ("max_decompressed_bytes", 100_000)],
    ids=["records", "decompressed-bytes"],
)
def test_a_jsonl_file_over_a_per_file_limit_fails_naming_it(tmp_path: Path, key: str, limit: int):
    path = _bomb(tmp_path / "events.jsonl.gz", 200_000)
    limits = {"max_file_records": None, "max_decompressed_bytes": None, key: limit}
    reader = _ReadInputFile(100_000, MAX_LINE, "read", **limits)
    read = 0
    with pytest.raises(InputFileError, match=rf"events.jsonl.gz: .* {limit} \(policy.{key}\)"):
        for chunk in reader.process(_file(path)):
            read += len(chunk.lines or [])
    assert read < 200_000  # it stopped reading


@pytest.mark.parametrize(
    ("key", "limit"),
    [("max_file_records", 1000), ("max_decompressed_bytes", 1000)],
    ids=["records", "decompressed-bytes"],
)
def test_a_parquet_file_over_a_per_file_limit_fails_before_reading(
    tmp_path: Path, key: str, limit: int
):
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"event_id": [f"e{i}" for i in range(5000)]}), path)
    limits = {"max_file_records": None, "max_decompressed_bytes": None, key: limit}
    reader = _ReadInputFile(100_000, MAX_LINE, "read", **limits)
    with pytest.raises(InputFileError, match=rf"events.parquet: .* {limit} \(policy.{key}\)"):
        next(reader.process(_file(path, "parquet")))


def test_files_within_the_limits_are_read_whole(tmp_path: Path):
    """The paired case: at the limits exactly, every record comes out."""
    path = _bomb(tmp_path / "events.jsonl.gz", 20_000)
    reader = _ReadInputFile(7_000, MAX_LINE, "read", 20_000, 60_000)
    chunks = list(reader.process(_file(path)))
    assert [len(c.lines or []) for c in chunks] == [7_000, 7_000, 6_000]


def test_count_records_stops_once_past_the_threshold(tmp_path: Path):
    bomb = _bomb(tmp_path / "a.jsonl.gz", 3_000_000)
    table = tmp_path / "b.parquet"
    pq.write_table(pa.table({"x": list(range(1234))}), table)
    assert count_records([_file(table, "parquet")], 10**9) == 1234
    # Stops inside the bomb, one 1 MiB block past the threshold, rather than reading on.
    assert 1000 < count_records([_file(bomb)], 1000) <= (1 << 20) // 3 + 1


@pytest.mark.e2e
def test_a_run_over_the_record_limit_exits_4_naming_the_file(tmp_path: Path, capsys, monkeypatch):
    bomb = _bomb(tmp_path / "in" / "events.jsonl.gz", 30_000)
    config = tmp_path / "limits.json"
    config.write_text(json.dumps({"policy": {"max_file_records": 10_000}}))
    monkeypatch.setenv("CONSENTGATE_PSEUDONYM_KEY", KEY)
    out = tmp_path / "out"
    code = main(
        ["run", "--quiet", "--input", str(bomb), "--out", str(out), "--config", str(config)]
    )
    err = capsys.readouterr().err
    assert code == 4, err
    assert f"input {bomb}: holds more than 10000 (policy.max_file_records)" in err
    assert json.loads((out / "manifest.json").read_text())["status"] == "failed"
    assert not (out / "current").exists()
