"""Which staged files share one Great Expectations run: files packed by input size, chunks in
runs of eight, one event type and table per run."""

from __future__ import annotations

from pipelines.gate.leak_gate import _suite_group, suite_file_groups
from pipelines.transforms.write import StagedFile

MB = 1 << 20


def test_small_files_share_a_group_and_a_large_one_starts_its_own():
    sizes = [10 * MB, 20 * MB, 30 * MB, 100 * MB, 5 * MB]
    assert suite_file_groups(sizes, budget=64 * MB) == {0: 0, 1: 0, 2: 0, 3: 1, 4: 2}
    assert suite_file_groups([]) == {}


def _staged(path: str, event_type: str = "qos.audio") -> StagedFile:
    return StagedFile("training", event_type, path, 10)


def test_files_of_one_group_and_chunk_run_share_a_key():
    groups = suite_file_groups([MB, MB, 100 * MB], budget=64 * MB)
    key = [
        _suite_group(_staged(f"x/part-{name}.parquet"), groups)
        for name in ("00000-00000", "00001-00007", "00001-00008", "00002-00000")
    ]
    assert key[0] == key[1]  # two small files, chunks 0 and 7: one run
    assert key[1] != key[2]  # chunk 8 starts the next run of eight
    assert key[0] != key[3]  # the large file is a group of its own
    other_type = _suite_group(_staged("x/part-00000-00000.parquet", "qos.video"), groups)
    assert other_type != key[0]


def test_without_groups_each_file_runs_alone_and_foreign_names_run_alone():
    assert _suite_group(_staged("x/part-00000-00000.parquet"), {}) != _suite_group(
        _staged("x/part-00001-00000.parquet"), {}
    )
    assert _suite_group(_staged("x/other.parquet"), {})[2] == "other"
