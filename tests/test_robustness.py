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
    written), a completed one whose manifest was not yet written (not finished: not trusted, even
    when its files are then damaged), and half a metrics record."""
    workdir = _copy_run(reference, tmp_path / "run", keep=(24, 30))
    checkpoints = os.path.join(workdir, "checkpoints")
    os.remove(os.path.join(checkpoints, "30", "sha256_manifest.json"))
    largest = max((p for p in glob.glob(os.path.join(checkpoints, "30", "**", "*"), recursive=True)
                   if os.path.isfile(p)), key=os.path.getsize)
    with open(largest, "r+b") as f:  # 64 bytes damaged in place: no reader notices
        f.seek(os.path.getsize(largest) // 2)
        f.write(os.urandom(64))
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
    assert "resumed at step 24" in rerun.stderr and _quiet(rerun.stderr), rerun.stderr[-3000:]
    [warning] = _warnings(rerun.stderr)
    assert "checkpoints/30 is unreadable (its save did not finish: it has no checksum manifest)" in warning
    assert h.step_metrics(workdir) == h.step_metrics(reference)
    assert sorted(os.listdir(checkpoints)) == ["24", "30", "36"]
    assert os.listdir(os.path.join(workdir, "corrupt_checkpoints")) == ["30"]
    assert_events_mirror_metrics(workdir)  # the killed run's events past step 24 are gone
    # The final state is the uninterrupted run's, bit for bit.
    import jax
    import numpy as np
    for x, y in zip(jax.tree.leaves(h.restore_state(workdir)), jax.tree.leaves(h.restore_state(reference))):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


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


# `resnet-jax train ARGS` with every folder under checkpoints/ refused as on a read-only mount (the
# folder itself exists, as a mount point does): the fault a test can inject without root.
READ_ONLY_CHECKPOINTS = """
import errno, os, runpy, sys
real_mkdir = os.mkdir
def mkdir(path, *args, **kwargs):
    if os.sep + "checkpoints" + os.sep in os.path.abspath(os.fspath(path)):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
    return real_mkdir(path, *args, **kwargs)
os.mkdir = mkdir
sys.argv = ["resnet-jax", *sys.argv[1:]]
runpy.run_module("resnet_jax.cli", run_name="__main__", alter_sys=True)
"""


def test_a_read_only_checkpoint_folder_is_one_line_and_a_prompt_exit(tmp_path, environ):
    workdir = str(tmp_path / "run")
    os.makedirs(os.path.join(workdir, "checkpoints"))
    cmd = [sys.executable, "-c", READ_ONLY_CHECKPOINTS, *h.train_cmd(workdir, steps=6)[3:]]
    proc = h.start(cmd, environ)
    try:
        lines = []
        for line in proc.stderr:  # until the error is said
            lines.append(line)
            if line.startswith("resnet-jax train: error:"):
                break
        said = time.monotonic()
        rest = proc.communicate(timeout=60)[1]  # not orbax's 300 s wait for its threads
        took = time.monotonic() - said
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    stderr = "".join(lines) + rest
    assert proc.returncode == 3, stderr[-3000:]
    assert lines[-1].strip() == ("resnet-jax train: error: the checkpoint of step 6 could not be written "
                                 "(Read-only file system); no checkpoint was saved; rerun the same "
                                 "command once the cause is fixed (it starts over)"), stderr[-3000:]
    assert rest.strip() == "" and _quiet(stderr), stderr[-3000:]  # no RuntimeWarning lines after it
    assert took < 30, took


def _damage_metrics_line(workdir: str, step: int) -> int:
    """Replace the record of `step` in metrics.jsonl by a whole line of garbage (newline kept, as a
    torn write on disk can leave it); returns its line number."""
    path = os.path.join(workdir, "metrics.jsonl")
    with open(path) as f:
        lines = f.readlines()
    number = next(i for i, line in enumerate(lines) if f'"step": {step},' in line)
    lines[number] = '{"step": 3' + "\x00" * 20 + "\n"
    with open(path, "w") as f:
        f.writelines(lines)
    return number + 1


def test_a_damaged_metrics_line_past_the_checkpoint_is_dropped_with_one_warning(
        reference, tmp_path, environ):
    workdir = _copy_run(reference, tmp_path / "run", keep=(24, 30))  # resumes at 30, logged up to 28
    number = _damage_metrics_line(workdir, 32)
    rerun = h.run(h.train_cmd(workdir), environ)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resumed at step 30" in rerun.stderr and _quiet(rerun.stderr), rerun.stderr[-3000:]
    [warning] = _warnings(rerun.stderr)
    assert f"metrics.jsonl:{number} is not a JSON record; dropped with the records past step 30" in warning
    assert h.step_metrics(workdir) == h.step_metrics(reference)


def test_a_damaged_metrics_line_the_resume_would_keep_is_one_line_exit_2(reference, tmp_path, environ):
    workdir = _copy_run(reference, tmp_path / "run", keep=(24, 30))
    number = _damage_metrics_line(workdir, 20)
    with open(os.path.join(workdir, "metrics.jsonl"), "rb") as f:
        before = f.read()
    rerun = h.run(h.train_cmd(workdir), environ)
    assert rerun.returncode == 2, rerun.stderr[-3000:]
    path = os.path.join(workdir, "metrics.jsonl")
    assert rerun.stderr.strip().splitlines()[-1] == (
        f"resnet-jax train: error: {path}:{number} is not a JSON record and may hold the record of a "
        "step up to 30, where the run resumes: restore the file, or remove that line to resume "
        "without it")
    assert _quiet(rerun.stderr), rerun.stderr[-3000:]
    with open(path, "rb") as f:
        assert f.read() == before
