"""Progress on long runs: redrawn in place on a terminal, plain log lines elsewhere, off when
quiet."""

from __future__ import annotations

import io
import logging

import pytest

from pipelines.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_line_is_redrawn_with_counts_rate_and_elapsed(monkeypatch):
    clock = iter([0.0, 0.0, 0.5, 2.0, 4.0, 4.0])
    monkeypatch.setattr("pipelines.progress.time.monotonic", lambda: next(clock))
    screen = Terminal()
    progress = Progress()
    progress.configure(True, stream=screen)
    progress.add("read", 100_000)  # 0.5 s after start: under the 1 s redraw interval
    assert screen.getvalue() == ""
    progress.add("read", 100_000)  # 2.0 s: drawn
    progress.add("staged", 50_000)  # 4.0 s: drawn again
    progress.finish()
    frames = screen.getvalue().split("\r\x1b[K")[1:]
    assert frames[0] == "read 200,000 records · 100,000 read/s · 0:02"
    assert frames[1] == "read 200,000 · staged 50,000 records · 50,000 read/s · 0:04\n"


def test_off_a_terminal_it_logs_plain_lines(monkeypatch, caplog: pytest.LogCaptureFixture):
    clock = iter([0.0, 0.0, 31.0, 31.0])
    monkeypatch.setattr("pipelines.progress.time.monotonic", lambda: next(clock))
    log = io.StringIO()
    progress = Progress()
    progress.configure(True, stream=log)
    with caplog.at_level(logging.INFO, logger="pipelines.progress"):
        progress.add("read", 62_000)
    progress.finish()
    assert log.getvalue() == ""  # no carriage returns in a log file
    assert caplog.messages == ["progress: read 62,000 records · 2,000 read/s · 0:31"]


def test_quiet_shows_nothing(monkeypatch, caplog: pytest.LogCaptureFixture):
    monkeypatch.setattr("pipelines.progress.time.monotonic", lambda: 100.0)
    screen = Terminal()
    progress = Progress()
    progress.configure(False, stream=screen)
    with caplog.at_level(logging.INFO, logger="pipelines.progress"):
        progress.add("read", 10)
    progress.finish()
    assert screen.getvalue() == "" and caplog.messages == []
    assert progress.counts == {}
