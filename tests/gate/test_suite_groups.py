"""Which staged rows share one Great Expectations run: one run per partition (table kind, event
type) of the whole run, its files streamed in slices of bounded size."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.gate.leak_gate import _suite_slices, suite_partition
from pipelines.transforms.write import StagedFile


def _staged(path: str, event_type: str = "qos.audio", table: str = "training") -> StagedFile:
    return StagedFile(table, event_type, path, 10)


def test_every_file_of_a_partition_shares_one_key_whatever_its_input_file_or_chunk():
    keys = {
        suite_partition(_staged(f"x/part-{name}.parquet"))
        for name in ("00000-00000", "00001-00007", "00001-00008", "00042-00099")
    }
    assert keys == {("training", "qos.audio")}
    assert suite_partition(_staged("x/part-00000-00000.parquet", "qos.video")) != (
        "training",
        "qos.audio",
    )
    assert suite_partition(_staged("x/a.parquet", table="consented_content")) != (
        "training",
        "qos.audio",
    )


def _write(path: Path, ids: range, extra: bool = False) -> str:
    columns = {"event_id": pa.array([f"ev-{i}" for i in ids], pa.string())}
    if extra:
        columns["more"] = pa.array([1] * len(ids), pa.int64())
    pq.write_table(pa.table(columns), path, row_group_size=7)
    return str(path)


def test_slices_keep_every_row_in_order_and_none_exceeds_the_bound(tmp_path):
    paths = [_write(tmp_path / f"{n}.parquet", range(n * 100, n * 100 + 45)) for n in range(3)]
    slices = list(_suite_slices(paths, 20))
    assert [s.num_rows for s in slices] == [20, 20, 20, 20, 20, 20, 15]
    ids = [i for s in slices for i in s["event_id"].to_pylist()]
    expected = [f"ev-{n * 100 + i}" for n in range(3) for i in range(45)]
    assert ids == expected


def test_a_file_with_another_schema_runs_in_a_slice_of_its_own(tmp_path):
    paths = [
        _write(tmp_path / "a.parquet", range(5)),
        _write(tmp_path / "b.parquet", range(5, 8), extra=True),
        _write(tmp_path / "c.parquet", range(8, 10)),
    ]
    slices = list(_suite_slices(paths, 100))
    assert [(s.num_rows, s.column_names) for s in slices] == [
        (5, ["event_id"]),
        (3, ["event_id", "more"]),
        (2, ["event_id"]),
    ]


def test_an_empty_partition_still_yields_its_columns(tmp_path):
    slices = list(_suite_slices([_write(tmp_path / "e.parquet", range(0))], 100))
    assert [(s.num_rows, s.column_names) for s in slices] == [(0, ["event_id"])]
