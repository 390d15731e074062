"""LeakGate: the second line of defence, as one composite transform over the staged outputs.

Per file (in parallel, one shard at a time): the checks of `staged.py`, on every row. Per
partition (table kind, event type) of the whole run: one run of the kind's Great Expectations
suite over the partition's staged files. Across files, independent of the classifier's labels:
- ids: no training event id is one the audit sent elsewhere (quarantine, restricted), and no
  id appears twice in training; keyed by a hash bucket of the id, so only ids move;
- content fingerprints: no string value in a service training row shares a word window with a
  content record of the same account (accounts compared by pseudonym), shuffling only 64-bit
  hashes.
Everything ends in one dict: `{"checks": {name: result}, "expectations": {suite: result}}`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.pvalue import AsSingleton, TaggedOutput

from pipelines.chunk import EventChunk
from pipelines.config import Config
from pipelines.gate import results
from pipelines.gate.expectations import validate_table
from pipelines.gate.fingerprint import fingerprints_of_many
from pipelines.gate.rows import account_prints
from pipelines.gate.staged import CHECKS, TrainingRules, check_training_table, merge_expectations
from pipelines.rules.arrays import in_sorted, sorted_union, sorted_unique
from pipelines.rules.deidentify import pseudonymizer_from_env
from pipelines.stage_times import timed
from pipelines.transforms.context import RunContext
from pipelines.transforms.write import StagedChunk, StagedFile

__all__ = ["CROSS_CHECKS", "SUITE_RUN_ROWS", "LeakGate", "empty_verdict", "suite_partition"]

CROSS_CHECKS = ("ids_not_withheld", "ids_unique", "content_fingerprints")
_KIND = {"training": "service_generated", "consented_content": "consented_content"}
_IDS, _PRINTS, _SUITES = "ids", "prints", "suites"
# A Great Expectations run costs about half a second before it reads a row, so it runs once per
# partition (table kind, event type) of the whole run, over that partition's staged files read
# as record batches. Rows are handed to it in slices of at most this many: a pandas frame of
# half a million staged rows stays within a few hundred MB whatever the run's size, and a
# partition larger than that pays one more run per slice.
SUITE_RUN_ROWS = 500_000


def suite_partition(staged: StagedFile) -> tuple[str, str]:
    """The partition whose single suite run covers this staged file: (table, event type)."""
    return staged.table, staged.event_type or ""


def _suite_slices(paths: Iterable[str], max_rows: int) -> Iterator[pa.Table]:
    """The rows of `paths` (in the order given) as tables of at most `max_rows` rows, read a
    record batch at a time.

    Files of one partition share a schema unless something is wrong; a file whose schema
    differs starts a slice of its own, so the column expectations see every file's own columns.
    Each schema yields at least one slice, even with no rows, so its columns are still checked.
    """
    batches: list[pa.RecordBatch] = []
    schema: pa.Schema | None = None
    rows, shown = 0, False  # rows in `batches`; has a slice of `schema` been yielded?
    for path in paths:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            reader = pq.ParquetFile(f)
            if schema is not None and reader.schema_arrow != schema:
                if batches or not shown:
                    yield pa.Table.from_batches(batches, schema)
                batches, rows, shown = [], 0, False
            schema = reader.schema_arrow
            for batch in reader.iter_batches(batch_size=min(max_rows, 65_536)):
                while batch.num_rows:
                    part = batch.slice(0, max_rows - rows)
                    batches.append(part)
                    rows += part.num_rows
                    batch = batch.slice(part.num_rows)
                    if rows == max_rows:
                        yield pa.Table.from_batches(batches, schema)
                        batches, rows, shown = [], 0, True
    if schema is not None and (batches or not shown):
        yield pa.Table.from_batches(batches, schema)


class _RunSuite(beam.DoFn):
    """One Great Expectations run over one partition (table kind, event type) of the whole run,
    its staged files streamed in slices of at most `SUITE_RUN_ROWS` rows."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def setup(self) -> None:
        self.rules = _training_rules(self.config)

    @timed("gate")
    def process(self, item: tuple[tuple[str, str], Iterable[str]]) -> Iterator[dict]:
        (table_name, event_type), paths = item
        rules = self.rules[table_name]
        expectations: dict[str, Any] = {}
        for rows in _suite_slices(sorted(paths), SUITE_RUN_ROWS):
            result = validate_table(
                rows,
                kind=_KIND[table_name],
                event_type=event_type,
                columns=rules.columns.get(event_type, []),
                pseudonym_columns=rules.pseudonym_columns.get(event_type, []),
                templates=self.config.expectations,
            )
            expectations = merge_expectations(
                expectations, [(f"{_KIND[table_name]}/{event_type}", result)]
            )
        yield {"checks": {}, "expectations": expectations}


def empty_verdict() -> dict[str, Any]:
    return {"checks": results.new((*CHECKS, *CROSS_CHECKS)), "expectations": {}}


def _read(path: str, columns: list[str] | None = None) -> pa.Table:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return pq.read_table(f, columns=columns)


def _bucket_of(ids: list[str], buckets: int) -> np.ndarray:
    return np.fromiter((zlib.crc32(i.encode("utf-8")) % buckets for i in ids), np.int64, len(ids))


def _by_bucket(ids: list[str], buckets: int) -> Iterator[tuple[int, list[str]]]:
    if not ids:
        return
    of = _bucket_of(ids, buckets)
    array = np.array(ids, dtype=object)
    for bucket in sorted_unique(of).tolist():
        yield bucket, array[of == bucket].tolist()


def _training_rules(config: Config) -> dict[str, TrainingRules]:
    """What the gate knows of each staged table kind, from the schemas."""
    settings = config.deidentify
    return {
        table: TrainingRules.from_schemas(
            config.schemas, table, settings.pseudonym_prefix, settings.pseudonym_hex_chars
        )
        for table in _KIND
    }


class _CheckFile(beam.DoFn):
    """One staged training file: per-file checks and suite; ids and fingerprints for the joins."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def setup(self) -> None:
        self.rules = _training_rules(self.config)

    @timed("gate")
    def process(self, staged: StagedFile, context: RunContext) -> Iterator[Any]:
        table = _read(staged.path)
        event_type = staged.event_type or ""
        rules = self.rules[staged.table]
        where = f"{staged.table}/{event_type}/{staged.path.rsplit('/', 1)[-1]}"
        checks = check_training_table(
            table,
            where=where,
            event_type=event_type,
            rules=rules,
            known=context.known,
            strings=context.strings,
            registry=self.config.strings,
        )
        yield {"checks": checks, "expectations": {}}
        yield TaggedOutput(_SUITES, (suite_partition(staged), staged.path))
        if "event_id" in table.column_names:
            ids = table["event_id"].to_pylist()
            for bucket, part in _by_bucket(
                [i for i in ids if i is not None], self.config.policy.dedup_buckets
            ):
                yield TaggedOutput(_IDS, (bucket, ("training", part, where)))
        if staged.table == "training" and "account_id" in table.column_names:
            yield from (
                TaggedOutput(_PRINTS, item)
                for item in self._prints(table, rules, event_type, where)
            )

    def _prints(
        self, table: pa.Table, rules: TrainingRules, event_type: str, where: str
    ) -> Iterator[tuple[str, tuple]]:
        pseudonyms = set(rules.pseudonym_columns.get(event_type, []))
        texts = [
            n
            for n in table.column_names
            if n not in pseudonyms and table.schema.field(n).type == pa.string()
        ]
        found = [_column_prints(table[name]) for name in texts]
        hashes = np.concatenate([h for h, _ in found]) if found else np.empty(0, np.int64)
        if not hashes.size:
            return
        rows = np.concatenate([r for _, r in found])
        accounts = table["account_id"].combine_chunks().fill_null("").dictionary_encode()
        names = accounts.dictionary.to_pylist()
        codes = accounts.indices.to_numpy()[rows]
        # One item per account: sort the (hash, row) pairs by account and cut at each change.
        order = np.argsort(codes, kind="stable")
        codes, hashes, rows = codes[order], hashes[order], rows[order]
        starts = np.flatnonzero(np.diff(codes, prepend=-1)).tolist()
        for start, end in zip(starts, [*starts[1:], codes.size], strict=True):
            yield names[codes[start]], ("training", hashes[start:end], rows[start:end], where)


def _column_prints(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """The fingerprints of a string column and the row of each.

    Service text repeats (log templates, versions): each distinct value is fingerprinted once.
    """
    encoded = column.combine_chunks().dictionary_encode()
    all_hashes, sizes = fingerprints_of_many(encoded.dictionary.to_pylist())
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rows = np.flatnonzero(encoded.indices.is_valid().to_numpy(zero_copy_only=False))
    values = encoded.indices.drop_null().to_numpy()
    # Most service values are too short to fingerprint; only rows with prints are gathered.
    counts = sizes[values] if values.size else np.empty(0, np.int64)
    printed = counts > 0
    rows, values, counts = rows[printed], values[printed], counts[printed]
    if not rows.size:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    # The prints of each row's value, row by row: positions in `all_hashes`.
    first = np.repeat(starts[values] - np.cumsum(counts) + counts, counts)
    hashes = all_hashes[first + np.arange(int(counts.sum()))]
    return hashes, np.repeat(rows, counts)


class _AuditIds(beam.DoFn):
    """Ids the audit table sent anywhere but training, bucketed like the training ids: raw
    (as consented content keeps them) and pseudonymised (as service training publishes them)."""

    def __init__(self, buckets: int) -> None:
        self.buckets = buckets

    @timed("gate")
    def process(self, staged: StagedFile) -> Iterator[tuple[int, tuple]]:
        audit = _read(staged.path, ["event_id", "event_pseudonym", "destination"])
        withheld = audit.filter(
            pc.and_(
                pc.is_valid(audit["event_id"]),
                pc.is_in(audit["destination"], pa.array(["quarantine", "restricted"])),
            )
        )
        ids = withheld["event_id"].to_pylist() + withheld["event_pseudonym"].to_pylist()
        for bucket, part in _by_bucket(ids, self.buckets):
            yield bucket, ("withheld", part, staged.path.rsplit("/", 1)[-1])


class _ContentPrints(beam.DoFn):
    """Fingerprints of every content field of every input record, by pseudonymised account.

    Content fields are those the contract's schemas call content, whatever the run's
    taxonomy config says about record classes.
    """

    def __init__(self, config: Config) -> None:
        self.config = config

    def setup(self) -> None:
        self.contract = self.config.contract()
        self.pseudonyms = pseudonymizer_from_env(self.config.deidentify)

    @timed("gate")
    def process(self, chunk: EventChunk) -> Iterator[tuple[str, tuple]]:
        pairs: list[tuple[str | None, Any]] = []
        for name, table in chunk.tables.items():
            fields = [f for f in self.contract.event_types[name].fields if f.category == "content"]
            if not fields:
                continue
            accounts = self.pseudonyms.array(table["account_id"]).to_pylist()
            for spec in fields:
                pairs.extend(zip(accounts, table[spec.name].to_pylist(), strict=True))
        for account, hashes in account_prints(iter(pairs)).items():
            yield account, ("content", hashes)


@timed("gate")
def _judge_ids(item: tuple[int, Iterable[tuple]]) -> dict[str, Any]:
    _, parts = item
    seen: dict[str, str] = {}
    withheld: set[str] = set()
    found = results.new(("ids_not_withheld", "ids_unique"))
    for kind, ids, where in parts:
        if kind == "withheld":
            withheld.update(ids)
            continue
        found["ids_not_withheld"]["rows_checked"] += len(ids)
        found["ids_unique"]["rows_checked"] += len(ids)
        for event_id in ids:
            if event_id in seen:
                results.fail(found, "ids_unique", 1, f"{where}: an id also in {seen[event_id]}")
            seen[event_id] = where
    leaked = sorted(set(seen) & withheld)
    for event_id in leaked:
        results.fail(found, "ids_not_withheld", 1, f"{seen[event_id]}: an id the audit withheld")
    return {"checks": found, "expectations": {}}


@timed("gate")
def _judge_prints(item: tuple[str, Iterable[tuple]]) -> dict[str, Any]:
    _, parts = item
    content: list[np.ndarray] = []
    training: list[tuple[np.ndarray, np.ndarray, str]] = []
    for part in parts:
        if part[0] == "content":
            content.append(part[1])
        else:
            training.append(part[1:])
    found = results.new(("content_fingerprints",))
    # Each part is sorted and distinct already (`_ContentPrints`); most accounts have one.
    known = sorted_union(content)
    for hashes, rows, where in training:
        found["content_fingerprints"]["rows_checked"] += int(sorted_unique(rows).size)
        hit = in_sorted(known, hashes)
        if hit.any():
            bad_rows = sorted_unique(rows[hit])
            results.fail(
                found,
                "content_fingerprints",
                int(bad_rows.size),
                f"{where}: rows {bad_rows[:5].tolist()} repeat content of the same account",
            )
    return {"checks": found, "expectations": {}}


class _MergeVerdicts(beam.CombineFn):
    def create_accumulator(self) -> dict[str, Any]:
        return empty_verdict()

    def add_input(self, acc: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        return {
            "checks": results.merge(acc["checks"], item["checks"]),
            "expectations": merge_expectations(acc["expectations"], item["expectations"].items()),
        }

    def merge_accumulators(self, accs: Iterable[dict[str, Any]]) -> dict[str, Any]:
        out = empty_verdict()
        for acc in accs:
            out = self.add_input(out, acc)
        return out

    def extract_output(self, acc: dict[str, Any]) -> dict[str, Any]:
        return acc


def _files(staged: StagedChunk, tables: tuple[str, ...]) -> Iterator[StagedFile]:
    yield from (f for f in staged.files if f.table in tables)


class LeakGate(beam.PTransform):
    """Staged outputs (+ the input chunks, for content) -> one verdict dict."""

    def __init__(
        self,
        config: Config,
        context: beam.PCollection,
        chunks: beam.PCollection,
    ) -> None:
        super().__init__()
        self.config = config
        self.context = context
        self.chunks = chunks

    def expand(self, staged: beam.PCollection) -> beam.PCollection:
        buckets = self.config.policy.dedup_buckets
        checked = (
            staged
            | "TrainingFiles" >> beam.FlatMap(_files, tuple(_KIND))
            | "CheckFile"
            >> beam.ParDo(_CheckFile(self.config), AsSingleton(self.context)).with_outputs(
                _IDS, _PRINTS, _SUITES, main="verdicts"
            )
        )
        suites = (
            checked[_SUITES]
            | "GroupSuiteRuns" >> beam.GroupByKey()
            | "RunSuites" >> beam.ParDo(_RunSuite(self.config))
        )
        withheld = (
            staged
            | "AuditFiles" >> beam.FlatMap(_files, ("audit",))
            | "WithheldIds" >> beam.ParDo(_AuditIds(buckets))
        )
        ids = (
            (checked[_IDS], withheld)
            | "AllIds" >> beam.Flatten()
            | "GroupIds" >> beam.GroupByKey()
            | "JudgeIds" >> beam.Map(_judge_ids)
        )
        content = self.chunks | "ContentPrints" >> beam.ParDo(_ContentPrints(self.config))
        prints = (
            (checked[_PRINTS], content)
            | "AllPrints" >> beam.Flatten()
            | "GroupPrints" >> beam.GroupByKey()
            | "JudgePrints" >> beam.Map(_judge_prints)
        )
        return (
            (checked["verdicts"], suites, ids, prints)
            | "AllVerdicts" >> beam.Flatten()
            | "Merge" >> beam.CombineGlobally(_MergeVerdicts())
        )
