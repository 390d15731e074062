"""Faults: a run killed with SIGKILL at several points leaves the published state as it was and
the next run succeeds; a full disk or an unwritable output fails the run (exit 4) and
publishes nothing."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.generate import generate
from pipelines.lock import LOCK_NAME

pytestmark = pytest.mark.e2e

KEY = "kill-test-key-" + "k" * 32


def _env() -> dict[str, str]:
    return {**os.environ, "CONSENTGATE_PSEUDONYM_KEY": KEY}


def _command(folder: Path, out: Path, *quiet: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipelines",
        *quiet,
        "run",
        "--input",
        str(folder / "events.jsonl.gz"),
        "--consent",
        str(folder / "consent.jsonl"),
        "--out",
        str(out),
    ]


def _published_state(out: Path) -> dict:
    """What readers see: the manifest's published run, where each link points, training bytes."""
    manifest = json.loads((out / "manifest.json").read_text())
    links = {
        n: os.path.relpath(os.path.realpath(out / n), out)
        for n in ("training", "restricted", "quarantine", "audit")
    }
    training = {
        str(p.relative_to(out / "training")): p.read_bytes()
        for p in sorted((out / "training").rglob("*.parquet"))
    }
    return {"published": manifest["published_run_id"], "links": links, "training": training}


def _staging(out: Path) -> Callable[[], list[Path]]:
    def newest() -> list[Path]:
        runs = out / ".runs"
        return sorted(runs.iterdir()) if runs.is_dir() else []

    return newest


# Points to kill at, each a condition on the run folder that the test polls for.
KILL_POINTS: dict[str, Callable[[Path, set[str]], bool]] = {
    "holding_the_lock": lambda out, old: (out / LOCK_NAME).exists(),
    "staging_created": lambda out, old: any(p.name not in old for p in _staging(out)()),
    "training_files_staged": lambda out, old: any(
        any((p / "training").rglob("*.parquet")) for p in _staging(out)() if p.name not in old
    ),
    "pipeline_finished": lambda out, old: any(
        (p / "_summary.json").exists() for p in _staging(out)() if p.name not in old
    ),
    "report_written_before_publish": lambda out, old: any(
        (p / "report.html").exists() for p in _staging(out)() if p.name not in old
    ),
}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> tuple[Path, Path, dict]:
    folder = tmp_path_factory.mktemp("kill-in")
    generate(folder, events=1500, seed=41)
    out = tmp_path_factory.mktemp("kill") / "out"
    # The published state the kills must leave alone; run in this process (it is not killed).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONSENTGATE_PSEUDONYM_KEY", KEY)
        assert main(_command(folder, out, "-q")[3:]) == 0
    return folder, out, _published_state(out)


def _kill_at(folder: Path, out: Path, point: str) -> None:
    """Start a run and SIGKILL it as soon as the run folder shows it reached `point`."""
    old = {p.name for p in _staging(out)()}
    run = subprocess.Popen(
        _command(folder, out, "-q"), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    reached = KILL_POINTS[point]
    deadline = time.monotonic() + 120
    while not reached(out, old):
        assert run.poll() is None, f"the run ended before {point}: {run.stderr.read()!r}"
        assert time.monotonic() < deadline, f"never reached {point}"
        time.sleep(0.002)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    run.stderr.close()
    assert run.returncode == -signal.SIGKILL


def test_sigkill_at_each_point_leaves_the_published_state_and_the_next_run_succeeds(first_run):
    folder, out, first = first_run
    for point in KILL_POINTS:
        before = _published_state(out)
        _kill_at(folder, out, point)
        after = _published_state(out)
        if after["links"] != before["links"]:
            # Killed in the publish step itself, after the one atomic swap: readers see the
            # whole new run (all four tables of it, never a mix); the next run's recovery
            # decides which run stays published.
            assert point == "report_written_before_publish", point
            runs = {Path(target).parts[1] for target in after["links"].values()}
            assert len(runs) == 1 and runs != {before["published"]}
            assert after["training"] == before["training"]
        else:
            assert after == before, point
    # The next run takes over the last dead run's lock, cleans up and publishes.
    done = subprocess.run(_command(folder, out), env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "taking over the lock" in done.stderr
    final = _published_state(out)
    assert final["published"] != first["published"]
    assert final["links"] == {n: f".runs/{final['published']}/{n}" for n in final["links"]}
    assert final["training"] == first["training"]  # same inputs, same key: same bytes
    assert not (out / LOCK_NAME).exists()


def _limit_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:
        # Writes past the limit fail with EFBIG, as a full disk fails them with ENOSPC.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_fails_the_run_with_exit_4_and_publishes_nothing(first_run):
    folder, out, _ = first_run
    before = _published_state(out)
    # The generator writes ~120 KB Parquet files; a 20 KB cap stops the first big write.
    run = subprocess.run(
        _command(folder, out),
        env=_env(),
        capture_output=True,
        text=True,
        preexec_fn=_limit_file_size(20_000),
    )
    assert run.returncode == 4, run.stderr
    assert "File too large" in run.stderr or "No space" in run.stderr
    assert _published_state(out)["training"] == before["training"]
    assert (
        json.loads((out / "manifest.json").read_text())["published_run_id"] == (before["published"])
    )


def test_an_unwritable_output_fails_with_exit_4_naming_the_folder(first_run, tmp_path):
    folder, _, _ = first_run
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the output folder's parent should be")
    out = blocker / "out"
    run = subprocess.run(_command(folder, out), env=_env(), capture_output=True, text=True)
    assert run.returncode == 4, run.stderr
    assert str(out) in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through folder permissions")
def test_a_read_only_output_folder_fails_with_exit_4(first_run, tmp_path):
    folder, _, _ = first_run
    out = tmp_path / "ro"
    out.mkdir(mode=0o500)
    run = subprocess.run(_command(folder, out), env=_env(), capture_output=True, text=True)
    assert run.returncode == 4, run.stderr
    assert not (out / "manifest.json").exists()
