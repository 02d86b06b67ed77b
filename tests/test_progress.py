"""Progress on stderr: a tqdm bar in a terminal; one line per log interval where there is none."""

from __future__ import annotations

import io
import logging

from resnet_jax.train import progress
from resnet_jax.train.progress import Progress


def _records(loss: float, seeds: int = 1, **extra) -> list[dict]:
    return [{"step": 0, "lr": 0.1, "loss": loss + i, "train_error": 0.5, "images_per_sec": 1234.4,
             **extra} for i in range(seeds)]


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_without_a_terminal_each_interval_is_one_line(monkeypatch, caplog):
    clock = iter([100.0, 102.0, 110.0])  # 2 s for the 10 steps after the first interval
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    stream = io.StringIO()  # a log file, a pipe: not a terminal
    shown = Progress(40, 0, stream=stream)
    with caplog.at_level(logging.INFO):
        shown.update(10, _records(2.5))
        shown.update(20, _records(1.25, test_error=0.125))
        shown.update(40, _records(1.0, seeds=2))
        shown.close()
    assert stream.getvalue() == ""  # no bar, no carriage returns
    assert [r.getMessage() for r in caplog.records] == [
        "step 10/40  loss 2.5000  train_err 50.00%  lr 0.1  1234 img/s",  # no ETA: compiling
        "step 20/40  loss 1.2500  train_err 50.00%  test_err 12.50%  lr 0.1  1234 img/s  ETA 4s",
        "step 40/40  loss 1.5000  train_err 50.00%  lr 0.1  1234 img/s per seed (2 seeds)"]


def test_in_a_terminal_the_bar_is_redrawn_and_nothing_is_logged(caplog):
    terminal = _Terminal()
    shown = Progress(40, 10, stream=terminal)
    with caplog.at_level(logging.INFO):
        shown.update(20, _records(1.25, test_error=0.125))
        shown.close()
    assert not caplog.records
    assert "20/40" in terminal.getvalue() and "test_error=0.1250" in terminal.getvalue()


def test_disabled_progress_shows_nothing(caplog):
    terminal = _Terminal()
    shown = Progress(40, 0, enabled=False, stream=terminal)  # processes other than 0
    with caplog.at_level(logging.INFO):
        shown.update(20, _records(1.0))
        shown.close()
    assert not caplog.records and terminal.getvalue() == ""


def test_durations_read_as_hours_minutes_seconds():
    assert [progress._duration(s) for s in (4.4, 754, 3 * 3600 + 125)] == ["4s", "12m34s", "3h02m"]
