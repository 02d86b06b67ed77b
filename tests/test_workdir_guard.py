"""One run per workdir, one-line reports on the read-only path, and scripts that pass a stop on to
the trainer and wait for its save (the rest of the failure cases: test_robustness.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest

import scaleout_helpers as h
from tiny_runs import tiny_config


def test_a_second_run_on_a_workdir_exits_2_and_writes_nothing(reference, tmp_path, environ):
    workdir = str(tmp_path / "run")
    first = h.start(h.train_cmd(workdir), environ)
    h.wait_for_step(first, workdir, 4)
    first.send_signal(signal.SIGSTOP)  # mid-run for as long as the second one takes
    try:
        # Another log interval: were this one to write config.json, it would show.
        second = h.run(h.train_cmd(workdir, log_every=2), environ)
    finally:
        first.send_signal(signal.SIGCONT)
    _, stderr = first.communicate(timeout=240)
    assert first.returncode == 0, stderr[-3000:]

    assert second.returncode == 2, second.stderr[-3000:]
    assert second.stderr.strip() == (f"resnet-jax train: error: workdir {workdir} is in use by pid "
                                     f"{first.pid} on host {socket.gethostname()}: let that run "
                                     "finish (or stop it), or use another workdir")
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["run"]["log_every"] == h.TINY["log_every"]
    assert h.step_metrics(workdir) == h.step_metrics(reference)  # each step once


def test_eval_on_empty_checkpoints_is_one_line(reference, tmp_path, environ):
    workdir = tmp_path / "run"
    os.makedirs(workdir / "checkpoints")
    shutil.copy(os.path.join(reference, "config.json"), workdir)
    result = h.run([sys.executable, "-m", "resnet_jax.cli", "eval", f"--workdir={workdir}"], environ)
    assert result.returncode == 2
    assert result.stderr == f"resnet-jax eval: error: '{workdir}' has no finished checkpoint\n"
    assert os.listdir(workdir / "checkpoints") == []


def _script(tmp_path) -> str:
    """A scripts/*.sh-style driver: one `rj train`, then a line that must not run after a stop."""
    path = tmp_path / "driver.sh"
    args = " ".join(f"'{a}'" for a in h.train_cmd(str(tmp_path / "run"))[3:])
    path.write_text(f"set -euo pipefail\nsource '{h.REPO}/scripts/common.sh'\n"
                    f"rj {args}\necho next-run-started\n")
    return str(path)


@pytest.mark.parametrize("to_group", [False, True], ids=["script", "process-group"])
def test_a_stopped_script_waits_for_the_trainer_to_save(to_group, tmp_path, environ, cli_env):
    workdir = str(tmp_path / "run")
    env = dict(cli_env, **{k: v for k, v in environ.items() if k.startswith(("JAX", "XLA"))})
    script = subprocess.Popen(["bash", _script(tmp_path)], cwd=h.REPO, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              start_new_session=True)
    seen = h.wait_for_step(script, workdir, 8)
    if to_group:  # a scheduler stopping the job: every process in it gets the signal
        os.killpg(script.pid, signal.SIGTERM)
    else:
        script.send_signal(signal.SIGTERM)
    stdout, stderr = script.communicate(timeout=240)
    assert script.returncode == 0, stderr[-3000:]  # the trainer's code after a save
    assert "next-run-started" not in stdout
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("resnet-jax train: preempted: checkpoint saved at step "), last
    stopped = int(last.split("at step ")[1].split()[0])
    assert seen <= stopped < h.TINY["steps"]
    # The trainer had finished its save when the script exited: no process holds the workdir.
    assert os.path.isdir(os.path.join(workdir, "checkpoints", str(stopped)))
    with pytest.raises(ProcessLookupError):
        os.killpg(script.pid, 0)


def test_a_run_refused_for_another_runs_checkpoint_leaves_the_lock_as_it_was(tiny_digits_run, tmp_path):
    from resnet_jax.configs import ConfigError
    from resnet_jax.train.loop import train_and_evaluate

    workdir = tmp_path / "run"
    shutil.copytree(tiny_digits_run, workdir)
    lock = workdir / ".lock"
    lock.write_bytes(b"4242 elsewhere\n")  # the run that wrote the folder
    with pytest.raises(ConfigError, match="from a run with seed=0, not 1"):
        train_and_evaluate(tiny_config(seed=1), str(workdir))
    assert lock.read_bytes() == b"4242 elsewhere\n"


def test_a_run_refused_as_busy_leaves_the_lock_as_it_was(tmp_path):
    from resnet_jax.configs import ConfigError
    from resnet_jax.train.workdir import lock_workdir
    from resnet_jax.train.workdir import exclusive

    workdir = str(tmp_path / "run")
    with exclusive(workdir):  # held by another open file description, as another process holds it
        before = (tmp_path / "run" / ".lock").read_bytes()
        with pytest.raises(ConfigError, match="is in use by pid"), lock_workdir(workdir):
            pass
        assert (tmp_path / "run" / ".lock").read_bytes() == before


def test_bad_data_found_after_the_lock_leaves_no_lock_and_no_checkpoints_folder(tmp_path, monkeypatch):
    """A dataset error raised while the data feed is made (an ImageNet image no decoder reads,
    for the mean image): exit 2, nothing written, and nothing left: no .lock, no checkpoints/."""
    from resnet_jax.data import DatasetError
    from resnet_jax.train import feeds
    from resnet_jax.train.loop import train_and_evaluate

    def undecodable(*args, **kwargs):
        raise DatasetError("cannot decode image n01440764_1.JPEG (label 0): not a JPEG")

    monkeypatch.setattr(feeds, "feed", undecodable)
    workdir = tmp_path / "new" / "run"
    with pytest.raises(DatasetError, match="cannot decode"):
        train_and_evaluate(tiny_config(), str(workdir))
    assert not workdir.exists() and os.listdir(tmp_path / "new") == []


def test_a_workdir_that_is_a_file_is_named_as_given(tmp_path):
    from resnet_jax.configs import ConfigError
    from resnet_jax.train.workdir import check_workdir

    path = tmp_path / "results.txt"
    path.write_text("not a folder")
    with pytest.raises(ConfigError) as error:
        check_workdir(str(path))
    assert str(error.value) == f"workdir {str(path)!r} is not a directory ({path} is a file)"
    with pytest.raises(ConfigError, match=f"is not a directory \\({path} is a file\\)"):
        check_workdir(str(path / "sub"))
