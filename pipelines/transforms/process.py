"""DetectLeaks, RouteRecords and Deidentify: the per-chunk stages between classify and write."""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam
from apache_beam.pvalue import AsSingleton

from pipelines.chunk import ChunkOutputs, EventChunk
from pipelines.config import Config
from pipelines.gate.rows import GateTwin
from pipelines.rules.deidentify import pseudonymizer_from_env
from pipelines.rules.route import DedupVerdicts
from pipelines.stage_times import timed
from pipelines.transforms.context import RunContext

__all__ = ["WORKER_KEY_FINGERPRINTS", "Deidentify", "DetectLeaks", "RouteRecords"]

# The counts key under which each chunk reports the fingerprint of the key its worker
# pseudonymised with; the counts' sum is the sorted set of them (the launcher compares it with
# its own key's, and pops it before the counts reach the manifest).
WORKER_KEY_FINGERPRINTS = "worker_key_fingerprints"


@beam.typehints.with_output_types(EventChunk)
class _Detect(beam.DoFn):
    def __init__(self, config: Config) -> None:
        self.config = config

    def setup(self) -> None:
        self.contract = self.config.contract()

    @timed("detect")
    def process(self, chunk: EventChunk, context: RunContext) -> Iterator[EventChunk]:
        yield chunk.with_findings(
            self.config, self.contract, context.known, context.echo, context.strings
        )


class DetectLeaks(beam.PTransform):
    """Scan service records' text fields against the detectors and the run's context."""

    def __init__(self, config: Config, context: beam.PCollection) -> None:
        super().__init__()
        self.config = config
        self.context = context

    def expand(self, chunks: beam.PCollection) -> beam.PCollection:
        return chunks | "Scan" >> beam.ParDo(_Detect(self.config), AsSingleton(self.context))


@beam.typehints.with_output_types(EventChunk)
class _Route(beam.DoFn):
    def __init__(self, config: Config) -> None:
        self.config = config

    def setup(self) -> None:
        self.contract = self.config.contract()

    @timed("route")
    def process(self, chunk: EventChunk, verdicts: DedupVerdicts) -> Iterator[EventChunk]:
        yield chunk.routed(self.config, self.contract, verdicts)


class RouteRecords(beam.PTransform):
    """Give every record a destination and a reason, default deny."""

    def __init__(self, config: Config, verdicts: beam.PCollection) -> None:
        super().__init__()
        self.config = config
        self.verdicts = verdicts

    def expand(self, chunks: beam.PCollection) -> beam.PCollection:
        return chunks | "Decide" >> beam.ParDo(_Route(self.config), AsSingleton(self.verdicts))


@beam.typehints.with_output_types(ChunkOutputs)
class _Deidentify(beam.DoFn):
    def __init__(self, config: Config) -> None:
        self.config = config

    def setup(self) -> None:
        # The key is read on the worker, from its environment; it never travels in the graph.
        self.contract = self.config.contract()
        self.pseudonyms = pseudonymizer_from_env(self.config.deidentify)

    @timed("deidentify")
    def process(
        self, chunk: EventChunk, verdicts: DedupVerdicts, context: RunContext
    ) -> Iterator[ChunkOutputs]:
        twin = GateTwin.build(
            self.config.schemas,
            self.config.expectations,
            context.known,
            context.prints,
            strings=context.strings,
            registry=self.config.strings,
            pseudonym_pattern=self.pseudonyms.pattern,
        )
        out = chunk.outputs(
            self.config,
            self.contract,
            self.pseudonyms,
            verdicts,
            twin,
            context.known,
            strings=context.strings,
        )
        out.counts[WORKER_KEY_FINGERPRINTS] = [self.pseudonyms.key_fingerprint]
        yield out


class Deidentify(beam.PTransform):
    """Routed chunks -> output rows: pseudonymised and generalised training rows, consented
    content redacted of the run's known identifiers and what else points at people, restricted
    manifest rows without content, quarantine rows, and one audit row per record.

    The gate's row checks run on the de-identified rows before they leave (see `GateTwin`): a
    row one of them fails is quarantined, not staged.
    """

    def __init__(
        self, config: Config, verdicts: beam.PCollection, context: beam.PCollection
    ) -> None:
        super().__init__()
        self.config = config
        self.verdicts = verdicts
        self.context = context

    def expand(self, chunks: beam.PCollection) -> beam.PCollection:
        return chunks | "Materialise" >> beam.ParDo(
            _Deidentify(self.config), AsSingleton(self.verdicts), AsSingleton(self.context)
        )
