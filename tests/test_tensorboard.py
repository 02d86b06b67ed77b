"""TensorBoard event files mirror metrics.jsonl: after a run, after a resume, and never at the cost
of the run (a failed write is one warning)."""

from __future__ import annotations

import errno
import logging
import os

from tb_events import assert_events_mirror_metrics, read_events

from resnet_jax import runs
from resnet_jax.train import tensorboard_log
from resnet_jax.train.tensorboard_log import TensorBoardLog


def test_a_digits_run_shows_its_metrics_and_config_in_tensorboard(tiny_digits_run):
    assert_events_mirror_metrics(tiny_digits_run)


def _record(step: int, loss: float) -> dict:
    return {"step": step, "lr": 0.1, "loss": loss, "train_error": loss / 10, "images_per_sec": 100.0,
            "wall_time": float(step)}


def test_a_resume_shows_each_step_once_with_the_kept_records(tmp_path):
    """A run that logged steps 1-4 but checkpointed at 2 resumes there: TensorBoard shows steps 1-2
    as first logged and 3-4 as logged again, no step twice, and the new config."""
    first = TensorBoardLog(str(tmp_path))
    first.start([], '{"seed": 0}', 0)
    for step in (1, 2, 3, 4):
        first.append(_record(step, 1.0 + step))
    first.close()
    # As written by an earlier process (this test's would get the same name within a second).
    [old] = runs.event_files(str(tmp_path))
    os.rename(old, os.path.join(tmp_path, runs.EVENTS_PREFIX + "1000000000.host.1"))

    resumed = TensorBoardLog(str(tmp_path))
    resumed.start([_record(1, 2.0), _record(2, 3.0)], '{"seed": 1}', 2)
    for step in (3, 4):
        resumed.append(_record(step, 0.5 + step))
    resumed.close()
    assert len(runs.event_files(str(tmp_path))) == 1
    values, texts = read_events(str(tmp_path))
    assert values["loss"] == [(1, 2.0), (2, 3.0), (3, 3.5), (4, 4.5)]
    assert texts == [(2, '```json\n{"seed": 1}\n```')]


def test_a_failed_write_is_one_warning_and_the_run_goes_on(tmp_path, monkeypatch, caplog):
    board = TensorBoardLog(str(tmp_path))
    board.start([], "{}", 0)
    board.append(_record(1, 1.0))

    def full(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tensorboard_log.RecordWriter, "write", full)
    with caplog.at_level(logging.WARNING):
        for step in (2, 3):
            board.append(_record(step, 1.0))  # no exception: the run goes on
        board.close()
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "cannot write step 2" in warning and "No space left on device" in warning
    assert "metrics.jsonl has every record" in warning
    assert read_events(str(tmp_path))[0]["loss"] == [(1, 1.0)]  # what was written stays readable


def test_an_unwritable_folder_is_one_warning(tmp_path, caplog):
    board = TensorBoardLog(str(tmp_path / "missing"))
    with caplog.at_level(logging.WARNING):
        board.start([], "{}", 0)
        board.append(_record(1, 1.0))
        board.close()
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "cannot write the event file" in warning and "No such file or directory" in warning


def test_only_the_enabled_process_writes(tmp_path):
    board = TensorBoardLog(str(tmp_path), enabled=False)  # processes other than 0
    board.start([_record(1, 1.0)], "{}", 1)
    board.append(_record(2, 1.0))
    board.close()
    assert os.listdir(tmp_path) == []
