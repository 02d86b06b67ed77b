"""Never lose a run: SIGKILL and SIGTERM mid-run, then resume, give bit-identical parameters and the
same metrics as an uninterrupted run; corrupt checkpoints fall back; NaN stops with the step."""

from __future__ import annotations

import os
import signal

import jax
import numpy as np
import pytest

import scaleout_helpers as h


@pytest.fixture(scope="module")
def diverging_run(tmp_path_factory):
    """lr 1e30 with a checkpoint every step; started first so it shares the cores with the reference."""
    workdir = str(tmp_path_factory.mktemp("diverging") / "run")
    proc = h.start(h.train_cmd(workdir, lr=1e30, checkpoint_every=1),
                   h.env(1, h.cache_dir(tmp_path_factory)))
    yield proc, workdir
    if proc.poll() is None:
        proc.kill()


@pytest.fixture(scope="module")
def reference(diverging_run, tmp_path_factory):
    return h.reference_run(tmp_path_factory)


def _assert_bit_identical(a, b):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b) > 10
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_reference_keeps_the_last_k_checkpoints(reference):
    steps = sorted(int(d) for d in os.listdir(os.path.join(reference, "checkpoints")))
    assert steps == [24, 30, 36]  # keep_checkpoints=3, every 6 steps
    assert [r["step"] for r in h.read_metrics(reference)] == list(range(4, 37, 4))


def test_killed_then_preempted_run_resumes_bit_identically(reference, tmp_path_factory, tmp_path):
    """SIGKILL, resume, SIGTERM, resume: the final state and every metric record match the
    uninterrupted run exactly, with no step logged twice or missing."""
    workdir, environ = str(tmp_path / "run"), h.env(1, h.cache_dir(tmp_path_factory))
    cmd = h.train_cmd(workdir)

    proc = h.start(cmd, environ)
    h.wait_for_step(proc, workdir, 8, checkpoint=6)
    proc.kill()  # SIGKILL: no chance to save; the newest checkpoint is at most a few steps back
    proc.wait()
    assert not os.path.exists(os.path.join(workdir, "results.json"))

    proc = h.start(cmd, environ)
    seen = h.wait_for_step(proc, workdir, 16)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr[-3000:]
    assert "resumed at step" in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("resnet-jax train: preempted: checkpoint saved at step "), last
    stopped = int(last.split("at step ")[1].split()[0])
    assert seen <= stopped < h.TINY["steps"]
    assert os.path.isdir(os.path.join(workdir, "checkpoints", str(stopped)))
    assert not os.path.exists(os.path.join(workdir, "results.json"))

    result = h.run(cmd, environ)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resumed at step {stopped}" in result.stderr
    _assert_bit_identical(h.restore_state(workdir), h.restore_state(reference))
    assert h.step_metrics(workdir) == h.step_metrics(reference)


def test_corrupt_latest_checkpoint_falls_back_to_the_previous(reference, tmp_path, caplog):
    import shutil

    from resnet_jax.train import checkpoint

    workdir = tmp_path / "run"
    shutil.copytree(os.path.join(reference, "checkpoints"), workdir / "checkpoints")
    for root, _, files in os.walk(workdir / "checkpoints" / "36" / "state"):
        for name in files:  # truncate every data file of the newest checkpoint
            with open(os.path.join(root, name), "r+b") as f:
                f.truncate(max(0, os.path.getsize(f.name) // 2))
    target = h.restore_state(reference, 36)
    mngr = checkpoint.manager(str(workdir), keep=3)
    state, meta = checkpoint.restore_for_resume(mngr, target, {"model": h.TINY["model"]})
    mngr.close()
    assert int(state.step) == meta["step"] == 30
    _assert_bit_identical(state, h.restore_state(reference, 30))
    assert "checkpoints/36 is unreadable" in caplog.text
    assert sorted(os.listdir(workdir / "checkpoints")) == ["24", "30"]
    assert os.listdir(workdir / "corrupt_checkpoints") == ["36"]

    with pytest.raises(checkpoint.CheckpointError, match="model='cifar_resnet8', not 'cifar_resnet20'"):
        checkpoint.restore_for_resume(checkpoint.manager(str(workdir)), target,
                                      {"model": "cifar_resnet20"})


def test_nan_loss_stops_with_the_step_and_last_good_checkpoint(diverging_run):
    proc, workdir = diverging_run
    _, stderr = proc.communicate(timeout=240)
    lines = [line for line in stderr.splitlines() if "error" in line]
    assert proc.returncode == 1 and len(lines) == 1, stderr[-3000:]
    assert lines[0].startswith("resnet-jax train: error: ")
    assert "non-finite" in lines[0] or "loss became" in lines[0]
    good = int(lines[0].split("last good checkpoint: step ")[1].split()[0])
    assert os.path.isdir(os.path.join(workdir, "checkpoints", str(good)))
    assert not os.path.exists(os.path.join(workdir, "results.json"))


def test_metrics_log_drops_a_partial_last_line_and_records_past_the_checkpoint(tmp_path):
    from resnet_jax.runs import MetricsLog

    log = MetricsLog(str(tmp_path / "metrics.jsonl"))
    for step in (4, 8, 12):
        log.append({"step": step, "wall_time": float(step)})
    with open(log.path, "a") as f:
        f.write('{"step": 16, "wall')  # killed mid-write
    assert log.resume(9) == 8.0
    assert [r["step"] for r in log.read()] == [4, 8]


def test_a_run_killed_before_its_first_checkpoint_was_sealed_starts_over(reference, tmp_path_factory,
                                                                        tmp_path):
    """Its only checkpoint lacks the manifest its meta promises: not finished, so not used (moved
    aside with one warning), and the rerun trains from step 0 to the uninterrupted run's records."""
    import shutil

    workdir = str(tmp_path / "run")
    shutil.copytree(reference, workdir)
    os.remove(os.path.join(workdir, "results.json"))
    for step in (30, 36):
        shutil.rmtree(os.path.join(workdir, "checkpoints", str(step)))
    os.remove(os.path.join(workdir, "checkpoints", "24", "sha256_manifest.json"))
    result = h.run(h.train_cmd(workdir), h.env(1, h.cache_dir(tmp_path_factory)))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed at step" not in result.stderr
    assert "checkpoints/24 is unreadable (its save did not finish" in result.stderr
    assert "starting over" in result.stderr
    assert h.step_metrics(workdir) == h.step_metrics(reference)
