"""`train_seeds(config, workdir)`: seeds config.seed .. config.seed + num_seeds - 1 trained together.

`workdir/seed{s}/` holds what a single run's workdir holds (config.json with that seed, metrics.jsonl,
results.json), so `resnet-jax report table6` averages the seeds like separate runs and
`seed{s}/config.json` retrains that seed alone. `workdir/checkpoints/` holds the stacked state
(resume restarts every seed at the same step); `workdir/seeds.json` the run's aggregate throughput.
"""

from __future__ import annotations

import json
import math
import os
import time

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from resnet_jax.analysis.complexity import complexity
from resnet_jax.data import DATASETS, DatasetError, load_dataset
from resnet_jax.train import checkpoint
from resnet_jax.train.engine import DATA_AXIS, create_engine, put_dataset
from resnet_jax.train.loop import ConfigError, validate_config
from resnet_jax.train.metrics_log import MetricsLog, progress_bar
from resnet_jax.train.seeds import SEEDS_MODES, SeedsEngine, seeds_mesh


def validate_seeds(config: ml_collections.ConfigDict, num_devices: int | None = None) -> None:
    num_devices = num_devices or jax.device_count()
    if config.num_seeds < 1:
        raise ConfigError(f"num_seeds must be positive, got {config.num_seeds}")
    if config.seeds_mode not in SEEDS_MODES:
        raise ConfigError(f"unknown seeds_mode {config.seeds_mode!r}: expected one of "
                          f"{', '.join(SEEDS_MODES)}")
    if config.dataset not in DATASETS:
        raise ConfigError(f"several seeds per run need a device-resident dataset "
                          f"({', '.join(DATASETS)}), not {config.dataset!r}")
    if config.seeds_mode == "devices":
        data_devices = num_devices // math.gcd(config.num_seeds, num_devices)
        if config.batch_size % data_devices:
            raise ConfigError(f"batch_size {config.batch_size} is not divisible by the {data_devices} "
                              f"devices each seed gets")


def _record(metrics: list[dict], seed_index: int) -> dict:
    """Mean loss/error over the interval and the last lr of one seed ([seeds, steps] arrays)."""
    cat = lambda k: np.concatenate([m[k][seed_index] for m in metrics])  # noqa: E731
    return {"lr": float(cat("lr")[-1]), "loss": float(np.mean(cat("loss"))),
            "train_error": float(np.mean(cat("error")))}


def train_seeds(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
    """Train every seed; returns each seed's results.json."""
    validate_config(config)
    validate_seeds(config)
    dataset = load_dataset(config.dataset, config.eval_split, config.data_dir)
    if len(dataset.train_images) < config.batch_size:
        raise DatasetError(f"{dataset.name} has {len(dataset.train_images)} training images, fewer "
                           f"than one batch of {config.batch_size}")
    mesh = seeds_mesh(config.num_seeds, config.seeds_mode)
    data_devices = mesh.shape[DATA_AXIS]
    config = ml_collections.ConfigDict(config)  # local copy; the caller's stays untouched
    config.eval_batch_size = min(config.eval_batch_size,
                                 -(-len(dataset.eval_images) // data_devices) * data_devices)
    seeds = tuple(config.seed + i for i in range(config.num_seeds))
    seed_dirs = [os.path.join(workdir, f"seed{s}") for s in seeds]
    try:
        for d in seed_dirs:
            os.makedirs(d, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"workdir {workdir!r} is not writable ({e.strerror})") from None
    is_main = jax.process_index() == 0

    engine = create_engine(config, dataset.crop_padding, dataset.num_classes, mesh=mesh)
    multi = SeedsEngine(engine, seeds, config.seeds_mode)
    data = put_dataset(dataset, mesh, config.eval_batch_size)
    state = multi.init_state(dataset.image_shape)
    info = complexity(engine.model, dataset.image_shape, config.model)
    mngr = checkpoint.manager(workdir, config.keep_checkpoints)
    identity = {f: config[f] for f in checkpoint.IDENTITY_FIELDS}
    try:
        restored = checkpoint.restore_for_resume(
            mngr, jax.tree.map(ocp.utils.to_shape_dtype_struct, state), identity)
    except checkpoint.CheckpointError as e:
        raise ConfigError(str(e)) from None
    state = state if restored is None else restored[0]
    start = int(jax.device_get(state.step)[0])
    logs = [MetricsLog(os.path.join(d, "metrics.jsonl"), enabled=is_main) for d in seed_dirs]
    wall_offset = [log.resume(start) for log in logs][0]
    if is_main:
        for s, d in zip(seeds, seed_dirs):  # each seed's config reproduces it as a single run
            alone = ml_collections.ConfigDict(config)
            alone.update(seed=s, num_seeds=1)
            with open(os.path.join(d, "config.json"), "w") as f:
                f.write(alone.to_json_best_effort(indent=2))
        logging.info("%s on %s: seeds %s together (%s), %d params each, %d devices%s", config.model,
                     dataset.name, ",".join(map(str, seeds)), config.seeds_mode, info.params,
                     jax.device_count(), f", resumed at step {start}" if start else "")

    per_call = 1 if jax.default_backend() == "cpu" else config.steps_per_call  # see loop.py
    boundaries = (config.log_every, config.eval_every, config.checkpoint_every)
    bar = progress_bar(config.steps, start, enabled=is_main and config.progress)
    t0 = t_log = time.perf_counter()
    pending, step, last_step_logged, rates = [], start, start, []
    evaluated = None
    while step < config.steps:
        n = min([per_call, config.steps - step] + [b - step % b for b in boundaries])
        state, metrics = multi.train_chunk(state, data, n)
        pending.append(metrics)
        step += n
        done = step == config.steps
        if all(step % b for b in boundaries) and not done:  # checkpoints come with a record
            continue
        host = jax.device_get(pending)  # the only host sync: once per log interval
        pending = []
        now = time.perf_counter()
        rate = config.batch_size * (step - last_step_logged) / (now - t_log)  # per seed
        if last_step_logged > start:  # the first interval pays for compilation
            rates.append(rate)
        records = [{"step": step, **_record(host, i), "images_per_sec": round(rate, 1),
                    "wall_time": round(wall_offset + now - t0, 2)} for i in range(len(seeds))]
        bad = [s for s, r in zip(seeds, records) if not np.isfinite(r["loss"])]
        if bad:
            raise FloatingPointError(f"loss of seed(s) {bad} became non-finite by step {step}; last "
                                     f"checkpoint at step {mngr.latest_step()}")
        if step % config.eval_every == 0 or done:
            evaluated = jax.device_get(multi.evaluate(state, data))
            for i, r in enumerate(records):
                r.update({k: float(v[i]) for k, v in evaluated.items()})
        for log, r in zip(logs, records):
            log.append(r)
        bar.update(step - last_step_logged)
        bar.set_postfix({"mean_loss": f"{np.mean([r['loss'] for r in records]):.4f}"}, refresh=False)
        last_step_logged, t_log = step, time.perf_counter()
        if step % config.checkpoint_every == 0 or done:
            meta = dict(identity, step=step, num_seeds=len(seeds), pending=[])
            mngr.save(step, args=ocp.args.Composite(**{
                checkpoint.STATE: ocp.args.StandardSave(state),
                checkpoint.META: ocp.args.JsonSave(meta)}), force=True)
    bar.close()
    mngr.wait_until_finished()
    mngr.close()

    if evaluated is None:  # resumed a finished run: evaluate the restored state
        evaluated = jax.device_get(multi.evaluate(state, data))
    wall_time = round(wall_offset + time.perf_counter() - t0, 2)
    per_seed_rate = round(float(np.median(rates)), 1) if rates else None
    results = [{
        "model": config.model, "shortcut": config.shortcut, "dataset": dataset.name,
        "eval_split": dataset.eval_split, "params": info.params, "mult_adds": info.mult_adds,
        "steps": config.steps, "batch_size": config.batch_size, "devices": jax.device_count(),
        "test_error": float(evaluated["test_error"][i]), "test_loss": float(evaluated["test_loss"][i]),
        "wall_time": wall_time, "images_per_sec": per_seed_rate,
        "backend": jax.default_backend(), "seed": s,
        "trained_with_seeds": list(seeds), "seeds_mode": config.seeds_mode,
    } for i, s in enumerate(seeds)]
    if is_main:
        for d, r in zip(seed_dirs, results):
            with open(os.path.join(d, "results.json"), "w") as f:
                json.dump(r, f, indent=2)
        summary = {"model": config.model, "seeds": list(seeds), "seeds_mode": config.seeds_mode,
                   "devices": jax.device_count(), "steps": config.steps, "wall_time": wall_time,
                   "images_per_sec_per_seed": per_seed_rate,
                   "images_per_sec_all_seeds": per_seed_rate and round(per_seed_rate * len(seeds), 1),
                   "test_errors": [r["test_error"] for r in results]}
        with open(os.path.join(workdir, "seeds.json"), "w") as f:
            json.dump(summary, f, indent=2)
        logging.info("done: test errors %s after %d steps",
                     ", ".join(f"{100 * r['test_error']:.2f}%" for r in results), step)
    return results
