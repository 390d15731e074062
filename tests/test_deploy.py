"""Other runners and schedulers: options after `--` reach Beam untouched, and the shipped cron
line and Airflow DAG call the CLI with options it accepts."""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.runners.direct.direct_runner import DirectRunner

from pipelines.cli import _parser, split_beam_args
from pipelines.config import check_beam_options, load_config
from pipelines.errors import ConfigError, InputMissing, Interrupted, RunFailed
from pipelines.pipeline import build
from pipelines.run import RunRequest, expand_inputs, pipeline_options, resolve_paths

ROOT = Path(__file__).resolve().parents[1]
# What a scheduler retries: a failed run, a day whose input has not landed, an interrupted run.
RETRYABLE_CODES = {RunFailed.exit_code, InputMissing.exit_code, Interrupted.exit_code}

DATAFLOW = [
    "--runner=DataflowRunner",
    "--project=meetings-prod",
    "--region=europe-west1",
    "--temp_location=gs://meetings-tmp/consentgate",
    "--setup_file=./setup.py",
    "--num_workers=8",
    "--max_num_workers=64",
    "--experiments=use_runner_v2",
]
FLINK = ["--runner=FlinkRunner", "--flink_master=flink:8081", "--environment_type=DOCKER"]
SPARK = ["--runner=SparkRunner", "--spark_master_url=spark://spark:7077"]


def test_options_after_the_double_dash_are_split_off_untouched():
    argv = ["run", "--input", "in/", "--out", "out/", "--", *DATAFLOW]
    ours, beams = split_beam_args(argv)
    assert ours == ["run", "--input", "in/", "--out", "out/"]
    assert beams == DATAFLOW


@pytest.mark.parametrize(
    ("out", "consent", "expected"),
    [
        ("runs/out", "in/consent.jsonl", ("{cwd}/runs/out", "{cwd}/in/consent.jsonl")),
        ("s3://bucket/out", "gs://b/c.jsonl", ("s3://bucket/out", "gs://b/c.jsonl")),
    ],
    ids=["local paths made absolute", "remote paths untouched"],
)
def test_workers_get_paths_that_do_not_depend_on_their_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, out: str, consent: str, expected: tuple
):
    monkeypatch.chdir(tmp_path)
    request = resolve_paths(RunRequest(inputs=["in"], out=out, consent=consent), load_config())
    cwd = str(tmp_path)
    assert (request.out, request.consent) == tuple(e.format(cwd=cwd) for e in expected)


@pytest.mark.parametrize("beam_args", [DATAFLOW, FLINK, SPARK], ids=["dataflow", "flink", "spark"])
def test_runner_options_reach_beam_untouched(beam_args: list[str]):
    options = pipeline_options(beam_args)
    given = dict(arg[2:].split("=", 1) for arg in beam_args)
    parsed = options.get_all_options(drop_default=True, retain_unknown_options=True)
    for name, value in given.items():
        got = parsed[name]
        assert (got if not isinstance(got, list) else ",".join(got)) == (
            int(value) if isinstance(got, int) else value
        ), name
    assert options.view_as(StandardOptions).runner == given["runner"]


def test_the_job_builds_under_dataflow_options_without_running(tmp_path: Path):
    events = tmp_path / "events.jsonl"
    events.write_text("{}\n")
    config = load_config()
    options = pipeline_options(DATAFLOW)
    # The graph is built with Dataflow's options but handed to no runner: nothing runs.
    pipeline = beam.Pipeline(runner=DirectRunner(), options=options)
    build(pipeline, config, expand_inputs([str(events)]), "gs://meetings-tmp/staging", as_of=0)
    proto = pipeline.to_runner_api()
    names = {t.unique_name for t in proto.components.transforms.values()}
    for stage in ("ReadEvents", "ClassifyEvents", "DetectLeaks", "ApplyConsent", "LeakGate"):
        assert stage in names
    assert pipeline.options.view_as(StandardOptions).runner == "DataflowRunner"
    assert pipeline.options.get_all_options()["project"] == "meetings-prod"


def test_the_cron_line_calls_run_with_options_the_cli_accepts():
    text = (ROOT / "deploy" / "cron.example").read_text()
    line = next(x for x in text.splitlines() if x and not x.startswith(("#", "CRON_TZ")))
    call = re.search(r"\.venv/bin/consentgate (run [^;]*);", line)
    assert call, line
    args = shlex.split(call.group(1).replace(r"\%F", "%F"))
    args[args.index("--date") + 1] = "2026-11-26"
    parsed = _parser().parse_args(args)
    assert parsed.command == "run" and parsed.date == "2026-11-26"
    # A failed run (4), input not landed (5) and an interrupted run (6) are retried; the rest
    # (0, 2, 3 and anything else) ends the loop. The shell itself decides, for every status.
    retry = line[line.index("case $code") : line.index("esac;") + len("esac;")]
    for code in range(8):
        decided = subprocess.run(
            ["sh", "-c", f"code={code}; for try in 1; do {retry} echo retry; done"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert (decided == "retry") == (code in RETRYABLE_CODES), code


def test_the_airflow_dag_calls_run_and_retries_only_exit_4_5_and_6():
    source = (ROOT / "deploy" / "airflow_dag.py").read_text()
    tree = ast.parse(source)
    command = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "command")
    returned = next(n for n in ast.walk(command) if isinstance(n, ast.Return))
    assert isinstance(returned.value, ast.List)
    # Names (the config path, the day) stand for values Airflow fills in at run time.
    args = [e.value if isinstance(e, ast.Constant) else "VALUE" for e in returned.value.elts[1:]]
    assert args[0] == "run"
    args[args.index("--date") + 1] = "2026-11-26"
    parsed = _parser().parse_args(args)
    assert parsed.run_quiet and parsed.date == "2026-11-26" and parsed.config == "VALUE"
    retryable = next(
        n
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "RETRYABLE"
    )
    assert ast.literal_eval(retryable.value) == RETRYABLE_CODES


def test_the_example_schedule_config_loads(tmp_path: Path):
    config = load_config(override_file=ROOT / "deploy" / "schedule.example.json")
    assert config.schedule.input and "{date}" in config.schedule.input
    assert json.loads((ROOT / "deploy" / "schedule.example.json").read_text())["schedule"]


LOCAL_WORKERS = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
S3 = ["--s3_region_name=eu-west-1", "--s3_endpoint_url=http://localhost:9000"]


@pytest.mark.parametrize(
    "beam_args",
    [DATAFLOW, FLINK, SPARK, LOCAL_WORKERS, S3, ["--runner", "FnApiRunner"]],
    ids=["dataflow", "flink", "spark", "local-workers", "s3", "separate-value"],
)
def test_real_beam_and_runner_options_are_accepted(beam_args: list[str]):
    check_beam_options(beam_args)
    assert pipeline_options(beam_args).get_all_options(retain_unknown_options=True)


@pytest.mark.parametrize(
    ("beam_args", "message"),
    [
        (["--bogus_option=1"], "'--bogus_option=1' is not an option"),
        ([*DATAFLOW, "--runer=DataflowRunner"], "did you mean --runner?"),
        (["--direct_num_worker=2"], "did you mean --direct_num_workers?"),
        (["--direct_num_workers=two"], "invalid int value: 'two'"),
        (["stray-word"], "'stray-word' is not an option"),
    ],
    ids=["unknown", "misspelt-runner", "misspelt-workers", "bad-value", "not-an-option"],
)
def test_unknown_beam_options_are_refused_naming_the_option(beam_args: list[str], message: str):
    with pytest.raises(ConfigError) as err:
        pipeline_options(beam_args)
    assert err.value.exit_code == 2 and message in str(err.value), str(err.value)
