"""`train_and_evaluate(config, workdir)`: the one training loop every experiment shares."""

from __future__ import annotations

import json
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from resnet_jax.analysis.complexity import complexity
from resnet_jax.data import DATASETS, DatasetError
from resnet_jax.models import DTYPES, parse_model_name
from resnet_jax.models.layers import SHORTCUT_OPTIONS
from resnet_jax.train import checkpoint, inputs
from resnet_jax.train.engine import create_engine
from resnet_jax.train.metrics_log import MetricsLog, progress_bar
from resnet_jax.train.preemption import Preempted, PreemptionWatcher


class ConfigError(ValueError):
    """An invalid configuration, reported before anything is written."""


class TrainingDiverged(FloatingPointError):
    """The loss (or the parameters) became NaN/inf; names the step and the last good checkpoint."""


def validate_config(config: ml_collections.ConfigDict, num_devices: int | None = None) -> None:
    """Reject bad configs with one clear sentence (model, dataset, steps, batch/device/BN groups)."""
    num_devices = num_devices or jax.device_count()
    try:
        family, _, _ = parse_model_name(config.model)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if config.dataset not in (*DATASETS, *inputs.HOST_FED):
        raise ConfigError(f"unknown dataset {config.dataset!r}: expected one of "
                          f"{', '.join((*DATASETS, *inputs.HOST_FED))}")
    if (family == "imagenet") != (config.dataset == "imagenet"):
        raise ConfigError(f"{config.model} cannot train on {config.dataset}: ImageNet nets train on "
                          "imagenet (experiments/table2.py etc.), CIFAR nets on the other datasets")
    if config.shortcut not in (SHORTCUT_OPTIONS if family == "imagenet" else SHORTCUT_OPTIONS[:2]):
        raise ConfigError(f"{family} shortcut must be one of "
                          f"{SHORTCUT_OPTIONS if family == 'imagenet' else SHORTCUT_OPTIONS[:2]}, "
                          f"got {config.shortcut!r}")
    if problem := inputs.validate(config):
        raise ConfigError(problem)
    if config.dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {config.dtype!r}: expected one of {sorted(DTYPES)}")
    for field in ("steps", "batch_size", "log_every", "eval_every", "checkpoint_every",
                  "eval_batch_size", "steps_per_call"):
        if int(getattr(config, field)) <= 0:
            raise ConfigError(f"{field} must be positive, got {getattr(config, field)}")
    if config.batch_size % num_devices:
        raise ConfigError(f"batch_size {config.batch_size} is not divisible by the {num_devices} devices")
    if config.eval_batch_size % num_devices:
        raise ConfigError(f"eval_batch_size {config.eval_batch_size} is not divisible by the "
                          f"{num_devices} devices")
    if config.bn_group_size < 0 or config.keep_checkpoints < 1:
        raise ConfigError(f"bn_group_size must be >= 0 (0 = whole batch) and keep_checkpoints >= 1, "
                          f"got {config.bn_group_size} and {config.keep_checkpoints}")
    if config.bn_group_size and config.batch_size % config.bn_group_size:
        raise ConfigError(f"batch_size {config.batch_size} is not divisible by bn_group_size "
                          f"{config.bn_group_size}")


def check_workdir(workdir: str) -> None:
    """Prove `workdir` (or, if it does not exist yet, its nearest existing parent) a writable
    directory, without creating anything, so a bad path fails before any work or output."""
    probe = os.path.abspath(workdir)
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    try:
        with tempfile.TemporaryFile(dir=probe):  # unique name: all processes probe at once
            pass
        if os.path.isdir(workdir):
            os.listdir(workdir)
    except OSError as e:
        raise ConfigError(f"workdir {workdir!r} is not a writable directory "
                          f"({e.strerror}: {e.filename or probe})") from None


def run_identity(config: ml_collections.ConfigDict) -> dict:
    return {field: config.get(field) for field in checkpoint.IDENTITY_FIELDS}


@jax.jit
def _all_finite(tree) -> jax.Array:
    return jnp.all(jnp.stack([jnp.isfinite(x).all() for x in jax.tree.leaves(tree)]))


def _check_finite(pending: list[dict], first_step: int, state, mngr) -> None:
    """Stop on the first non-finite loss (or non-finite parameters before a save)."""
    losses = np.concatenate([m["loss"] for m in pending])
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        what = f"loss became {losses[bad[0]]} at step {first_step + int(bad[0])}"
    elif not bool(jax.device_get(_all_finite(state.params))):
        what = f"parameters became non-finite by step {first_step + len(losses) - 1}"
    else:
        return
    mngr.wait_until_finished()
    last = mngr.latest_step()
    where = (f"last good checkpoint: step {last} ({checkpoint.step_dir(mngr, last)})" if last is not None
             else "no checkpoint was saved")
    raise TrainingDiverged(f"{what}; {where}")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Train `config.model` on `config.dataset`, evaluating periodically; returns results.json.

    Resumes from the newest checkpoint in `workdir`. Raises Preempted after saving a checkpoint when
    asked to stop (SIGTERM / TPU preemption), TrainingDiverged on a NaN/inf loss.
    """
    validate_config(config)
    dataset = inputs.load(config)
    if len(dataset.train_images) < config.batch_size:
        raise DatasetError(f"{dataset.name} has {len(dataset.train_images)} training images, fewer "
                           f"than one batch of {config.batch_size}")
    eval_batch = min(config.eval_batch_size,
                     -(-len(dataset.eval_images) // jax.device_count()) * jax.device_count())
    config = ml_collections.ConfigDict(config)  # local copy; the caller's stays untouched
    config.eval_batch_size = eval_batch
    check_workdir(workdir)
    os.makedirs(workdir, exist_ok=True)
    is_main = jax.process_index() == 0

    engine = create_engine(config, dataset.crop_padding, dataset.num_classes)
    data = inputs.feed(dataset, engine, eval_batch, workdir)  # device-resident or host-fed
    info = complexity(engine.model, dataset.image_shape, config.model)
    mngr = checkpoint.manager(workdir, config.keep_checkpoints)
    identity = run_identity(config)
    try:
        restored = checkpoint.restore_for_resume(mngr, engine.abstract_state(dataset.image_shape),
                                                 identity)
    except checkpoint.CheckpointError as e:
        raise ConfigError(str(e)) from None
    if restored is None:
        state, pending = engine.init_state(dataset.image_shape), []
    else:
        state, pending = restored[0], checkpoint.pending_metrics(restored[1])
    start = int(jax.device_get(state.step))
    log = MetricsLog(os.path.join(workdir, "metrics.jsonl"), enabled=is_main)
    wall_offset = log.resume(start)
    if is_main:
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json_best_effort(indent=2))
        logging.info("%s on %s (%s split): %d params, %.1fM mult-adds/image, %d devices in %d "
                     "processes%s", config.model, dataset.name, dataset.eval_split, info.params,
                     info.mult_adds / 1e6, jax.device_count(), jax.process_count(),
                     f", resumed at step {start}" if start else "")

    # XLA:CPU runs convolutions inside a while loop ~7x slower than straight-line code (measured on
    # 2 cores), so on CPU each call runs one step; accelerators scan `steps_per_call` steps per call.
    # Chunks end on every log/eval/checkpoint boundary, and checkpoints are only taken at chunk
    # ends, so a resumed run replays exactly the same sequence of jit calls.
    per_call = 1 if jax.default_backend() == "cpu" else config.steps_per_call
    boundaries = (config.log_every, config.eval_every, config.checkpoint_every)
    bar = progress_bar(config.steps, start, enabled=is_main and config.progress)
    t0 = t_log = time.perf_counter()
    # `pending` holds the per-step metrics since the last record (restored ones included), so the
    # record that straddles a resume averages over the same steps as an uninterrupted run's.
    step, last_step_logged, rates = start, start - sum(len(m["loss"]) for m in pending), []
    record = {}
    with PreemptionWatcher(mngr) as watcher:
        while step < config.steps:
            n = min([per_call, config.steps - step] + [b - step % b for b in boundaries])
            state, metrics = data.train_chunk(state, n)
            pending.append(metrics)
            step += n
            done = step == config.steps
            stop = watcher.should_stop(step)
            log_now = step % config.log_every == 0 or step % config.eval_every == 0 or done
            save_now = step % config.checkpoint_every == 0 or done or stop
            if not (log_now or save_now):
                continue
            pending = jax.device_get(pending)  # the only host sync: once per log/checkpoint interval
            _check_finite(pending, last_step_logged + 1, state, mngr)
            if log_now:
                now = time.perf_counter()
                rate = config.batch_size * (step - max(last_step_logged, start)) / (now - t_log)
                if t_log > t0:  # the first interval pays for compiling
                    rates.append(rate)
                record = {"step": step,
                          "lr": float(pending[-1]["lr"][-1]),
                          "loss": float(np.mean(np.concatenate([m["loss"] for m in pending]))),
                          "train_error": float(np.mean(np.concatenate([m["error"] for m in pending]))),
                          "images_per_sec": round(rate, 1),
                          "wall_time": round(wall_offset + now - t0, 2)}
                if step % config.eval_every == 0 or done:
                    record.update({k: float(v) for k, v in
                                   jax.device_get(data.evaluate(state)).items()})
                log.append(record)
                bar.update(step - bar.n)
                bar.set_postfix({k: f"{record[k]:.4f}" for k in ("loss", "train_error", "test_error")
                                 if k in record}, refresh=False)
                pending, last_step_logged, t_log = [], step, time.perf_counter()
            if save_now:
                meta = dict(identity, step=step, pending=[
                    {k: np.asarray(v).tolist() for k, v in m.items()} for m in pending])
                checkpoint.save(mngr, state, meta, force=True)
            if stop and not done:
                bar.close()
                mngr.wait_until_finished()
                mngr.close()
                raise Preempted(step, checkpoint.step_dir(mngr, step))
    bar.close()
    mngr.wait_until_finished()
    mngr.close()

    if "test_error" not in record:  # resumed a finished run: evaluate the restored state
        record = {k: float(v) for k, v in jax.device_get(data.evaluate(state)).items()}
    results = {
        "model": config.model, "shortcut": config.shortcut, "dataset": dataset.name,
        "eval_split": dataset.eval_split, "params": info.params, "mult_adds": info.mult_adds,
        "steps": config.steps, "batch_size": config.batch_size, "devices": jax.device_count(),
        "processes": jax.process_count(),
        "test_error": record["test_error"], "test_loss": record["test_loss"],
        **{k: record[k] for k in ("test_top5_error",) if k in record},  # ImageNet
        "wall_time": round(wall_offset + time.perf_counter() - t0, 2),
        "images_per_sec": round(float(np.median(rates)), 1) if rates else None,
        "backend": jax.default_backend(), "seed": config.seed,
    }
    if is_main:
        with open(os.path.join(workdir, "results.json"), "w") as f:
            json.dump(results, f, indent=2)
        logging.info("done: test error %.2f%% after %d steps", 100 * results["test_error"], step)
    return results
