"""Runs that fail lose nothing: one run per workdir, a full disk stops the run with exit 3 and the
rerun resumes, kills in the middle of a write leave nothing a rerun trips on, damaged checkpoints are
detected and skipped in one line, and the scripts pass a stop on to the trainer and wait for it."""

from __future__ import annotations

import errno
import glob
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

import pytest

import scaleout_helpers as h
from tb_events import assert_events_mirror_metrics

TMP = ".orbax-checkpoint-tmp"
NOISE = ("Traceback", "Exception ignored", "ERROR", "E1", "E0")  # what a one-line report must not have


def _quiet(stderr: str) -> bool:
    return not any(word in stderr for word in NOISE)


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(("W1", "W0", "WARNING"))]


def _steps(workdir: str) -> list[int]:
    return [r["step"] for r in h.read_metrics(workdir)]


def _eval_cmd(workdir) -> list[str]:
    return [sys.executable, "-m", "resnet_jax.cli", "eval", f"--workdir={workdir}"]


def _copy_run(reference: str, workdir, keep: tuple[int, ...] = (24, 30, 36)):
    """The reference run as if it had stopped after its newest kept checkpoint."""
    shutil.copytree(reference, workdir)
    os.remove(os.path.join(workdir, "results.json"))
    for step in {24, 30, 36} - set(keep):
        shutil.rmtree(os.path.join(workdir, "checkpoints", str(step)))
    return str(workdir)


def _fsize_limited(limit: int):
    def preexec():
        # Writes past `limit` bytes fail with EFBIG, as a full disk fails them with ENOSPC: in
        # orbax's background threads, the same path. (SIGXFSZ would kill the process instead.)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_a_failed_checkpoint_write_stops_the_run_with_exit_3_and_the_rerun_resumes(
        reference, tmp_path, environ):
    workdir = _copy_run(reference, tmp_path / "run", keep=(24,))
    cmd = h.train_cmd(workdir)
    # Checkpoint data files are ~100-300 KB, metrics.jsonl and config.json ~1 KB: only the save
    # at step 30 fails.
    full = subprocess.run(cmd, cwd=h.REPO, env=dict(environ, JAX_COMPILATION_CACHE_DIR=""),
                          capture_output=True, text=True, timeout=240,
                          preexec_fn=_fsize_limited(50_000))
    assert full.returncode == 3, full.stderr[-3000:]
    assert _quiet(full.stderr), full.stderr[-3000:]
    last = full.stderr.strip().splitlines()[-1]
    assert last == (f"resnet-jax train: error: the checkpoint of step 30 could not be written "
                    f"(File too large); last good checkpoint: step 24 "
                    f"({os.path.join(workdir, 'checkpoints', '24')}); rerun the same command once "
                    "the cause is fixed to resume from it")
    # Stopped by the next save at the latest (here the last step's); nothing half-written left.
    assert not os.path.exists(os.path.join(workdir, "results.json"))
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["24"]
    assert not os.path.exists(os.path.join(workdir, "results.json"))

    rerun = h.run(cmd, environ)  # space is back
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resumed at step 24" in rerun.stderr
    assert h.step_metrics(workdir) == h.step_metrics(reference)  # each step once, same values


def test_a_failed_metrics_write_leaves_no_partial_record(tmp_path, monkeypatch):
    from resnet_jax import runs

    log = runs.MetricsLog(str(tmp_path / "metrics.jsonl"))
    log.append({"step": 4, "wall_time": 1.0})
    real_write = os.write

    def disk_fills_up(fd, data):
        real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(runs.os, "write", disk_fills_up)
    with pytest.raises(runs.RunIOError, match=r"cannot write .*metrics.jsonl \(No space left on device\)"):
        log.append({"step": 8, "wall_time": 2.0})
    monkeypatch.undo()
    with open(log.path) as f:
        assert f.read() == '{"step": 4, "wall_time": 1.0}\n'
    log.append({"step": 8, "wall_time": 2.0})
    assert [r["step"] for r in log.read()] == [4, 8]


def test_the_os_cause_of_an_orbax_write_error_is_named():
    from resnet_jax.runs import os_cause

    tensorstore = ValueError('OUT_OF_RANGE: Error writing "params.w/0" in OCDBT database: Failed to '
                             "write 229680 bytes to file 4: No space left [os_error_code='28']")
    assert os_cause(tensorstore) == "No space left on device"
    try:
        try:
            raise OSError(errno.EIO, "Input/output error", "/ckpt/x")
        except OSError as e:
            raise RuntimeError("save failed") from e
    except RuntimeError as e:
        assert os_cause(e) == "Input/output error"


def test_a_run_killed_while_writing_a_checkpoint_and_metrics_resumes_each_step_once(
        reference, tmp_path, environ):
    """What kill -9 can leave: a save that never completed (orbax's temporary folder, half
    written), a completed one whose manifest was not yet written, and half a metrics record."""
    workdir = _copy_run(reference, tmp_path / "run", keep=(24, 30))
    checkpoints = os.path.join(workdir, "checkpoints")
    os.remove(os.path.join(checkpoints, "30", "sha256_manifest.json"))
    shutil.copytree(os.path.join(reference, "checkpoints", "36"),
                    os.path.join(checkpoints, "36.orbax-checkpoint-tmp"))
    for path in glob.glob(os.path.join(checkpoints, "36.orbax-checkpoint-tmp", "state", "**", "*"),
                          recursive=True):
        if os.path.isfile(path):
            os.truncate(path, os.path.getsize(path) // 3)
    with open(os.path.join(workdir, "metrics.jsonl"), "rb+") as f:
        data = f.read()
        f.seek(0)
        f.truncate()
        f.write(data[: data.rindex(b"\n", 0, len(data) - 1) + 20])  # the last record cut short
    assert _steps(workdir)[-1] == 32

    rerun = h.run(h.train_cmd(workdir), environ)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resumed at step 30" in rerun.stderr and _quiet(rerun.stderr), rerun.stderr[-3000:]
    assert h.step_metrics(workdir) == h.step_metrics(reference)
    assert sorted(os.listdir(checkpoints)) == ["24", "30", "36"]
    assert_events_mirror_metrics(workdir)  # the killed run's events past step 30 are gone


def test_a_real_kill_during_a_save_resumes_each_step_once(reference, tmp_path, environ):
    """kill -9 the moment a checkpoint's temporary folder appears (a save every step)."""
    workdir = str(tmp_path / "run")
    cmd = h.train_cmd(workdir, checkpoint_every=1)
    proc = h.start(cmd, environ)
    checkpoints = os.path.join(workdir, "checkpoints")
    saving = lambda: any(TMP in d for d in os.listdir(checkpoints))  # noqa: E731
    caught = False
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        # (past the first few saves, so the rerun resumes rather than starts over)
        if os.path.isdir(os.path.join(checkpoints, "4")) and saving():
            proc.kill()
            proc.wait()
            caught = saving()  # the temporary folder outlived the process: killed mid-save
            break
    proc.communicate()
    assert caught, "the kill did not land during a save"
    rerun = h.run(h.train_cmd(workdir), environ)  # (how often it saves does not change a step)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resumed at step" in rerun.stderr and _quiet(rerun.stderr), rerun.stderr[-3000:]
    assert not saving()
    assert h.step_metrics(workdir) == h.step_metrics(reference)


def test_bytes_overwritten_in_a_checkpoint_are_detected_and_the_previous_one_used(
        reference, tmp_path, environ):
    workdir = _copy_run(reference, tmp_path / "run")
    newest = os.path.join(workdir, "checkpoints", "36")
    largest = max((p for p in glob.glob(os.path.join(newest, "**", "*"), recursive=True)
                   if os.path.isfile(p)), key=os.path.getsize)
    size = os.path.getsize(largest)
    with open(largest, "r+b") as f:  # in place: same size, same names, no error from any reader
        f.seek(size // 2)
        f.write(os.urandom(4096))
    assert os.path.getsize(largest) == size

    evaluated = h.run(_eval_cmd(workdir), environ)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "at step 30:" in evaluated.stdout
    assert _quiet(evaluated.stderr) and len(evaluated.stderr.strip().splitlines()) == 1, evaluated.stderr
    assert "checkpoints/36 is unreadable" in evaluated.stderr
    assert "does not match its SHA-256 checksum" in evaluated.stderr
    assert os.path.isdir(newest)  # eval moves nothing

    rerun = h.run(h.train_cmd(workdir), environ)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert _quiet(rerun.stderr), rerun.stderr[-3000:]
    [warning] = _warnings(rerun.stderr)
    assert "checkpoints/36 is unreadable" in warning and "does not match its SHA-256" in warning
    assert "moved to" in warning and warning.endswith("using the checkpoint of step 30 instead")
    assert "resumed at step 30" in rerun.stderr
    assert os.listdir(os.path.join(workdir, "corrupt_checkpoints")) == ["36"]
    assert h.step_metrics(workdir) == h.step_metrics(reference)
