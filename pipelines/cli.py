"""The `consentgate` command: options, messages and exit codes; no pipeline logic lives here."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, NoReturn

from pipelines.config import CONTENT_POLICIES
from pipelines.contract import parse_timestamp
from pipelines.errors import ConfigError, ConsentgateError, Interrupted
from pipelines.sources import SOURCE_NAMES
from pipelines.terminal import InertFormatter, inert, inert_lines, inert_tree

if TYPE_CHECKING:
    from pipelines.run import RunRequest

__all__ = ["main", "split_beam_args"]

_LOG = logging.getLogger("pipelines")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line, inert error message and exit status 2 for bad arguments."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, inert(f"{self.prog}: error: {message} (see {self.prog} --help)") + "\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="consentgate",
        description="Keep customer content out of ML training data: classify, de-identify, "
        "route and gate meeting-platform events.",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only print errors")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an error (and Beam's own messages) instead of one line",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    run = commands.add_parser(
        "run",
        help="the batch job: read, classify, de-identify, route, validate, publish",
        description="Run the batch job. Beam options go after `--`, untouched "
        "(e.g. `-- --runner=DataflowRunner`). The pseudonymisation key is read from "
        "CONSENTGATE_PSEUDONYM_KEY.",
    )
    _job_options(run)
    run.add_argument(
        "--date",
        type=_day,
        metavar="YYYY-MM-DD",
        help="the day the run covers: fills {date} in --input/--out/--consent (or in the "
        "config's schedule templates, used when those are left out); consent is judged as of "
        "the end of that day (UTC) unless --as-of says otherwise",
    )
    run.add_argument(
        "--as-of",
        type=_timestamp,
        metavar="TIMESTAMP",
        help="consent decisions after this RFC 3339 time do not count yet (default: now)",
    )

    back = commands.add_parser(
        "backfill",
        help="run the job for each day from --from to --to, in order; go on past failures",
        description="Runs `consentgate run --date D` for every day D in the range, each in its "
        "own dated partition (the config's schedule templates, or {date} in --input/--out). "
        "Prints a table of dates with status and counts; exits non-zero if any date failed.",
    )
    back.add_argument("--from", dest="date_from", type=_day, required=True, metavar="YYYY-MM-DD")
    back.add_argument("--to", dest="date_to", type=_day, required=True, metavar="YYYY-MM-DD")
    _job_options(back)

    gen = commands.add_parser("generate", help="write a synthetic input set with planted leaks")
    gen.add_argument("--out", required=True, metavar="DIR")
    gen.add_argument("--events", type=int, default=20000, metavar="N")
    gen.add_argument("--seed", type=int, default=0, metavar="S")
    gen.add_argument("--shards", type=int, default=1, metavar="K")
    gen.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl")
    gen.add_argument("--date", default="2026-11-26", type=_day, metavar="YYYY-MM-DD")
    gen.add_argument(
        "--source",
        # pipelines.generate.SOURCES (not imported here: the generator loads only when used)
        choices=("contract", "zoom-webhook", "zoom-qos", "webrtc-stats", "livekit-webhook"),
        default="contract",
        help="the shape of the records: contract (v1 envelopes) or a platform's own",
    )
    gen.add_argument(
        "--accounts",
        type=int,
        default=None,
        metavar="N",
        help="customer accounts (default: max(50, events/400), at most 500)",
    )

    commands.add_parser(
        "detect",
        help="read text lines on stdin, write one JSON line of findings per input line",
    )

    val = commands.add_parser(
        "validate",
        help="re-run the leak gate on a finished run's published outputs",
        description="Checks the latest run if it published; a folder whose latest run did not "
        "publish needs --run-id. Exit 0 when every check passes, 3 when any fails, 2 when the "
        "run cannot be checked.",
    )
    val.add_argument("run_dir", metavar="RUN_DIR")
    val.add_argument("--run-id", metavar="RUN_ID", help="a run under RUN_DIR/.runs/ to check")
    val.add_argument("--config", metavar="FILE", help="JSON file merged over configs/")

    aud = commands.add_parser(
        "audit",
        help="scan any dataset (Parquet or JSON Lines, file or folder) for content and "
        "personal data; exits 3 when it finds any",
    )
    aud.add_argument("path", metavar="PATH")
    aud.add_argument("--format", choices=("table", "json"), default="table")
    aud.add_argument(
        "--table",
        action="append",
        choices=("training", "restricted", "quarantine", "audit"),
        metavar="TABLE",
        help="for a run folder: a published table to scan (training, restricted, quarantine, "
        "audit); repeatable; default: training",
    )

    purge = commands.add_parser(
        "purge",
        help="remove published consented content whose consent no longer holds",
        description="Re-check every row under DIR/training/consented_content/ against the "
        "current ledger. Dry run by default: prints what would go; --apply publishes a new "
        "version of the run without those rows (moved to restricted, reason purged:<why>) and "
        "appends to DIR/purge-log.jsonl. Refused (exit 2) with another key than the run's.",
    )
    purge.add_argument("--consent", required=True, metavar="LEDGER")
    purge.add_argument("--published", required=True, metavar="DIR", help="a run folder")
    purge.add_argument("--apply", action="store_true", help="remove the rows (default: dry run)")
    purge.add_argument("--as-of", type=_timestamp, metavar="TIMESTAMP", help="default: now")
    purge.add_argument("--config", metavar="FILE", help="JSON file merged over configs/")

    exp = commands.add_parser(
        "explain",
        help="why one event went where it went: class, rules, detectors, consent, destination",
    )
    exp.add_argument("run_dir", metavar="RUN_DIR")
    exp.add_argument("event_id", metavar="EVENT_ID")
    exp.add_argument("--format", choices=("text", "json"), default="text")
    exp.add_argument(
        "--run",
        metavar="RUN_ID",
        help="a staged run under RUN_DIR/.runs/ (default: the manifest's)",
    )
    exp.add_argument("--config", metavar="FILE", help="JSON file merged over configs/")

    rep = commands.add_parser("report", help="(re)write the report of a finished run")
    rep.add_argument("run_dir", metavar="RUN_DIR")
    rep.add_argument(
        "--share-threshold",
        type=_points,
        default=5.0,
        metavar="POINTS",
        help="flag a destination whose share of input records moves by more than this many "
        "percentage points since the previous run (default 5)",
    )

    tpl = commands.add_parser(
        "templates",
        help="candidates for configs/strings.json: templates below k, with account counts",
        description="Lists the templates of a finished run's string fields that fewer than k "
        "accounts produced and configs/strings.json does not approve, most accounts first: "
        "their account count and masked form (typed masks such as <num>, <hex>, <path> in "
        "place of variable parts). What is printed: a masked form only when something in it "
        "was masked and every word left in it is one that at least k accounts used in that "
        "field (or one of the registry's); otherwise the template's reference (a keyed hash "
        "of field and template, as in report.json) and why its text is not shown, because "
        "the template then is, or may hold, one customer's words. No raw value is printed. "
        "To approve one, add its text under its field in configs/strings.json and have the "
        "change reviewed like code.",
    )
    tpl.add_argument("run_dir", metavar="RUN_DIR", help="the --out folder of a finished run")
    tpl.add_argument("--json", action="store_true", help="one JSON document, for machines")
    return parser


def _job_options(parser: argparse.ArgumentParser) -> None:
    """Options `run` and `backfill` share."""
    parser.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="PATH",
        help="file, folder or glob of events (.jsonl, .jsonl.gz, .parquet); repeatable; may "
        "hold {date}; default: the config's schedule.input (with --date)",
    )
    parser.add_argument(
        "--out", metavar="DIR", help="run folder; may hold {date}; default: schedule.out"
    )
    parser.add_argument(
        "--consent", metavar="PATH", help="consent ledger (JSON Lines or Parquet); may hold {date}"
    )
    parser.add_argument(
        "--content-policy",
        choices=CONTENT_POLICIES,
        help="what customer content may enter training (default: never)",
    )
    parser.add_argument(
        "--source",
        choices=SOURCE_NAMES,
        default="contract",
        help="shape of the input records: the v1 contract (default), a vendor's "
        "(zoom-webhook, zoom-qos, webrtc-stats, livekit-webhook), or auto (per record)",
    )
    parser.add_argument("--config", metavar="FILE", help="JSON file merged over configs/")
    parser.add_argument(
        "--quiet",
        action="store_true",
        dest="run_quiet",
        help="no progress and no messages but errors",
    )


def _drop_beam_import_noise(record: logging.LogRecord) -> bool:
    """Beam warns on import that optional Google Cloud clients are missing; they are optional."""
    return "apitools not found" not in record.getMessage()


def _points(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 100:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of points between 0 and 100")
    return value


def _day(text: str) -> str:
    try:
        date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None
    if len(text) != 10:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD")
    return text


def _timestamp(text: str) -> datetime:
    moment = parse_timestamp(text)
    if moment is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 timestamp with a zone")
    return moment


def _request(args: argparse.Namespace, beam_args: list[str], date: str | None) -> RunRequest:
    from pipelines.run import RunRequest

    return RunRequest(
        inputs=args.input,
        out=args.out,
        consent=args.consent,
        content_policy=args.content_policy,
        config_file=args.config,
        date=date,
        as_of=getattr(args, "as_of", None),
        beam_args=beam_args,
        progress=not args.run_quiet,
        quiet=args.run_quiet,
        source=args.source,
    )


def _cmd_run(args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipelines.run import run_job, summary_line

    manifest = run_job(_request(args, beam_args, args.date))
    _LOG.info("%s", summary_line(manifest))
    return 0


def _cmd_backfill(args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipelines.backfill import backfill, exit_code_of, render_table

    if args.out and "{date}" not in args.out:
        raise ConfigError(
            f"--out {args.out}: a backfill needs {{date}} in it (or schedule.out in the config); "
            "otherwise every day would replace the day before"
        )

    results = backfill(args.date_from, args.date_to, lambda day: _request(args, beam_args, day))
    _say(render_table(results))
    return exit_code_of(results)


def _cmd_generate(args: argparse.Namespace) -> int:
    from pipelines.generate import generate

    try:
        truth = generate(
            args.out,
            source=args.source,
            events=args.events,
            seed=args.seed,
            shards=args.shards,
            fmt=args.format,
            date=args.date,
            accounts=args.accounts,
        )
    except ValueError as exc:
        # The generator names its parameter (`events must be ...`); the user typed an option.
        message = str(exc).replace("fmt must", "format must", 1)
        raise ConfigError(f"generate: --{message}") from None
    except OSError as exc:
        raise ConfigError(
            f"generate: --out {args.out}: cannot write there ({exc.strerror or exc})"
        ) from None
    _LOG.info(
        "wrote %d events to %s (truth.json lists %d planted cases)",
        truth["events"],
        args.out,
        len(truth["planted"]),
    )
    return 0


# Lines scanned per column: the RE2 prefilters pay off over many rows at once.
_DETECT_BATCH = 10_000


def _cmd_detect() -> int:
    import itertools

    import pyarrow as pa

    from pipelines.rules.detectors import DetectorSettings, scan_column

    settings = DetectorSettings.default()
    lines = (line.rstrip("\n") for line in sys.stdin)
    while batch := list(itertools.islice(lines, _DETECT_BATCH)):
        for found in scan_column(pa.array(batch, pa.string()), settings):
            findings = [{"detector": f.detector, "start": f.start, "end": f.end} for f in found]
            sys.stdout.write(json.dumps(findings) + "\n")
    return 0


def _cmd_purge(args: argparse.Namespace) -> int:
    from pipelines.config import load_config
    from pipelines.purge import purge, render_result
    from pipelines.rules.deidentify import key_from_env

    config = load_config(override_file=args.config)
    result = purge(
        config, args.consent, args.published, key_from_env(), as_of=args.as_of, apply=args.apply
    )
    print(render_result(result), end="")
    return 0


def _cmd_validate(args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipelines.config import load_config
    from pipelines.validate import chosen_run, validate_run

    run = chosen_run(args.run_dir, args.run_id)
    print(f"checking run {run['run_id']} (status {run['status']}) in {args.run_dir}")
    config = load_config(override_file=args.config)
    checks = validate_run(config, args.run_dir, beam_args, run_id=run["run_id"])
    width = max(len(name) for name in checks)
    for name, check in sorted(checks.items()):
        status = "pass" if check["passed"] else "FAIL"
        _say(
            f"{name:<{width}}  {status}  violations={check['violations']}  "
            f"checked={check['rows_checked']}"
        )
        for example in check["examples"]:
            _say(f"{'':<{width}}    {inert(example)}")
    failed = [name for name, check in checks.items() if not check["passed"]]
    if failed:
        _say(f"gate FAILED: {', '.join(sorted(failed))}")
        return 3
    _say("gate passed")
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from pipelines.audit import audit_path

    report = audit_path(args.path, tables=tuple(args.table or ("training",)))
    if args.format == "json":
        _say(json.dumps(report.as_json(), sort_keys=True))
    else:
        if report.scope:
            _say(f"scanned             {inert(report.scope)}")
        _say(f"rows scanned        {report.rows_scanned}")
        _say(f"rows with findings  {report.rows_with_findings}")
        for name, count in sorted(report.by_detector.items()):
            _say(f"  {inert(name):<18}{count}")
        for example in report.examples:
            _say(f"  e.g. {inert(example)}")
    return 3 if report.rows_with_findings else 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from pipelines.config import load_config
    from pipelines.report.explain import explain, render_text

    trail = explain(
        args.run_dir, args.event_id, load_config(override_file=args.config), run_id=args.run
    )
    if args.format == "json":
        _say(json.dumps(trail, indent=2, sort_keys=True))  # JSON escapes every control character
    else:
        # Each value is made inert first, so none can add a line or steer the terminal.
        _say(render_text(inert_tree(trail)).rstrip("\n"))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pipelines import storage
    from pipelines.errors import InputError
    from pipelines.report.html import write_report

    manifest_path = storage.join(args.run_dir, "manifest.json")
    if not storage.exists(manifest_path):
        raise InputError(f"{manifest_path}: no manifest; is {args.run_dir} a run folder?")
    manifest = json.loads(storage.read_bytes(manifest_path))
    html_path, json_path = write_report(
        args.run_dir, manifest, out=args.run_dir, share_threshold=args.share_threshold / 100
    )
    _LOG.info("wrote %s and %s", html_path, json_path)
    return 0


def _cmd_templates(args: argparse.Namespace) -> int:
    from pipelines.report.templates import HIDDEN_WHY, candidates

    found = candidates(args.run_dir)
    if args.json:
        _say(json.dumps(found, indent=2, sort_keys=True))
        return 0
    rows = found["candidates"]
    k = found["k"] if found["k"] is not None else "k"
    _say(
        f"run {found['run_id']} ({found['status']}): {len(rows):,} template(s) that fewer than "
        f"{k} accounts produced and configs/strings.json does not approve"
    )
    if rows:
        width = max(len(r["field"]) for r in rows)
        _say(f"{'accounts':>8}  {'field':<{width}}  template")
    for r in rows:
        shown = (
            r["masked"]
            if r["masked"] is not None
            else (f"{r['ref']}  (text not shown: {HIDDEN_WHY.get(r['hidden_because'], 'unknown')})")
        )
        _say(f"{r['accounts']:>8}  {r['field']:<{width}}  {shown}")
    return 0


def _say(text: str) -> None:
    """Print to stdout with every control character shown, not obeyed (line breaks kept)."""
    print(inert_lines(text))


def split_beam_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """consentgate's own arguments, and the Beam options after `--`, passed on untouched."""
    if "--" not in argv:
        return argv, []
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1 :]


def _configure_logging(quiet: bool, debug: bool) -> None:
    """Log lines made inert; Great Expectations kept to warnings; Beam's error logs (a failing
    bundle's traceback, which the one-line error repeats) shown only with --debug.

    Beam's local worker processes do not inherit this set-up: pipelines/__init__.py quiets
    Great Expectations there, and under --quiet run.py sends their stderr to a log file.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(InertFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_drop_beam_import_noise)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "consentgate", False):  # ours, from an earlier main() in this process
            root.removeHandler(old)
    handler.consentgate = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    logging.captureWarnings(True)  # Python warnings go through the same inert formatter
    root.setLevel(logging.WARNING)
    # Great Expectations narrates its ephemeral context at INFO; the gate reports its results.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    if not debug:
        # Beam logs a failing bundle's traceback at ERROR before raising it; the one-line
        # error that follows says what went wrong (--debug shows both).
        handler.addFilter(_drop_beam_errors)
    _LOG.setLevel(logging.ERROR if quiet else logging.INFO)


def _drop_beam_errors(record: logging.LogRecord) -> bool:
    return not (record.name.startswith("apache_beam") and record.levelno >= logging.ERROR)


def _dispatch(args: argparse.Namespace, beam_args: list[str]) -> int:
    if args.command == "run":
        return _cmd_run(args, beam_args)
    if args.command == "backfill":
        return _cmd_backfill(args, beam_args)
    if args.command == "validate":
        return _cmd_validate(args, beam_args)
    if beam_args:
        raise ConfigError("Beam options after `--` only apply to run, backfill and validate")
    if args.command == "generate":
        return _cmd_generate(args)
    if args.command == "detect":
        return _cmd_detect()
    if args.command == "purge":
        return _cmd_purge(args)
    if args.command == "audit":
        return _cmd_audit(args)
    if args.command == "explain":
        return _cmd_explain(args)
    if args.command == "templates":
        return _cmd_templates(args)
    return _cmd_report(args)


def _fail(message: str, code: int, debug: bool) -> int:
    if debug:
        import traceback

        sys.stderr.write(inert_lines(traceback.format_exc()))
    print(inert(f"consentgate: {message}"), file=sys.stderr)
    return code


def _stop(number: int, frame: object) -> None:
    raise Interrupted(signal.Signals(number).name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `consentgate` console script and `python -m pipelines`."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (a scheduler's stop) ends a command like Ctrl-C: one line, exit 6.
        for number in (signal.SIGINT, signal.SIGTERM):
            previous[number] = signal.signal(number, _stop)
    try:
        return _main(argv)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _main(argv: Sequence[str] | None) -> int:
    argv, beam_args = split_beam_args(list(sys.argv[1:] if argv is None else argv))
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # bad arguments (2, message printed) or --help (0)
        return exc.code if isinstance(exc.code, int) else 2
    quiet = args.quiet or getattr(args, "run_quiet", False)
    args.run_quiet = quiet
    _configure_logging(quiet, args.debug)
    try:
        return _dispatch(args, beam_args)
    except ConsentgateError as exc:
        return _fail(f"error: {exc}", exc.exit_code, args.debug)
    except Interrupted as exc:
        return _fail(
            f"interrupted by {exc.signal_name}; nothing new was published",
            Interrupted.exit_code,
            args.debug,
        )
    except KeyboardInterrupt:
        return _fail("interrupted by SIGINT", Interrupted.exit_code, args.debug)
    except (FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError) as exc:
        # A path given on the command line that cannot be used: a usage error.
        return _fail(f"error: {exc.filename or ''}: {exc.strerror or exc}", 2, args.debug)
    except OSError as exc:
        return _fail(f"error: {exc.filename or ''}: {exc.strerror or exc}", 4, args.debug)
    except Exception as exc:
        return _fail(
            f"error: unexpected {type(exc).__name__}: {exc} (--debug shows the traceback)",
            4,
            args.debug,
        )
