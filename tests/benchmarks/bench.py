"""Throughput of the whole job against a plain floor (`make bench`).

    python -m tests.benchmarks.bench [--events N] [--workdir DIR] [--modes job,floor]
                                     [--formats jsonl,parquet] [--multiprocess]
                                     [--scaling 100000,1000000] [--profile] [--runner flink]

Generates one JSON Lines (gzip) input set and one Parquet input set with `consentgate generate`
(same N, seed and shards; the generator draws a format's planted cases from its own stream, so
the two sets are alike, not byte-equal), then times, each as a subprocess:

- `job`: `consentgate run` on the default local runner (Beam's in-process FnApiRunner);
- `job-mp`: the same with `-- --direct_num_workers=2 --direct_running_mode=multi_processing`;
- `job-flink` (`--runner flink`): the same on the local Flink cluster of `make flink-up`, with the
  options it writes to `.flink/options` (the cluster is brought up, with the bench's key in the
  TaskManagers' environment, if it is not running; its processes are not the job's descendants,
  so peak RSS is the submitting process's alone);
- `floor`: DuckDB with 2 threads reading the same files, keeping the service-generated event
  types (from the schemas' `x-record-class`, after the taxonomy's overrides) and writing Parquet.
  No parsing checks, detectors, consent, pseudonyms, dedup or gate: the cost of moving the bytes.

`--sources zoom-webhook,zoom-qos,...` (or `all`) adds a `job` row per vendor source: a corpus
of `--source-lines` lines from `consentgate generate --source NAME`, timed under
`consentgate run --source NAME`; its events/s counts lines, `records/s` the records the
adapter made of them (a QoS page or a stats snapshot holds many).

Peak RSS is the largest sum of `rss` over the subprocess and all its descendants, polled every
0.2 s (pages shared between processes count once per process), and never less than the kernel's
high-water mark of the largest process in the tree, so a run shorter than one poll still counts.
Results go to a table on stdout and to `DIR/bench.json`. Input sets are reused when `DIR/input/`
holds one made with the same events, seed, shards and generator source. `--profile` runs the job
once under cProfile and prints where the time goes, by stage.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import platform
import pstats
import re
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

import psutil

from pipelines.stage_times import STAGES

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_EVENTS = 4_000_000
MAX_EVENTS = 10_000_000
DEFAULT_SEED = 1
DEFAULT_SHARDS = 4
POLL_SECONDS = 0.2
FLOOR_THREADS = 2
# Only for benchmark runs: the job refuses to start without a key of at least 32 bytes.
BENCH_KEY = "bench-only-pseudonym-key-not-a-secret-" + "0" * 16
MULTIPROCESS_OPTIONS = ("--direct_num_workers=2", "--direct_running_mode=multi_processing")
FORMATS = ("jsonl", "parquet")
EVENT_GLOBS = {"jsonl": "events*.jsonl.gz", "parquet": "events*.parquet"}
MODES = ("job", "job-mp", "job-flink", "floor", "profile")
VENDOR_SOURCES = ("zoom-webhook", "zoom-qos", "webrtc-stats", "livekit-webhook")
DEFAULT_SOURCE_LINES = 5_000


# --------------------------------------------------------------------------- measuring


@dataclass
class Measured:
    """One subprocess: wall seconds, the process tree's peak RSS, its exit status."""

    wall_s: float
    peak_rss_bytes: int
    returncode: int
    max_processes: int


def _tree_rss(root: psutil.Process) -> tuple[int, int]:
    """Sum of rss over `root` and its descendants, and how many processes that was."""
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    total = counted = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
            counted += 1
        except psutil.Error:  # exited (or a zombie) between listing and reading
            continue
    return total, counted


def measure(
    cmd: Sequence[str], *, log: Path, env: Mapping[str, str], interval: float = POLL_SECONDS
) -> Measured:
    """Run `cmd` to completion with output to `log`, timing it and polling its tree's RSS."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=sink, stderr=subprocess.STDOUT, env=dict(env))
        try:
            root = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            root = None
        peak = most = 0
        # The pid's file descriptor becomes readable when it exits: the loop wakes at once,
        # and wait4 then reaps it with its resource usage, which Popen.wait would discard.
        exited = os.pidfd_open(proc.pid)
        try:
            while True:
                if root is not None:
                    rss, count = _tree_rss(root)
                    peak, most = max(peak, rss), max(most, count)
                if select.select([exited], [], [], interval)[0]:
                    break
        finally:
            os.close(exited)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    # A run shorter than one poll is never sampled; the kernel's own high-water mark of the
    # largest process in the tree (ru_maxrss, in KiB on Linux) is then the floor of the peak.
    peak = max(peak, usage.ru_maxrss * 1024)
    return Measured(wall, peak, proc.returncode, max(most, 1))


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _consentgate() -> list[str]:
    """The installed console script next to this interpreter, else `python -m pipelines`."""
    script = Path(sys.executable).parent / "consentgate"
    return [str(script)] if script.exists() else [sys.executable, "-m", "pipelines"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["CONSENTGATE_PSEUDONYM_KEY"] = BENCH_KEY
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


# --------------------------------------------------------------------------- inputs


@dataclass
class InputSet:
    fmt: str
    folder: Path
    events: int
    reused: bool
    generate_s: float | None
    bytes: int
    source: str = "contract"

    @property
    def label(self) -> str:
        """The format of a contract set, the source's name of a vendor one."""
        return self.fmt if self.source == "contract" else self.source

    @property
    def glob(self) -> str:
        return str(self.folder / EVENT_GLOBS[self.fmt])

    @property
    def consent(self) -> Path:
        return self.folder / "consent.jsonl"


def _generator_hash() -> str:
    digest = sha256()
    for module in sorted((ROOT / "pipelines" / "generate").glob("*.py")):
        digest.update(module.name.encode() + b"\0" + module.read_bytes())
    return digest.hexdigest()[:16]


def _event_files(folder: Path, fmt: str) -> list[Path]:
    return sorted(folder.glob(EVENT_GLOBS[fmt]))


def input_set(
    workdir: Path,
    fmt: str,
    events: int,
    seed: int,
    shards: int,
    say: Callable[[str], None],
    source: str = "contract",
) -> InputSet:
    """The input set for these arguments, generated unless a matching one is already there."""
    label = fmt if source == "contract" else source
    folder = workdir / "input" / f"{label}-n{events}-seed{seed}-shards{shards}"
    marker = folder.parent / f"{folder.name}.json"
    want = {
        "source": source,
        "format": fmt,
        "events": events,
        "seed": seed,
        "shards": shards,
        "generator": _generator_hash(),
    }
    try:
        have = json.loads(marker.read_text())
    except (OSError, ValueError):
        have = None
    if have is not None and {k: have.get(k) for k in want} == want:
        files = _event_files(folder, fmt)
        sizes = {f.name: f.stat().st_size for f in files}
        if sizes and sizes == have.get("files") and (folder / "consent.jsonl").exists():
            say(
                f"reusing {fmt} input set {folder} (events={events} seed={seed} "
                f"shards={shards}, same generator source; generated earlier in "
                f"{have.get('generate_s', 0):.1f}s)"
            )
            return InputSet(fmt, folder, events, True, None, sum(sizes.values()), source)
    say(f"generating {label} input set: {events:,} events, seed {seed}, {shards} shard(s) ...")
    marker.unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    cmd = [
        *_consentgate(),
        "-q",
        "generate",
        "--out",
        str(folder),
        "--events",
        str(events),
        "--seed",
        str(seed),
        "--shards",
        str(shards),
        "--format",
        fmt,
        "--source",
        source,
    ]
    log = workdir / "logs" / f"generate-{folder.name}.log"
    start = time.perf_counter()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        done = subprocess.run(cmd, stdout=sink, stderr=subprocess.STDOUT, env=_env())
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"consentgate generate failed ({done.returncode}):\n{_tail(log)}")
    files = _event_files(folder, fmt)
    sizes = {f.name: f.stat().st_size for f in files}
    marker.write_text(json.dumps({**want, "files": sizes, "generate_s": round(elapsed, 2)}))
    megabytes = sum(sizes.values()) / 1e6
    say(f"  generated in {elapsed:.1f}s: {megabytes:.1f} MB in {len(files)} file(s)")
    return InputSet(fmt, folder, events, False, elapsed, sum(sizes.values()), source)


# --------------------------------------------------------------------------- the floor


def service_event_types() -> list[str]:
    """Event types whose records are service-generated: the schemas' class, after overrides."""
    from pipelines.config import load_config
    from pipelines.rules.classify import record_class_of

    config = load_config()
    overrides = config.taxonomy.record_class_overrides
    return sorted(
        name
        for name, spec in config.contract().event_types.items()
        if record_class_of(spec, overrides) == "service_generated"
    )


def envelope_fields() -> list[str]:
    from pipelines.contract import ENVELOPE_FIELDS

    return list(ENVELOPE_FIELDS)


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def floor_sql(spec: Mapping[str, Any]) -> str:
    """DuckDB: read the events, keep the service-generated types, write one Parquet file.

    JSON Lines are read with fixed columns (the envelope as text, `payload` as JSON) so that
    the payloads' differing shapes need no schema inference; lines that are not JSON objects
    are skipped (`ignore_errors`).
    """
    if spec["format"] == "jsonl":
        columns = ", ".join(
            f"{_sql_text(name)}: {_sql_text('VARCHAR')}" for name in spec["envelope"]
        )
        source = (
            f"read_json({_sql_text(spec['glob'])}, format = 'newline_delimited', "
            f"compression = 'gzip', ignore_errors = true, "
            f"columns = {{{columns}, 'payload': 'JSON'}})"
        )
    else:
        source = f"read_parquet({_sql_text(spec['glob'])})"
    kept = ", ".join(_sql_text(t) for t in spec["types"])
    return (
        f"COPY (SELECT * FROM {source} WHERE event_type IN ({kept})) "
        f"TO {_sql_text(spec['out'])} (FORMAT parquet)"
    )


def floor_worker(spec: Mapping[str, Any]) -> None:
    """The floor's subprocess body: prints {"rows": N} for the rows written."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {int(spec['threads'])}")
    result = con.execute(floor_sql(spec)).fetchone()
    print(json.dumps({"rows": int(result[0]) if result else None}))


# --------------------------------------------------------------------------- one measurement


def _manifest(out: Path) -> dict[str, Any]:
    try:
        return json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}


def _row(mode: str, data: InputSet, measured: Measured, **extra: Any) -> dict[str, Any]:
    return {
        "mode": mode,
        "format": data.label,
        "events": data.events,
        "wall_s": round(measured.wall_s, 3),
        "events_per_s": round(data.events / measured.wall_s, 1),
        "peak_rss_mb": round(measured.peak_rss_bytes / 2**20, 1),
        "processes": measured.max_processes,
        "returncode": measured.returncode,
        **extra,
    }


def _run_args(data: InputSet, out: Path) -> list[str]:
    """`run` with the set's events and ledger, into `out`: the same for timing and profiling."""
    args = ["run", "--input", data.glob, "--consent", str(data.consent), "--out", str(out)]
    return args if data.source == "contract" else [*args, "--source", data.source]


def flink_options() -> list[str]:
    """The Beam options of the local Flink cluster, brought up (idempotent) with the bench's
    key in its TaskManagers' environment, where the SDK workers read it."""
    cluster = ROOT / "deploy" / "flink" / "cluster.py"
    done = subprocess.run(
        [sys.executable, str(cluster), "up"], env=_env(), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"the Flink cluster did not come up:\n{done.stderr}")
    home = Path(os.environ.get("CONSENTGATE_FLINK_DIR", ROOT / ".flink"))
    return (home / "options").read_text().split()


def run_job(workdir: Path, data: InputSet, mode: str, say: Callable[[str], None]) -> dict:
    """`consentgate run` on one input set, in a fresh run folder; fails loudly unless published."""
    name = f"{mode}-{data.label}-n{data.events}"
    out = workdir / "runs" / name
    shutil.rmtree(out, ignore_errors=True)
    cmd = [*_consentgate(), *_run_args(data, out)]
    beam: list[str] = []
    if mode == "job-mp":
        beam = list(MULTIPROCESS_OPTIONS)
    elif mode == "job-flink":
        beam = flink_options()
    if beam:
        cmd += ["--", *beam]
    say(f"{mode:9} {data.label:8} {data.events:>10,} events ...")
    log = workdir / "logs" / f"{name}.log"
    measured = measure(cmd, log=log, env=_env())
    manifest = _manifest(out)
    counts = manifest.get("counts", {})
    error = None
    if measured.returncode != 0 or manifest.get("status") != "published":
        error = f"exited {measured.returncode} with status {manifest.get('status')!r} (log {log})"
        say(f"  FAILED: {error}\n{_tail(log)}")
    records = counts.get("input_records")
    return _row(
        mode,
        data,
        measured,
        records_per_s=round(records / measured.wall_s, 1) if records else None,
        stage_us=stage_us(log, data.events),
        beam_options=beam,
        out=str(out),
        status=manifest.get("status"),
        input_records=records,
        training_rows=counts.get("training"),
        error=error,
    )


_STAGE_LINE = re.compile(r"stage seconds (\{.*\})")


def stage_us(log: Path, events: int) -> dict[str, float]:
    """Microseconds per event by stage, from the `stage seconds` line the run logs at its end
    (the time each stage's own code ran, summed over workers; empty when the line is missing)."""
    try:
        found = _STAGE_LINE.findall(log.read_text(errors="replace"))
    except OSError:
        return {}
    if not found:
        return {}
    seconds = json.loads(found[-1])
    return {stage: round(seconds.get(stage, 0.0) / events * 1e6, 2) for stage in STAGES}


def format_stages(results: Sequence[Mapping[str, Any]]) -> str:
    """Microseconds per event by stage, one column per job run that logged its stage times."""
    runs = [r for r in results if r.get("stage_us")]
    if not runs:
        return ""
    head = ["stage (us/event)", *(f"{r['mode']} {r['format']}" for r in runs)]
    rows = [head]
    for stage in STAGES:
        rows.append([stage, *(f"{r['stage_us'].get(stage, 0.0):.2f}" for r in runs)])
    rows.append(["sum of stages", *(f"{sum(r['stage_us'].values()):.2f}" for r in runs)])
    rows.append(["wall", *(f"{r['wall_s'] / r['events'] * 1e6:.2f}" for r in runs)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    text = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def run_floor(workdir: Path, data: InputSet, say: Callable[[str], None]) -> dict:
    name = f"floor-{data.fmt}-n{data.events}"
    out = workdir / "floor" / f"{name}.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    spec = {
        "format": data.fmt,
        "glob": data.glob,
        "out": str(out),
        "types": service_event_types(),
        "envelope": envelope_fields(),
        "threads": FLOOR_THREADS,
    }
    cmd = [sys.executable, "-m", "tests.benchmarks.bench", "--floor-worker", json.dumps(spec)]
    say(f"{'floor':7} {data.fmt:8} {data.events:>10,} events ...")
    log = workdir / "logs" / f"{name}.log"
    measured = measure(cmd, log=log, env=_env())
    error = None
    if measured.returncode != 0:
        error = f"exited {measured.returncode} (log {log})"
        say(f"  FAILED: {error}\n{_tail(log)}")
    rows = None
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("{"):
            rows = json.loads(line).get("rows")
            break
    return _row(
        "floor",
        data,
        measured,
        engine="duckdb",
        threads=FLOOR_THREADS,
        out=str(out),
        rows_written=rows,
        service_event_types=len(spec["types"]),
        error=error,
    )


# --------------------------------------------------------------------------- the profile

READ = "read + decode + contract check"
CONTEXT = "dedup keys + run context"
DETECT = "detectors (job)"
CONSENT = "consent"
ROUTE = "routing"
DEID = "pseudonymise + build output tables"
WRITE = "Parquet writes (staged)"
GATE = "gate + Great Expectations"
PUBLISH = "publish, report, lineage"
DRIVER = "driver: config, graph, run folder"
BEAM = "Beam runner overhead (coders, bundles, state)"
WAIT = "waiting (locks, sleeps, threads)"
IMPORTS = "imports + start-up"
OTHER = "other"
STAGE_ORDER = (
    READ,
    CONTEXT,
    DETECT,
    CONSENT,
    ROUTE,
    DEID,
    WRITE,
    GATE,
    PUBLISH,
    DRIVER,
    BEAM,
    WAIT,
    IMPORTS,
    OTHER,
)
INHERIT = ""  # no stage of its own: the time goes to the callers' stages

# (path fragment, qualified-name regex or None, stage); the first match wins. Functions that
# match nothing (the standard library, pyarrow, numpy, C builtins, and the detectors and
# nested-string walker, which both the job and the gate call) inherit their callers' stages
# in proportion to the time spent under each caller.
RULES: tuple[tuple[str, str | None, str], ...] = (
    ("pipelines/chunk.py", r"EventChunk\.from_(lines|rows)", READ),
    (
        "pipelines/chunk.py",
        r"EventChunk\.(dedup_keys|identifier_values|content_texts|host_pairs)",
        CONTEXT,
    ),
    ("pipelines/chunk.py", r"EventChunk\.with_findings|_redact_|_words_of", DETECT),
    ("pipelines/chunk.py", r"EventChunk\.with_consent|content_subjects", CONSENT),
    ("pipelines/chunk.py", r"EventChunk\.(routed|_rejects_routed)", ROUTE),
    ("pipelines/chunk.py", r"count_outputs|add_counts|_group_counts", DRIVER),
    ("pipelines/chunk.py", None, DEID),
    ("pipelines/transforms/process.py", r"_Detect", DETECT),
    ("pipelines/transforms/process.py", r"_Route", ROUTE),
    ("pipelines/transforms/process.py", r"_Deidentify", DEID),
    ("pipelines/transforms/read.py", None, READ),
    ("pipelines/transforms/spill.py", None, READ),
    ("pipelines/rules/classify.py", None, READ),
    ("pipelines/contract.py", None, READ),
    ("pipelines/transforms/context.py", None, CONTEXT),
    ("pipelines/rules/consent.py", None, CONSENT),
    ("pipelines/transforms/consent.py", None, CONSENT),
    ("pipelines/rules/route.py", None, ROUTE),
    ("pipelines/rules/deidentify.py", None, DEID),
    ("pipelines/transforms/write.py", None, WRITE),
    ("pipelines/gate/", None, GATE),
    ("great_expectations/", None, GATE),
    ("pipelines/publish.py", None, PUBLISH),
    ("pipelines/report/", None, PUBLISH),
    ("pipelines/lineage.py", None, PUBLISH),
    ("openlineage/", None, PUBLISH),
    ("pipelines/rules/detectors/", None, INHERIT),
    ("pipelines/rules/nested.py", None, INHERIT),
    ("pipelines/", None, DRIVER),
    ("apache_beam/", None, BEAM),
)
_WAITING = re.compile(r"acquire' of '_thread|built-in method time\.sleep|method 'wait' of|select")

Func = tuple[str, int, str]


def _qualnames(path: str) -> dict[int, str]:
    """First line of each function in a source file -> its qualified name (Class.method)."""
    try:
        tree = ast.parse(Path(path).read_text())
    except (OSError, SyntaxError, ValueError):
        return {}
    names: dict[int, str] = {}

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                qual = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                    names[first] = qual
                    names.setdefault(child.lineno, qual)
                walk(child, f"{qual}.")
            else:
                walk(child, prefix)

    walk(tree, "")
    return names


class Profile:
    """A cProfile dump with each function's stage: its own, or its callers' by time."""

    def __init__(self, path: Path) -> None:
        self.stats: dict[Func, tuple] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
        self._sources: dict[str, dict[int, str]] = {}
        self._shares: dict[Func, dict[str, float]] = {}

    def qualname(self, func: Func) -> str:
        filename, line, name = func
        if filename.endswith(".py") and "site-packages" not in filename:
            if filename not in self._sources:
                self._sources[filename] = _qualnames(filename)
            return self._sources[filename].get(line, name)
        return name

    def label(self, func: Func) -> str:
        filename, line, name = func
        if filename == "~":
            return name
        for marker in ("site-packages/", "/lib/python3.11/"):
            if marker in filename:
                filename = filename.split(marker, 1)[1]
                break
        else:
            with contextlib.suppress(ValueError):
                filename = str(Path(filename).resolve().relative_to(ROOT))
        return f"{filename}:{line}({self.qualname(func)})"

    def own_stage(self, func: Func) -> str:
        filename, _, name = func
        if name == "<module>" or filename.startswith("<frozen importlib"):
            return IMPORTS
        if filename == "~" and _WAITING.search(name):
            return WAIT
        path = filename.replace(os.sep, "/")
        for fragment, pattern, stage in RULES:
            if fragment in path and (pattern is None or re.search(pattern, self.qualname(func))):
                return stage
        return INHERIT

    def shares(self, func: Func) -> dict[str, float]:
        """How this function's own time splits over the stages (fractions adding up to 1).

        Callers still being worked out (recursion, call cycles) are left out of the split.
        """
        if func in self._shares:
            return self._shares[func]
        stage = self.own_stage(func)
        if stage != INHERIT:
            self._shares[func] = {stage: 1.0}
            return self._shares[func]
        self._shares[func] = {}  # in progress
        callers = self.stats[func][4] if func in self.stats else {}
        result: dict[str, float] = {}
        total = 0.0
        pending = False
        for caller, edge in callers.items():
            weight = edge[3] or edge[2]
            parts = self.shares(caller) if weight > 0 else {}
            if not parts:
                pending = pending or (weight > 0 and caller in self._shares)
                continue
            total += weight
            for name, part in parts.items():
                result[name] = result.get(name, 0.0) + part * weight
        if total > 0:
            result = {name: value / total for name, value in result.items()}
        elif pending:  # only reached through callers still in progress: ask again later
            del self._shares[func]
            return {}
        else:
            result = {DETECT if "rules/detectors/" in func[0] else OTHER: 1.0}
        self._shares[func] = result
        return result

    def stage_of(self, func: Func) -> str:
        stage = self.own_stage(func)
        if stage != INHERIT:
            return stage
        shares = self.shares(func) or {OTHER: 1.0}
        return "~" + max(shares, key=shares.__getitem__)

    def by_stage(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for func, (_, _, tt, _, _) in self.stats.items():
            for stage, part in (self.shares(func) or {OTHER: 1.0}).items():
                totals[stage] = totals.get(stage, 0.0) + tt * part
        return {s: totals[s] for s in STAGE_ORDER if s in totals}

    def top_by_stage(self, per_stage: int) -> list[dict]:
        """The project's (and Great Expectations') heaviest entry points per stage, cumulative."""
        rows = []
        for stage in STAGE_ORDER:
            if stage in (BEAM, IMPORTS, WAIT, OTHER, DRIVER):
                continue
            rows += self.top("cumtime", per_stage, lambda f, s=stage: self.own_stage(f) == s)
        return rows

    def top(self, key: str, n: int, only: Callable[[Func], bool] = lambda f: True) -> list[dict]:
        index = {"tottime": 2, "cumtime": 3}[key]
        funcs = sorted((f for f in self.stats if only(f)), key=lambda f: -self.stats[f][index])
        rows = []
        for func in funcs[:n]:
            _, nc, tt, ct, _ = self.stats[func]
            rows.append(
                {
                    "function": self.label(func),
                    "calls": nc,
                    "tottime_s": round(tt, 3),
                    "cumtime_s": round(ct, 3),
                    "stage": self.stage_of(func),
                }
            )
        return rows


def run_profile(workdir: Path, data: InputSet, say: Callable[[str], None]) -> dict[str, Any]:
    """The job once under cProfile (the local runner works in this one process)."""
    out = workdir / "runs" / f"profile-{data.fmt}-n{data.events}"
    shutil.rmtree(out, ignore_errors=True)
    prof = workdir / f"profile-{data.fmt}-n{data.events}.prof"
    cmd = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "pipelines"]
    cmd += _run_args(data, out)
    say(f"profile {data.fmt:8} {data.events:>10,} events under cProfile ...")
    log = workdir / "logs" / f"profile-{data.fmt}-n{data.events}.log"
    measured = measure(cmd, log=log, env=_env())
    if measured.returncode != 0 or _manifest(out).get("status") != "published":
        say(f"  FAILED: the profiled run exited {measured.returncode} (log {log})\n{_tail(log)}")
        return {"format": data.fmt, "events": data.events, "error": f"see {log}"}
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))
    profile = Profile(prof)
    stages = profile.by_stage()
    total = sum(stages.values())

    return {
        "format": data.fmt,
        "events": data.events,
        "wall_s_under_profiler": round(measured.wall_s, 3),
        "profiled_s": round(total, 3),
        "prof_file": str(prof),
        "stages": [
            {"stage": s, "self_s": round(t, 3), "percent": round(100 * t / total, 1)}
            for s, t in stages.items()
        ],
        "top_cumulative_by_stage": profile.top_by_stage(4),
        "top_tottime": profile.top("tottime", 25),
    }


# --------------------------------------------------------------------------- reporting


def ratios(results: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Per format: each job mode's wall time and peak RSS over the floor's."""
    rows = [r for r in results if not r.get("error")]
    out: dict[str, dict[str, float]] = {}
    for floor in (r for r in rows if r["mode"] == "floor"):
        for job in rows:
            if job["mode"] == "floor" or (job["format"], job["events"]) != (
                floor["format"],
                floor["events"],
            ):
                continue
            entry = out.setdefault(floor["format"], {})
            entry[f"{job['mode']}_over_floor_wall"] = round(job["wall_s"] / floor["wall_s"], 2)
            if floor["peak_rss_mb"]:
                entry[f"{job['mode']}_over_floor_rss"] = round(
                    job["peak_rss_mb"] / floor["peak_rss_mb"], 2
                )
    return out


def format_table(results: Sequence[Mapping[str, Any]]) -> str:
    floors = {(r["format"], r["events"]): r["wall_s"] for r in results if r["mode"] == "floor"}
    head = (
        "mode",
        "format",
        "events",
        "wall s",
        "events/s",
        "records/s",
        "peak RSS MB",
        "procs",
        "x floor",
    )
    lines = [head]
    for r in results:
        floor = floors.get((r["format"], r["events"]))
        ratio = f"{r['wall_s'] / floor:.1f}" if floor and r["mode"] != "floor" else ""
        if r.get("error"):
            ratio = "FAILED"
        lines.append(
            (
                r["mode"],
                r["format"],
                f"{r['events']:,}",
                f"{r['wall_s']:.2f}",
                f"{r['events_per_s']:,.0f}",
                f"{r['records_per_s']:,.0f}" if r.get("records_per_s") else "",
                f"{r['peak_rss_mb']:,.0f}",
                str(r["processes"]),
                ratio,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = [
        "  ".join(
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def format_profile(profile: Mapping[str, Any]) -> str:
    lines = [
        f"cProfile of the job on {profile['events']:,} {profile['format']} events: "
        f"{profile['wall_s_under_profiler']:.1f}s wall under the profiler, "
        f"{profile['profiled_s']:.1f}s in the main thread's profile",
        "",
        "Own time by stage (library and C calls counted in the stage that called them):",
    ]
    for s in profile["stages"]:
        lines.append(f"  {s['stage']:48} {s['self_s']:8.2f}s {s['percent']:5.1f}%")
    for key, title in (
        ("top_cumulative_by_stage", "Heaviest entry points of each stage, by cumulative time"),
        ("top_tottime", "Top 25 functions by own (total) time; ~stage = inherited from callers"),
    ):
        lines += ["", title + ":", f"  {'cum s':>8} {'own s':>8} {'calls':>9}  stage | function"]
        for row in profile[key]:
            lines.append(
                f"  {row['cumtime_s']:8.2f} {row['tottime_s']:8.2f} {row['calls']:9}  "
                f"{row['stage']} | {row['function']}"
            )
    return "\n".join(lines)


def _machine() -> dict[str, Any]:
    versions = {}
    for name in ("apache_beam", "pyarrow", "duckdb", "great_expectations", "orjson"):
        try:
            from importlib.metadata import version

            versions[name] = version(name.replace("_", "-"))
        except Exception:
            versions[name] = None
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


# --------------------------------------------------------------------------- main


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _sizes(text: str) -> list[int]:
    try:
        return [int(x.replace("_", "")) for x in _csv(text)]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected sizes like 100000,1000000: {err}") from err


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.bench",
        description="Time `consentgate run` against a DuckDB floor on generated input.",
    )
    parser.add_argument(
        "--events",
        type=int,
        default=int(os.environ.get("BENCH_EVENTS", DEFAULT_EVENTS)),
        help=f"events per input set (default $BENCH_EVENTS or {DEFAULT_EVENTS:,}; "
        f"at most {MAX_EVENTS:,})",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(os.environ.get("BENCH_DIR", ".bench")),
        help="inputs, runs, logs and bench.json (default $BENCH_DIR or .bench)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--shards", type=int, default=DEFAULT_SHARDS, help="event files per input set"
    )
    parser.add_argument(
        "--modes",
        type=_csv,
        default=["job", "floor"],
        help=f"comma-separated, of {', '.join(MODES)} (default job,floor)",
    )
    parser.add_argument(
        "--formats", type=_csv, default=list(FORMATS), help="jsonl,parquet (default both)"
    )
    parser.add_argument(
        "--multiprocess",
        action="store_true",
        help="also run the job with " + " ".join(MULTIPROCESS_OPTIONS) + " (mode job-mp)",
    )
    parser.add_argument(
        "--scaling",
        type=_sizes,
        default=[],
        metavar="N,N,...",
        help="also time the JSON Lines job at these sizes (linear growth check)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="also run the job once under cProfile (JSONL)"
    )
    parser.add_argument(
        "--runner",
        choices=["local", "flink"],
        default="local",
        help="flink: also time the job (and --scaling) on `make flink-up`'s cluster (job-flink)",
    )
    parser.add_argument(
        "--sources",
        type=_csv,
        default=[],
        metavar="NAME,...",
        help=f"also time the job on a generated corpus of each vendor source "
        f"({', '.join(VENDOR_SOURCES)}, or all)",
    )
    parser.add_argument(
        "--source-lines",
        type=int,
        default=DEFAULT_SOURCE_LINES,
        help=f"lines per vendor corpus (default {DEFAULT_SOURCE_LINES:,})",
    )
    parser.add_argument("--floor-worker", metavar="SPEC", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.floor_worker:
        floor_worker(json.loads(args.floor_worker))
        return 0
    modes = list(dict.fromkeys(args.modes))
    if args.multiprocess:
        modes.append("job-mp")
    if args.runner == "flink":
        modes.append("job-flink")
    if args.profile:
        modes.append("profile")
    modes = list(dict.fromkeys(modes))
    sources = list(VENDOR_SOURCES) if args.sources == ["all"] else args.sources
    bad = [m for m in modes if m not in MODES] + [f for f in args.formats if f not in FORMATS]
    bad += [s for s in sources if s not in VENDOR_SOURCES]
    if bad:
        raise SystemExit(f"unknown mode, format or source: {', '.join(bad)}")
    if sources and not 200 <= args.source_lines <= MAX_EVENTS:
        raise SystemExit(f"source lines must be from 200 to {MAX_EVENTS:,}")
    for n in [args.events, *args.scaling]:
        if not 500 <= n <= MAX_EVENTS:
            raise SystemExit(f"events must be from 500 to {MAX_EVENTS:,}, got {n:,}")

    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)

    def say(text: str) -> None:
        print(text, flush=True)

    machine = _machine()
    say(
        f"bench: {args.events:,} events, seed {args.seed}, {args.shards} shard(s), "
        f"modes {','.join(modes)}, formats {','.join(args.formats)}, workdir {workdir}"
        + (f"; sources {','.join(sources)} at {args.source_lines:,} lines" if sources else "")
    )
    say(
        f"machine: {machine['cpus']} CPUs, {machine['memory_gb']} GB, load average "
        f"{machine['load_average_at_start']} (shared machines make timings noisy)"
    )

    inputs: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    scaling: list[dict[str, Any]] = []
    profile: dict[str, Any] | None = None

    made: dict[tuple[str, int], InputSet] = {}

    def get_input(fmt: str, events: int) -> InputSet:
        if (fmt, events) in made:
            return made[fmt, events]
        data = made[fmt, events] = input_set(workdir, fmt, events, args.seed, args.shards, say)
        inputs[f"{fmt}-{events}"] = {
            "format": fmt,
            "events": events,
            "folder": str(data.folder),
            "bytes": data.bytes,
            "reused": data.reused,
            "generate_s": None if data.generate_s is None else round(data.generate_s, 2),
        }
        return data

    timed = [m for m in ("job", "job-mp", "job-flink", "floor") if m in modes]
    for fmt in args.formats if timed else []:
        data = get_input(fmt, args.events)
        for mode in timed:
            if mode == "floor":
                results.append(run_floor(workdir, data, say))
            else:
                results.append(run_job(workdir, data, mode, say))

    for source in sources:
        data = input_set(workdir, "jsonl", args.source_lines, args.seed, 1, say, source)
        inputs[f"{source}-{args.source_lines}"] = {
            "source": source,
            "events": args.source_lines,
            "folder": str(data.folder),
            "bytes": data.bytes,
            "reused": data.reused,
            "generate_s": None if data.generate_s is None else round(data.generate_s, 2),
        }
        results.append(run_job(workdir, data, "job", say))

    scaled = ["job", "job-flink"] if args.runner == "flink" else ["job"]
    for mode in scaled:
        for n in args.scaling:
            same = [r for r in results if r["mode"] == mode and r["format"] == "jsonl"]
            if n == args.events and same:
                scaling.append(same[0])
                continue
            scaling.append(run_job(workdir, get_input("jsonl", n), mode, say))

    if "profile" in modes:
        profile = run_profile(workdir, get_input("jsonl", args.events), say)

    report = {
        "events": args.events,
        "seed": args.seed,
        "shards": args.shards,
        "modes": modes,
        "sources": sources,
        "source_lines": args.source_lines if sources else None,
        "machine": machine,
        "inputs": inputs,
        "results": results,
        "ratios": ratios(results),
        "scaling": scaling,
        "profile": profile,
    }
    (workdir / "bench.json").write_text(json.dumps(report, indent=2) + "\n")

    if results:
        say("\n" + format_table(results))
        for fmt, entry in report["ratios"].items():
            say(
                f"  {fmt}: "
                + ", ".join(f"{k.replace('_', ' ')} {v:g}x" for k, v in sorted(entry.items()))
            )
        stages = format_stages(results)
        if stages:
            say("\nWhere the job's time goes (each stage's own code, all workers):\n" + stages)
    for mode in scaled if scaling else []:
        rows = [r for r in scaling if r["mode"] == mode]
        base = rows[0]
        say(f"\nScaling ({mode}, JSON Lines; per-event time relative to the first size):")
        for r in rows:
            per = (r["wall_s"] / r["events"]) / (base["wall_s"] / base["events"])
            say(
                f"  {r['events']:>10,} events  {r['wall_s']:8.2f}s  "
                f"{r['events_per_s']:>10,.0f} events/s  {r['peak_rss_mb']:>7,.0f} MB  {per:.2f}"
            )
    if profile and not profile.get("error"):
        say("\n" + format_profile(profile))
    say(f"\nwrote {workdir / 'bench.json'}")
    failed = [
        f"{r['mode']} {r['format']} {r['events']}" for r in [*results, *scaling] if r.get("error")
    ]
    if profile and profile.get("error"):
        failed.append("profile")
    if failed:
        say("failed: " + "; ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
