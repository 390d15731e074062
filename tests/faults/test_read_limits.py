"""Reading hostile files: enormous lines, broken gzip, files that are not what their name says."""

from __future__ import annotations

import gzip
import tracemalloc
from pathlib import Path

import pytest

from pipelines.transforms.read import (
    InputFile,
    InputFileError,
    Oversized,
    _ReadInputFile,
    iter_lines,
)

MAX = 1024


def _lines(path: Path, max_line_bytes: int = MAX) -> list:
    return list(iter_lines(str(path), max_line_bytes))


@pytest.mark.parametrize("gz", [False, True])
def test_lines_over_the_limit_come_out_as_oversized_with_their_number(tmp_path: Path, gz: bool):
    body = b'{"a": 1}\n' + b"x" * (MAX + 1) + b"\n\n" + b"y" * MAX + b"\n" + b'{"b": 2}'
    path = tmp_path / ("in.jsonl.gz" if gz else "in.jsonl")
    path.write_bytes(gzip.compress(body) if gz else body)
    got = _lines(path)
    assert [n for n, _ in got] == [1, 2, 4, 5]
    assert got[0][1] == b'{"a": 1}'
    assert got[1][1] == Oversized(MAX + 1, b"x" * 1024)
    assert got[2][1] == b"y" * MAX  # exactly at the limit is still a line
    assert got[3][1] == b'{"b": 2}'  # no newline at the end


def test_a_line_spanning_many_blocks_is_measured_not_held(tmp_path: Path, monkeypatch):
    import pipelines.transforms.read as read

    monkeypatch.setattr(read, "_BLOCK", 4096)
    path = tmp_path / "in.jsonl"
    big = 8 * (1 << 20)
    with path.open("wb") as f:
        f.write(b'{"first": true}\n')
        for _ in range(big // 4096):
            f.write(b"z" * 4096)
        f.write(b"\n" + b'{"last": true}\n')
    tracemalloc.start()
    got = _lines(path, 1 << 20)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert [n for n, _ in got] == [1, 2, 3]
    assert got[1][1] == Oversized(big, b"z" * 1024)
    assert got[2][1] == b'{"last": true}'
    # The 8 MiB line was never assembled: peak memory stays near twice the 1 MiB limit.
    assert peak < 3 * (1 << 20), peak


def test_an_oversized_last_line_without_newline(tmp_path: Path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"{}\n" + b"q" * (MAX * 3))
    assert _lines(path) == [(1, b"{}"), (2, Oversized(MAX * 3, b"q" * 1024))]


def test_gz_that_is_not_gzip_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(b'{"event_id": "x"}\n')
    with pytest.raises(InputFileError, match=r"events.jsonl.gz: not a readable gzip file"):
        _lines(path)


def test_truncated_gzip_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "events.jsonl.gz"
    whole = gzip.compress(b'{"event_id": "x"}\n' * 5000)
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputFileError, match="not a readable gzip file"):
        _lines(path)


def test_parquet_that_is_not_parquet_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "events.parquet"
    path.write_bytes(b'{"event_id": "x"}\n' * 10)
    reader = _ReadInputFile(chunk_records=100, max_line_bytes=MAX, progress_name="read")
    file = InputFile(index=0, path=str(path), size=path.stat().st_size, format="parquet")
    with pytest.raises(InputFileError, match=r"events.parquet: not a readable Parquet file"):
        list(reader.process(file))
