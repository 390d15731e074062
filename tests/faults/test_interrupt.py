"""Faults: SIGINT and SIGTERM end a run with one line on stderr and exit 6; the lock is gone,
the published state is as it was, and the manifest and the report agree that the run was
interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.errors import Interrupted
from pipelines.generate import generate
from pipelines.lock import LOCK_NAME
from tests.faults.test_kill import KILL_POINTS, _command, _env, _published_state, _staging

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("interrupt-in")
    generate(folder, events=1500, seed=43)
    out = tmp_path_factory.mktemp("interrupt") / "out"
    # The published state a signal must leave alone; run in this process (it is not signalled).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONSENTGATE_PSEUDONYM_KEY", _env()["CONSENTGATE_PSEUDONYM_KEY"])
        assert main(_command(folder, out, "-q")[3:]) == 0
    return folder, out


MULTI_PROCESS = ["--", "--direct_num_workers=2", "--direct_running_mode=multi_processing"]


def _signal_at(
    folder: Path, out: Path, point: str, number: int, beam: list[str]
) -> tuple[int, str]:
    old = {p.name for p in _staging(out)()}
    run = subprocess.Popen(
        [*_command(folder, out, "-q"), *beam],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not KILL_POINTS[point](out, old):
        assert run.poll() is None, f"the run ended before {point}: {run.stderr.read()!r}"
        assert time.monotonic() < deadline, f"never reached {point}"
        time.sleep(0.002)
    os.kill(run.pid, number)
    _, err = run.communicate(timeout=120)
    return run.returncode, err.decode()


@pytest.mark.parametrize(
    ("number", "point", "beam"),
    [
        (signal.SIGINT, "training_files_staged", []),
        (signal.SIGTERM, "training_files_staged", []),
        (signal.SIGTERM, "staging_created", []),
        # Beam's worker processes are stopped too, or the runner would wait for them forever.
        (signal.SIGTERM, "training_files_staged", MULTI_PROCESS),
    ],
    ids=["sigint-mid-pipeline", "sigterm-mid-pipeline", "sigterm-at-start", "sigterm-2-workers"],
)
def test_a_signal_ends_the_run_with_exit_6_one_line_and_agreeing_records(
    published, number, point, beam
):
    folder, out = published
    before = _published_state(out)
    code, err = _signal_at(folder, out, point, number, beam)
    assert code == Interrupted.exit_code == 6, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == [
        f"consentgate: interrupted by {signal.Signals(number).name}; nothing new was published"
    ], err
    assert "Traceback" not in err
    assert not (out / LOCK_NAME).exists()
    assert _published_state(out) == before
    manifest = json.loads((out / "manifest.json").read_text())
    report = json.loads((out / "report.json").read_text())
    assert manifest["status"] == "interrupted"
    assert manifest["published_run_id"] == before["published"]
    assert report["run_id"] == manifest["run_id"] and report["status"] == "interrupted"
    assert 'Status: <strong id="status-value">interrupted' in (out / "report.html").read_text()


def test_the_next_run_after_an_interrupt_publishes(published):
    folder, out = published
    done = subprocess.run(_command(folder, out), env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "published"
    assert json.loads((out / "report.json").read_text())["status"] == "published"
