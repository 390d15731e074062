"""Spilled chunks: what is loaded back is the chunk that was spilled, table for table."""

from __future__ import annotations

import stat
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipelines.chunk import EventChunk
from pipelines.rules.classify import LOC
from pipelines.transforms.read import ClassifyEvents, ReadEvents
from pipelines.transforms.spill import LoadChunks, SpillChunks, load_chunk, spill_chunk
from tests.transforms.test_stages import RUNNER


def _chunk(config, spec_events, jsonl_file) -> EventChunk:
    broken = [b"{not json", b'{"event_type": "telemetry.qos_sample"}', b"[1, 2]"]
    source = jsonl_file("events.jsonl", [*spec_events, *broken])
    contract = config.contract()
    lines = [
        (number, line)
        for number, line in enumerate(Path(source.path).read_bytes().splitlines(), start=1)
    ]
    return EventChunk.from_lines(contract, 3, 7, source.path, lines)


def _same(a: EventChunk, b: EventChunk) -> None:
    assert (a.file_index, a.chunk_index, a.source, a.input_source) == (
        b.file_index,
        b.chunk_index,
        b.source,
        b.input_source,
    )
    assert list(a.tables) == list(b.tables)
    for name in a.tables:
        assert a.tables[name].schema == b.tables[name].schema, name
        assert a.tables[name].equals(b.tables[name]), name
    assert a.rejects.equals(b.rejects)


def test_a_spilled_chunk_loads_back_as_it_was(config, spec_events, jsonl_file, tmp_path):
    chunk = _chunk(config, spec_events, jsonl_file)
    assert len(chunk.tables) > 5 and chunk.rejects.num_rows == 3

    spilled = spill_chunk(chunk, str(tmp_path / "spill"))

    assert spilled.event_types == tuple(chunk.tables)
    _same(load_chunk(spilled), chunk)


def test_a_chunk_of_rejects_only_or_of_nothing_loads_back(
    config, spec_events, jsonl_file, tmp_path
):
    chunk = _chunk(config, spec_events, jsonl_file)
    for kept in (EventChunk(1, 2, "f", {}, chunk.rejects), EventChunk(1, 3, "f")):
        _same(load_chunk(spill_chunk(kept, str(tmp_path))), kept)


def test_spill_files_are_owner_only_and_never_written_through_a_link(
    config, spec_events, jsonl_file, tmp_path
):
    chunk = _chunk(config, spec_events, jsonl_file)
    folder = tmp_path / "spill"
    spilled = spill_chunk(chunk, str(folder))
    assert stat.S_IMODE(Path(spilled.path).stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700

    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"kept")
    Path(spilled.path).unlink()
    Path(spilled.path).symlink_to(elsewhere)
    spilled = spill_chunk(chunk, str(folder))  # a retried bundle meets a planted link
    assert elsewhere.read_bytes() == b"kept"
    assert not Path(spilled.path).is_symlink()
    assert stat.S_IMODE(Path(spilled.path).stat().st_mode) == 0o600
    _same(load_chunk(spilled), chunk)


def test_a_spill_file_missing_a_table_is_an_error_that_names_it(
    config, spec_events, jsonl_file, tmp_path
):
    chunk = _chunk(config, spec_events, jsonl_file)
    spilled = spill_chunk(chunk, str(tmp_path))
    shorter = spill_chunk(EventChunk(3, 7, chunk.source, {}, chunk.rejects), str(tmp_path / "b"))
    Path(spilled.path).write_bytes(Path(shorter.path).read_bytes())
    with pytest.raises(ValueError, match=r"03-00007\.arrows: 1 tables, expected"):
        load_chunk(spilled)


@pytest.mark.parametrize("kept", [3, 8, 200], ids=["in-a-length", "in-a-table", "short-table"])
def test_a_truncated_spill_file_is_an_error_that_names_it(
    config, spec_events, jsonl_file, tmp_path, kept
):
    spilled = spill_chunk(_chunk(config, spec_events, jsonl_file), str(tmp_path))
    whole = Path(spilled.path).read_bytes()
    Path(spilled.path).write_bytes(whole[: kept if kept < 100 else len(whole) - kept])
    with pytest.raises(ValueError, match=r"03-00007\.arrows: (unreadable|\d+ tables)"):
        load_chunk(spilled)


def test_the_spill_transforms_hand_on_every_record(config, spec_events, jsonl_file, tmp_path):
    source = jsonl_file("events.jsonl", [*spec_events, b"{not json"])
    folder = tmp_path / "spill"

    def records(chunk: EventChunk) -> list[int]:
        tables = [*chunk.tables.values(), chunk.rejects]
        return sorted(loc for t in tables for loc in t[LOC].to_pylist())

    with beam.Pipeline(runner=RUNNER) as p:
        chunks = (
            p
            | beam.Create([source])
            | ReadEvents(chunk_records=5, max_line_bytes=1 << 20)
            | ClassifyEvents(config)
        )
        loaded = chunks | SpillChunks(str(folder)) | LoadChunks()
        assert_that(
            loaded | "LoadedLocs" >> beam.FlatMap(records),
            equal_to(list(range(1, 23))),
        )

    assert len(list(folder.glob("*.arrows"))) == 5  # 22 records in chunks of 5
