"""`train_and_evaluate(config, workdir)`: the one training loop every experiment shares."""

from __future__ import annotations

import json
import os
import time

import jax
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


class ConfigError(ValueError):
    """An invalid configuration, reported before anything is written."""


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
    if config.bn_group_size and config.batch_size % config.bn_group_size:
        raise ConfigError(f"batch_size {config.batch_size} is not divisible by bn_group_size "
                          f"{config.bn_group_size}")


def _prepare_workdir(workdir: str) -> None:
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, ".write_test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise ConfigError(f"workdir {workdir!r} is not writable ({e.strerror})") from None


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Train `config.model` on `config.dataset`, evaluating periodically; returns results.json."""
    validate_config(config)
    dataset = inputs.load(config)
    if len(dataset.train_images) < config.batch_size:
        raise DatasetError(f"{dataset.name} has {len(dataset.train_images)} training images, fewer "
                           f"than one batch of {config.batch_size}")
    eval_batch = min(config.eval_batch_size,
                     -(-len(dataset.eval_images) // jax.device_count()) * jax.device_count())
    config = ml_collections.ConfigDict(config)  # local copy; the caller's stays untouched
    config.eval_batch_size = eval_batch
    _prepare_workdir(workdir)
    is_main = jax.process_index() == 0

    engine = create_engine(config, dataset.crop_padding, dataset.num_classes)
    data = inputs.feed(dataset, engine, eval_batch, workdir)  # device-resident or host-fed
    state = engine.init_state(dataset.image_shape)
    info = complexity(engine.model, dataset.image_shape, config.model)
    mngr = checkpoint.manager(workdir, config.keep_checkpoints)
    restored = checkpoint.restore_latest(mngr, state)
    state = restored if restored is not None else state
    start = int(jax.device_get(state.step))
    log = MetricsLog(os.path.join(workdir, "metrics.jsonl"), enabled=is_main)
    wall_offset = log.resume(start)
    if is_main:
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json_best_effort(indent=2))
        logging.info("%s on %s (%s split): %d params, %.1fM mult-adds/image, %d devices%s",
                     config.model, dataset.name, dataset.eval_split, info.params,
                     info.mult_adds / 1e6, jax.device_count(),
                     f", resumed at step {start}" if start else "")

    # XLA:CPU runs convolutions inside a while loop ~7x slower than straight-line code (measured on
    # 2 cores), so on CPU each call runs one step; accelerators scan `steps_per_call` steps per call.
    per_call = 1 if jax.default_backend() == "cpu" else config.steps_per_call
    boundaries = (config.log_every, config.eval_every, config.checkpoint_every)
    bar = progress_bar(config.steps, start, enabled=is_main and config.progress)
    t0 = t_log = time.perf_counter()
    pending, step, last_step_logged, rates = [], start, start, []
    record = {}
    while step < config.steps:
        n = min([per_call, config.steps - step] + [b - step % b for b in boundaries])
        state, metrics = data.train_chunk(state, n)
        pending.append(metrics)
        step += n
        done = step == config.steps
        if step % config.log_every and step % config.eval_every and not done:
            continue
        host = jax.device_get(pending)  # the only host sync: once per log interval
        pending = []
        now = time.perf_counter()
        rate = config.batch_size * (step - last_step_logged) / (now - t_log)
        if last_step_logged > start:  # the first interval pays for compilation
            rates.append(rate)
        record = {"step": step,
                  "lr": float(host[-1]["lr"][-1]),
                  "loss": float(np.mean(np.concatenate([m["loss"] for m in host]))),
                  "train_error": float(np.mean(np.concatenate([m["error"] for m in host]))),
                  "images_per_sec": round(rate, 1),
                  "wall_time": round(wall_offset + now - t0, 2)}
        if not np.isfinite(record["loss"]):
            raise FloatingPointError(f"loss became {record['loss']} by step {step}; last checkpoint "
                                     f"at step {mngr.latest_step()}")
        if step % config.eval_every == 0 or done:
            record.update({k: float(v) for k, v in jax.device_get(data.evaluate(state)).items()})
        log.append(record)
        bar.update(step - last_step_logged)
        bar.set_postfix({k: f"{record[k]:.4f}" for k in ("loss", "train_error", "test_error")
                         if k in record}, refresh=False)
        last_step_logged, t_log = step, time.perf_counter()
        if step % config.checkpoint_every == 0 or done:
            checkpoint.save(mngr, state, force=done)
    bar.close()
    mngr.wait_until_finished()
    mngr.close()

    if "test_error" not in record:  # resumed a finished run: evaluate the restored state
        record = {k: float(v) for k, v in jax.device_get(data.evaluate(state)).items()}
    results = {
        "model": config.model, "shortcut": config.shortcut, "dataset": dataset.name,
        "eval_split": dataset.eval_split, "params": info.params, "mult_adds": info.mult_adds,
        "steps": config.steps, "batch_size": config.batch_size, "devices": jax.device_count(),
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
