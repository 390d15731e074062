"""Chunks move between stages under ChunkCoder, and Beam's size sampling never encodes them."""

from __future__ import annotations

import pickle
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.coders import registry

from pipelines.chunk import ChunkOutputs, EventChunk
from pipelines.pipeline import build
from pipelines.transforms.coders import ChunkCoder, register_chunk_coders
from pipelines.transforms.read import RawChunk
from tests.transforms.test_stages import RUNNER


def _event_chunk(config, spec_events, jsonl_file) -> EventChunk:
    source = jsonl_file("events.jsonl", [*spec_events, b"{not json"])
    lines = list(enumerate(Path(source.path).read_bytes().splitlines(), start=1))
    return EventChunk.from_lines(config.contract(), 0, 0, source.path, lines)


def test_a_chunk_round_trips_and_its_size_is_estimated_without_encoding_it(
    config, spec_events, jsonl_file, monkeypatch
):
    chunk = _event_chunk(config, spec_events, jsonl_file)
    coder = ChunkCoder()
    back = coder.decode(coder.encode(chunk))
    assert list(back.tables) == list(chunk.tables)
    assert all(back.tables[n].equals(t) for n, t in chunk.tables.items())
    assert back.rejects.equals(chunk.rejects)

    def refuse(*args, **kwargs):
        raise AssertionError("the size estimate encoded the chunk")

    monkeypatch.setattr(pickle, "dumps", refuse)
    held = sum(t.nbytes for t in chunk.tables.values()) + chunk.rejects.nbytes
    assert coder.estimate_size(chunk) == held > 0
    # What Beam's samplers call: the coder impl's estimate, not an encoding.
    size, observables = coder.get_impl().get_estimated_size_and_observables(chunk)
    assert (size, observables) == (held, [])


def test_raw_chunks_and_chunk_outputs_are_estimated_from_what_they_hold(tmp_path):
    coder = ChunkCoder()
    raw = RawChunk(file=None, chunk_index=0, lines=[(1, b"abc")], nbytes=3)  # type: ignore[arg-type]
    assert coder.estimate_size(raw) == 3
    table = pa.table({"a": pa.array(range(1000), pa.int64())})
    outputs = ChunkOutputs("00000-00000", {"t": table}, {}, table, table, table, {})
    assert coder.estimate_size(outputs) == 4 * table.nbytes


@pytest.mark.parametrize("spill", [False, True], ids=["held", "spilled"])
def test_every_pcollection_of_chunks_is_coded_by_chunk_coder(
    config, spec_events, jsonl_file, tmp_path, spill
):
    source = jsonl_file("events.jsonl", spec_events)
    if spill:
        config = config.with_policy(reread_inputs_above_records=0)
    pipeline = beam.Pipeline(runner=RUNNER)
    build(pipeline, config, [source], str(tmp_path / "staging"), as_of=0)
    register_chunk_coders()

    produced: dict[str, type] = {}

    class Outputs(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node):
            for pcoll in node.outputs.values():
                produced[node.full_label] = pcoll.element_type

    pipeline.visit(Outputs())
    chunk_types = (RawChunk, EventChunk, ChunkOutputs)
    carrying = {label: t for label, t in produced.items() if t in chunk_types}
    stages = ("ReadInputFile", "CheckAndType", "Scan", "ApplyConsent/Decide", "RouteRecords")
    for stage in (*stages, "Materialise", *(["LoadChunk"] if spill else [])):
        assert any(stage in label for label in carrying), stage
    for element_type in carrying.values():
        assert isinstance(registry.get_coder(element_type), ChunkCoder)
