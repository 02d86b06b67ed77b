"""Progress on stderr: a tqdm bar in a terminal; one line per log interval where there is none or
where the bar is turned off. Compiling is reported once and counted in neither img/s nor the ETA."""

from __future__ import annotations

import io
import json
import logging

from resnet_jax import configs
from resnet_jax.train import progress
from resnet_jax.train.progress import Progress


def _records(loss: float, seeds: int = 1, **extra) -> list[dict]:
    return [{"step": 0, "lr": 0.1, "loss": loss + i, "train_error": 0.5, "images_per_sec": 1234.4,
             **extra} for i in range(seeds)]


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records]


class _Clock:
    def __init__(self, monkeypatch, now: float):
        self.now = now
        monkeypatch.setattr(progress.time, "perf_counter", lambda: self.now)


def test_without_a_terminal_each_interval_is_one_line(monkeypatch, caplog):
    clock = _Clock(monkeypatch, 100.0)
    stream = io.StringIO()  # a log file, a pipe: not a terminal
    shown = Progress(50, 0, stream=stream)
    with caplog.at_level(logging.INFO):
        clock.now = 160.0  # a minute of compiling
        assert shown.compiled() == 160.0  # the loop's img/s count from there
        clock.now = 162.0  # then 2 s per 10 steps
        shown.update(10, _records(2.5))
        clock.now = 170.0  # 2 s of training, 6 s for the first evaluation (compiling it)
        shown.update(20, _records(1.25, test_error=0.125))
        clock.now = 172.0
        shown.update(30, _records(1.0, test_error=0.125))
        clock.now = 174.0
        shown.update(50, _records(1.0))
        shown.close()
    assert stream.getvalue() == ""  # no bar, no carriage returns
    assert _messages(caplog) == [
        "compiled in 1m00s (the first call; not counted in img/s or ETA)",
        # 2 s per 10 steps since compiling, 40 steps left: 8 s, not the minute of compiling * 4
        "step 10/50  loss 2.5000  train_err 50.00%  lr 0.1  1234 img/s  ETA 8s",
        "step 20/50  loss 1.2500  train_err 50.00%  test_err 12.50%  lr 0.1  1234 img/s",  # compiled the eval
        "step 30/50  loss 1.0000  train_err 50.00%  test_err 12.50%  lr 0.1  1234 img/s  ETA 4s",
        "step 50/50  loss 1.0000  train_err 50.00%  lr 0.1  1234 img/s"]


def test_a_resumed_run_counts_its_eta_from_where_it_resumed(monkeypatch, caplog):
    clock = _Clock(monkeypatch, 0.0)
    shown = Progress(100, 40, stream=io.StringIO())
    with caplog.at_level(logging.INFO):
        clock.now = 30.0
        shown.compiled()
        clock.now = 33.0
        shown.update(50, _records(1.0))
    assert _messages(caplog)[-1].endswith("ETA 15s")  # 0.3 s per step since step 40, 50 steps left


def test_several_seeds_say_that_the_numbers_are_their_mean(caplog):
    shown = Progress(40, 0, stream=io.StringIO())
    with caplog.at_level(logging.INFO):
        shown.update(40, _records(1.0, seeds=2, test_error=0.25))
    assert _messages(caplog) == ["step 40/40  mean of 2 seeds: loss 1.5000  train_err 50.00%  "
                                 "test_err 25.00%  lr 0.1  1234 img/s per seed"]


def test_in_a_terminal_the_bar_shows_what_the_lines_show_and_nothing_is_logged(monkeypatch, caplog):
    clock = _Clock(monkeypatch, 0.0)
    terminal = _Terminal()
    shown = Progress(40, 10, stream=terminal)
    with caplog.at_level(logging.INFO):
        clock.now = 50.0
        shown.compiled()
        clock.now = 51.0
        shown.update(20, _records(1.25, seeds=2))
        shown.close()
    assert not caplog.records
    text = terminal.getvalue()
    assert "20/40" in text and text.count("compiled in 50s") == 1
    # percent and the ETA (0.1 s per step since compiling, 20 steps left), as in the lines
    assert "mean of 2 seeds: loss 1.7500  train_err 50.00%  ETA 2s" in text


def test_with_the_bar_turned_off_a_terminal_gets_the_lines(caplog):
    terminal = _Terminal()
    shown = Progress(40, 0, bar=False, stream=terminal)  # --config.progress=false
    with caplog.at_level(logging.INFO):
        shown.compiled()
        shown.update(20, _records(1.0))
        shown.close()
    assert terminal.getvalue() == ""
    assert _messages(caplog)[0].startswith("compiled in ") and _messages(caplog)[1].startswith("step 20/40")


def test_disabled_progress_shows_nothing(caplog):
    terminal = _Terminal()
    shown = Progress(40, 0, enabled=False, stream=terminal)  # processes other than 0
    with caplog.at_level(logging.INFO):
        shown.compiled()
        shown.update(20, _records(1.0))
        shown.close()
    assert not caplog.records and terminal.getvalue() == ""


def test_a_run_without_the_bar_logs_every_interval_and_its_compile_time_once(tmp_path, caplog):
    from resnet_jax.configs import cifar_config
    from resnet_jax.train.loop import train_and_evaluate

    config = cifar_config("cifar_resnet8")
    configs.override(config, dataset="digits", steps=4, batch_size=32, bn_group_size=0, log_every=2,
                     eval_every=4, checkpoint_every=100, progress=False)
    with caplog.at_level(logging.INFO):
        train_and_evaluate(config, str(tmp_path))
    shown = [m for m in _messages(caplog) if m.startswith(("step ", "compiled in "))]
    assert len(shown) == 3 and shown[0].startswith("compiled in ")  # once
    assert [m.split("  ")[0] for m in shown[1:]] == ["step 2/4", "step 4/4"]
    assert "ETA" in shown[1] and "test_err" in shown[2]
    first = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    # img/s of the first interval leave compiling out: its 2 steps took a fraction of the time
    # since the start (compiling included, they took all of it)
    assert config.run.batch_size * 2 / first["images_per_sec"] < first["wall_time"] / 2


def test_durations_read_as_hours_minutes_seconds():
    assert [progress._duration(s) for s in (4.4, 754, 3 * 3600 + 125)] == ["4s", "12m34s", "3h02m"]
