"""A hostile output folder: links planted where consentgate writes, appends or deletes, and the
modes of every file a real run leaves.

Each planted link points outside the run folder. A run or `purge --apply` that finds one stops
with exit 2 naming it, before the Beam job or any write, and the place it points at is left
exactly as it was.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from pipelines import storage
from pipelines.cli import main
from pipelines.generate import generate

pytestmark = pytest.mark.e2e

KEY = "run-folder-test-key-" + "r" * 32


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> tuple[Path, Path]:
    """One real published run (and its input folder), copied by each test before planting."""
    folder = tmp_path_factory.mktemp("rf-in")
    generate(folder, events=500, seed=11)
    out = tmp_path_factory.mktemp("rf-out") / "out"
    mp = pytest.MonkeyPatch()
    mp.setenv("CONSENTGATE_PSEUDONYM_KEY", KEY)
    try:
        code = main(
            ["run", "--quiet", "--input", str(folder / "events.jsonl.gz"), "--out", str(out)]
        )
    finally:
        mp.undo()
    assert code == 0
    return folder, out


def _published_run(out: Path) -> str:
    return os.readlink(out / "current").split("/", 1)[1]


def _snapshot(place: Path) -> dict[str, bytes | None]:
    """Every path under `place` (or the file itself) with its bytes; folders as None."""
    if place.is_file():
        return {".": place.read_bytes()}
    found: dict[str, bytes | None] = {".": None}
    for p in sorted(place.rglob("*")):
        found[str(p.relative_to(place))] = p.read_bytes() if p.is_file() else None
    return found


def _replace_with_link(path: Path, target: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    path.symlink_to(target)


def _plant(name: str) -> Callable[[Path, Path, Path], Path]:
    """A planter replacing DIR/<name> (`{run}`: the published run's id) by a link to `target`."""

    def plant(out: Path, folder: Path, file: Path) -> Path:
        path = out / name.format(run=_published_run(out))
        target = file if name.endswith((".json", ".jsonl", ".html", ".lock")) else folder
        _replace_with_link(path, target)
        return path

    return plant


def _runs_link(out: Path, folder: Path, file: Path) -> Path:
    """`.runs` moved into the outside folder and linked back: writes would land there."""
    shutil.move(str(out / ".runs"), str(folder / "moved-runs"))
    (out / ".runs").symlink_to(folder / "moved-runs")
    return out / ".runs"


def _current_escaping(out: Path, folder: Path, file: Path) -> Path:
    """`current -> .runs/../../<outside>`: starts like ours, leaves the folder."""
    (out / "current").unlink()
    (out / "current").symlink_to(".runs/../" + os.path.relpath(folder, out))
    return out / "current"


def _current_real_folder(out: Path, folder: Path, file: Path) -> Path:
    (out / "current").unlink()
    (out / "current").mkdir()
    return out / "current"


def _old_run_link(out: Path, folder: Path, file: Path) -> Path:
    """An unpublished run to be pruned that is a link: pruning must not delete through it."""
    path = out / ".runs" / "20000101T000000000000Z-0ld000"
    path.symlink_to(folder)
    return path


PLANTS = {
    ".runs": _runs_link,
    "current-outside": _plant("current"),
    "current-escaping": _current_escaping,
    "current-real-folder": _current_real_folder,
    "training": _plant("training"),
    "restricted": _plant("restricted"),
    "quarantine": _plant("quarantine"),
    "audit": _plant("audit"),
    "lineage.jsonl": _plant("lineage.jsonl"),
    "purge-log.jsonl": _plant("purge-log.jsonl"),
    "report.html": _plant("report.html"),
    "report.json": _plant("report.json"),
    "manifest.json": _plant("manifest.json"),
    ".lock": _plant(".lock"),
    "run-folder-inside": _plant(".runs/{run}/audit"),
    "run-file-inside": _plant(".runs/{run}/manifest.json"),
    "old-run-to-prune": _old_run_link,
}


@pytest.mark.parametrize("command", ["run", "purge"])
@pytest.mark.parametrize("planted", list(PLANTS), ids=list(PLANTS))
def test_a_link_consentgate_did_not_make_stops_with_exit_2_and_touches_nothing(
    published, tmp_path: Path, monkeypatch, capsys, planted: str, command: str
):
    inputs, template = published
    out = tmp_path / "out"
    shutil.copytree(template, out, symlinks=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_bytes(b"not consentgate's\n")
    outside_file = tmp_path / "outside.txt"
    outside_file.write_bytes(b"someone else's file\n")
    path = PLANTS[planted](out, outside, outside_file)
    before = (_snapshot(outside), _snapshot(outside_file))
    runs_before = sorted(os.listdir(out / ".runs")) if (out / ".runs").is_dir() else None

    monkeypatch.setenv("CONSENTGATE_PSEUDONYM_KEY", KEY)
    if command == "run":
        args = ["run", "--quiet", "--input", str(inputs / "events.jsonl.gz"), "--out", str(out)]
    else:
        args = ["purge", "--consent", str(inputs / "consent.jsonl"), "--published", str(out)]
        args.append("--apply")
    code = main(args)
    err = capsys.readouterr().err

    assert code == 2, err
    assert str(path) in err, err
    assert "rerun" in err  # says what to do
    assert "Traceback" not in err
    assert (_snapshot(outside), _snapshot(outside_file)) == before
    # Stopped before anything was staged: no new run under .runs/.
    if runs_before is not None:
        assert sorted(os.listdir(out / ".runs")) == runs_before


def test_the_folder_consentgate_made_itself_passes_the_check(
    published, tmp_path: Path, monkeypatch
):
    """The paired case: the same copy without a planted link is accepted and published again."""
    inputs, template = published
    out = tmp_path / "out"
    shutil.copytree(template, out, symlinks=True)
    monkeypatch.setenv("CONSENTGATE_PSEUDONYM_KEY", KEY)
    code = main(["run", "--quiet", "--input", str(inputs / "events.jsonl.gz"), "--out", str(out)])
    assert code == 0
    assert len(os.listdir(out / ".runs")) == 2


@pytest.mark.parametrize("where", ["at-the-folder", "inside-the-folder"])
def test_clean_up_never_deletes_through_a_link(tmp_path: Path, where: str):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    old = tmp_path / "old-run"
    if where == "at-the-folder":
        old.symlink_to(outside)
    else:
        old.mkdir()
        (old / "part.parquet").write_text("staged")
        (old / "audit").symlink_to(outside)
    storage.delete_tree(str(old))
    assert (outside / "keep.txt").read_text() == "keep"
    assert old.is_symlink() if where == "at-the-folder" else not os.path.lexists(old)


def test_writes_replace_a_link_and_appends_refuse_one(tmp_path: Path):
    outside = tmp_path / "outside.txt"
    outside.write_text("theirs")
    written, appended = tmp_path / "manifest.json", tmp_path / "lineage.jsonl"
    written.symlink_to(outside)
    appended.symlink_to(outside)
    storage.write_bytes(str(written), b"ours")
    assert not written.is_symlink() and written.read_bytes() == b"ours"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    with pytest.raises(OSError):
        storage.append_private(str(appended), ["ours"])
    assert outside.read_text() == "theirs"
    fresh = tmp_path / "purge-log.jsonl"
    storage.append_private(str(fresh), ["one", "two"])
    storage.append_private(str(fresh), ["three"])
    assert fresh.read_text() == "one\ntwo\nthree\n"
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600


def _umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def test_every_file_of_a_real_run_has_the_documented_mode(published):
    """Raw values live in every table but training: owner-only. The published training is
    readable by the umask; `.runs/` and the published run's folder are traversable only."""
    _, out = published
    run = _published_run(out)
    training = out / ".runs" / run / "training"
    mask = _umask()
    seen: dict[str, int] = {}
    for folder, dirs, files in os.walk(out):
        for name in dirs + files:
            path = Path(folder, name)
            if path.is_symlink():
                assert name in {"current", "training", "restricted", "quarantine", "audit"}
                continue
            mode = stat.S_IMODE(path.lstat().st_mode)
            seen[str(path.relative_to(out))] = mode
            if path in (out / ".runs", out / ".runs" / run):
                expected = 0o711 & ~mask
            elif path == training or training in path.parents:
                expected = (0o777 if path.is_dir() else 0o666) & ~mask
            else:
                expected = 0o700 if path.is_dir() else 0o600
            assert mode == expected, f"{path}: {oct(mode)}, expected {oct(expected)}"
    names = set(seen)
    for must in (
        "manifest.json",
        "report.html",
        "report.json",
        "lineage.jsonl",
        f".runs/{run}/_summary.json",
        f".runs/{run}/audit",
        f".runs/{run}/quarantine",
        f".runs/{run}/restricted",
        f".runs/{run}/gate",
        f".runs/{run}/training/service_generated",
    ):
        assert must in names, must
    assert any(n.startswith(f".runs/{run}/audit/part-") for n in names)
    assert any(n.startswith(f".runs/{run}/quarantine/part-") for n in names)
    assert any(n.startswith(f".runs/{run}/gate/") for n in names)
    assert any(n.startswith(f".runs/{run}/training/service_generated/event_type=") for n in names)


def test_staged_training_is_owner_only_until_published(tmp_path: Path):
    """A staged training file may hold what the gate stops (a run that fails the gate is kept
    for review): it and every folder made for it are owner-only until the publish."""
    from pipelines.publish import RunFolder
    from pipelines.transforms.write import write_parquet

    folder = RunFolder(tmp_path / "out")
    staging = Path(folder.prepare("20261201T000000000000Z-stag00"))
    path = staging / "training" / "service_generated" / "event_type=qos.audio" / "part-0-0.parquet"
    write_parquet(pa.table({"event_id": ["alice@example.com"]}), str(path), "zstd")
    made = [path, *path.parents[: len(path.relative_to(staging).parts)]]
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in made}
    assert modes == {p: 0o600 if p == path else 0o700 for p in made}
    folder._open_for_readers(staging)
    mask = _umask()
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE(staging.stat().st_mode) == 0o711 & ~mask
