"""Stage times count a stage's own work, not what its consumers do with its outputs."""

from __future__ import annotations

import time

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline

from pipelines.stage_times import stage_seconds, timed


class _Slow(beam.DoFn):
    @timed("detect")
    def process(self, item: int):
        time.sleep(0.05)
        yield item


class _Consumer(beam.DoFn):
    @timed("write")
    def process(self, item: int):
        time.sleep(0.2)
        yield item


def test_a_generator_stage_is_timed_without_its_consumers_time():
    pipeline = BeamTestPipeline(runner="FnApiRunner")
    _ = (
        pipeline
        | beam.Create([1, 2])
        | "Slow" >> beam.ParDo(_Slow())
        | "Consumer" >> beam.ParDo(_Consumer())
    )
    result = pipeline.run()
    result.wait_until_finish()
    seconds = stage_seconds(result)
    assert 0.1 <= seconds["detect"] < 0.3
    assert 0.4 <= seconds["write"] < 0.8


def test_an_unknown_stage_is_refused():
    with pytest.raises(ValueError, match="unknown stage"):
        timed("somewhere")
