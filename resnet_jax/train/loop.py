"""`train_and_evaluate(config, workdir)`: the one training loop every experiment shares.

One module because its helpers (resume checks, finiteness, evaluation, the results record) serve
`train_and_evaluate` alone and share its run state and exit paths; the workdir's admission (a
writable directory, one run at a time) is train/workdir.py's.
"""

from __future__ import annotations

import contextlib
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from resnet_jax import configs, runs
from resnet_jax.configs import ConfigError
from resnet_jax.data import HOST_FED, ArrayDataset, DatasetError, HostDataset, open_dataset
from resnet_jax.models.complexity import complexity
from resnet_jax.runs import RunIOError
from resnet_jax.train import checkpoint, distributed, feeds, run_weights, seeds
from resnet_jax.train.distributed import fetch
from resnet_jax.train.engine import DATA_AXIS, create_engine, make_mesh, put_dataset, steps_per_call
from resnet_jax.train.preemption import Preempted, PreemptionWatcher
from resnet_jax.train.progress import Progress
from resnet_jax.train.schedule import PlateauRule
from resnet_jax.train.tensorboard_log import TensorBoardLog
from resnet_jax.train.workdir import NOTHING_WRITTEN, check_workdir, lock_workdir


class TrainingDiverged(FloatingPointError):
    """The loss (or the parameters) became NaN/inf; names the step and the last good checkpoint."""


run_identity = checkpoint.run_identity


@jax.jit
def _all_finite(tree) -> jax.Array:
    return jnp.all(jnp.stack([jnp.isfinite(x).all() for x in jax.tree.leaves(tree)]))


def _per_seed(x, num_seeds: int) -> np.ndarray:
    """A metric as [num_seeds, ...]: single runs' metrics have no seed axis."""
    return np.reshape(x, (num_seeds, -1))


def _check_finite(pending: list[dict], first_step: int, state, saver: checkpoint.Saver,
                  seeds: tuple) -> None:
    """Stop on the first non-finite loss (or non-finite parameters before a save)."""
    losses = np.concatenate([_per_seed(m["loss"], len(seeds)) for m in pending], axis=1)
    seed_index, steps = np.nonzero(~np.isfinite(losses))
    if steps.size:
        i = int(np.argmin(steps))
        what = (f"loss became {losses[seed_index[i], steps[i]]} at step {first_step + int(steps[i])}"
                + (f" (seed {seeds[seed_index[i]]})" if len(seeds) > 1 else ""))
    elif not bool(fetch(_all_finite(state.params))):
        what = f"parameters became non-finite by step {first_step + losses.shape[1] - 1}"
    else:
        return
    saver.finish()
    raise TrainingDiverged(f"{what}; {saver.where()}")


def _record(pending: list[dict], seed_index: int, num_seeds: int) -> dict:
    """One seed's mean loss/error over the steps in `pending`, and its last lr."""
    cat = lambda k: np.concatenate([_per_seed(m[k], num_seeds)[seed_index] for m in pending])  # noqa: E731
    return {"lr": float(cat("lr")[-1]), "loss": float(np.mean(cat("loss"))),
            "train_error": float(np.mean(cat("error")))}


def _evaluate(data, state, num_seeds: int) -> list[dict]:
    """Each seed's evaluation metrics (test_error, test_loss, ...) as floats."""
    evaluated = fetch(data.evaluate(state))
    return [{k: float(_per_seed(v, num_seeds)[i, 0]) for k, v in evaluated.items()}
            for i in range(num_seeds)]


PLATEAU_META = "plateau"  # the checkpoint meta's key for PlateauRule.state()


def _restore_plateau(plateau: PlateauRule, meta: dict, workdir: str, step: int) -> None:
    """The plateau rule's state as of the checkpoint at `step`. Checkpoints from before the state
    was saved in them (the legacy path): replay the validation errors logged up to `step`."""
    if PLATEAU_META in meta:
        plateau.restore(meta[PLATEAU_META])
    else:
        plateau.replay(runs.read_metrics(workdir), step)


def _check_resume(workdir: str, config: ml_collections.ConfigDict) -> None:
    """ConfigError naming the fields a resume would change (old -> new) against the run's recorded
    config.json, but the ones that cannot change the trained weights (the schema's resume="free"):
    the run folder must describe the steps already taken."""
    try:
        saved = configs.from_saved(runs.read_json(runs.config_path(workdir)))
    except FileNotFoundError:
        return  # (interrupted before config.json was written: the checkpoints' identity checked)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read {runs.config_path(workdir)} to resume: {e}") from None
    if changed := configs.resume_changes(saved, config):
        raise ConfigError(f"{workdir} holds a run with other settings ({'; '.join(changed)}): resume it "
                          f"with its own settings, or start a new run in another --workdir")


def _write_config(path: str, config: ml_collections.ConfigDict) -> str:
    text = config.to_json_best_effort(indent=2)
    runs.write_json(path, text)
    return text


def _results(config, dataset, info, run_seeds: tuple, records: list[dict], wall_time: float,
             rate: float | None) -> tuple[list[dict], dict]:
    """Each seed's results.json, and what the run returns (seeds.json for several seeds)."""
    several = len(run_seeds) > 1
    results = [{
        "model": config.model.name, "shortcut": config.model.shortcut, "dataset": dataset.name,
        "eval_split": dataset.eval_split, "params": info.params, "mult_adds": info.mult_adds,
        "steps": config.run.steps, "batch_size": config.run.batch_size, "devices": jax.device_count(),
        "processes": jax.process_count(),
        "test_error": record["test_error"], "test_loss": record["test_loss"],
        **{k: record[k] for k in ("test_top5_error",) if k in record},  # ImageNet
        "wall_time": wall_time, "images_per_sec": rate,
        "backend": jax.default_backend(), "seed": seed,
        # What was read (the form and the image counts), so a subset is never taken for the set.
        **({"data": dataset.summary()} if isinstance(dataset, ArrayDataset) else {}),
        # Seeds trained together share one clock (the report adds their wall time once).
        **({"trained_with_seeds": list(run_seeds), "seeds_mode": config.run.seeds_mode}
           if several else {}),
    } for seed, record in zip(run_seeds, records)]
    if not several:
        return results, results[0]
    return results, {
        "model": config.model.name, "seeds": list(run_seeds), "seeds_mode": config.run.seeds_mode,
        "devices": jax.device_count(), "steps": config.run.steps, "wall_time": wall_time,
        "images_per_sec_per_seed": rate,
        "images_per_sec_all_seeds": rate and round(rate * len(run_seeds), 1),
        "test_errors": [r["test_error"] for r in results], "runs": results}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Train `config.model.name` on `config.data.name`, evaluating periodically; returns results.json.

    With `config.run.num_seeds` = N > 1, seeds config.run.seed .. config.run.seed+N-1 train together in one
    program (seeds.py): each seed's metrics, config and results.json go to `workdir/seed{s}/`, as
    if it had been run alone there; the stacked checkpoints stay in `workdir`; the return value is
    `workdir/seeds.json` (aggregate throughput, per-seed results under "runs").

    Resumes from the newest checkpoint in `workdir`. Raises Preempted after saving a checkpoint when
    asked to stop (SIGTERM / TPU preemption), TrainingDiverged on a NaN/inf loss, ConfigError if
    another run holds `workdir` (nothing is written then), RunIOError (CheckpointWriteError for a
    checkpoint) when a write fails, naming the cause and the last good checkpoint.
    """
    configs.validate(config)
    # "auto" resolved once, and recorded (config.json; image_backend in the checkpoints too). A
    # copy: the caller's stays untouched.
    config = configs.resolve(config, jax.default_backend())
    if config.data.name in HOST_FED:
        config.data.image_backend = configs.resolve_image_backend(config)
    # Weights to fine-tune from, read and checked before the workdir is touched (a resumed run
    # continues from its own checkpoint instead; checking costs one read of the file).
    init = run_weights.load_init(config) if config.run.init_from else None
    # The data too: a missing or corrupt dataset is the user's to fix, with nothing written.
    data = config.data
    dataset = open_dataset(data.name, data.eval_split, data.data_dir, data.image_size)
    if len(dataset.train_images) < config.run.batch_size:
        raise DatasetError(f"{dataset.name} has {len(dataset.train_images)} training images, fewer "
                           f"than one batch of {config.run.batch_size}")
    check_workdir(workdir)
    with lock_workdir(workdir):
        try:
            return _train_and_evaluate(config, workdir, dataset, init)
        except Exception as e:
            distributed.wait_if_lost(e)  # a lost process is said as such (exit 4), not as e
            raise


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                        dataset: ArrayDataset | HostDataset, init: dict | None = None) -> dict:
    num_seeds = config.run.num_seeds
    mesh = seeds.seeds_mesh(num_seeds, config.run.seeds_mode) if num_seeds > 1 else make_mesh()
    data_devices = mesh.shape[DATA_AXIS]
    config = config.copy_and_resolve_references()  # local copy; the caller's stays untouched
    config.run.eval_batch_size = min(config.run.eval_batch_size,
                                 -(-len(dataset.eval_images) // data_devices) * data_devices)
    run_seeds = tuple(config.run.seed + i for i in range(num_seeds))
    run_dirs = [runs.seed_dir(workdir, s) for s in run_seeds] if num_seeds > 1 else [workdir]
    os.makedirs(workdir, exist_ok=True)
    is_main = jax.process_index() == 0

    engine = create_engine(config, dataset.crop_padding, dataset.num_classes, mesh=mesh)
    # The validation-plateau lr rule (ImageNet): updated here after each validation, kept in the
    # checkpoints, read by the host feed at every chunk.
    plateau = PlateauRule.from_config(config) if config.optim.lr_schedule == "plateau" else None
    trainer = seeds.SeedsEngine(engine, run_seeds, config.run.seeds_mode) if num_seeds > 1 else engine
    info = complexity(engine.model, dataset.image_shape, config.model.name)
    mngr = checkpoint.manager(workdir, config.run.keep_checkpoints)
    identity = run_identity(config)
    try:  # until the loop below owns the manager, any failure closes it
        try:
            restored = checkpoint.restore_for_resume(mngr, trainer.abstract_state(dataset.image_shape),
                                                     identity)
        except checkpoint.CheckpointError as e:
            raise ConfigError(str(e)) from None
        if restored is None:
            state, pending = trainer.init_state(dataset.image_shape), []
            if init is not None:  # fine-tuning
                state = run_weights.start_from(state, config, init)
        else:
            _check_resume(workdir, config)
            state, pending = restored[0], checkpoint.pending_metrics(restored[1])
        # After the checkpoint check: a mismatched resume stops before a host feed's mean.
        data: feeds.Feed = (
            seeds.SeedsFeed(trainer, put_dataset(dataset, mesh, config.run.eval_batch_size))
            if num_seeds > 1 else feeds.feed(dataset, engine, config.run.eval_batch_size, workdir, plateau))
        start = int(np.ravel(fetch(state.step))[0])
        if plateau is not None and restored is not None:
            _restore_plateau(plateau, restored[1], workdir, start)
        for d in run_dirs:  # (after the checkpoint check: a mismatched resume writes nothing new)
            os.makedirs(d, exist_ok=True)
        logs = [runs.MetricsLog(runs.metrics_path(d), enabled=is_main) for d in run_dirs]
        # (the step of the newest record written before the checkpoint: the pending steps follow it)
        last_record = start - sum(_per_seed(m["loss"], num_seeds).shape[1] for m in pending)
        try:
            wall_offset = [log.resume(start, last_record) for log in logs][0]
        except runs.MetricsError as e:  # the user's to repair (or to decide to drop the line)
            raise ConfigError(str(e)) from None
    except BaseException as e:
        mngr.close()
        if isinstance(e, NOTHING_WRITTEN) and is_main:  # nothing was written: leave no trace
            for d in [*(d for d in run_dirs if d != workdir), runs.checkpoint_dir(workdir)]:
                with contextlib.suppress(OSError):
                    os.rmdir(d)  # (only if empty)
        raise
    boards = [TensorBoardLog(d, enabled=is_main) for d in run_dirs]
    if is_main:
        texts = [_write_config(runs.config_path(workdir), config)]
        if num_seeds > 1:  # each seed's config retrains that seed alone
            texts = [_write_config(runs.config_path(d), configs.override(
                config.copy_and_resolve_references(), seed=s, num_seeds=1))
                for s, d in zip(run_seeds, run_dirs)]
        for board, log, text in zip(boards, logs, texts):
            board.start(log.read(), text, start)
        logging.info("%s on %s (%s split): %d params, %.1fM mult-adds/image, %d devices in %d "
                     "processes%s%s", config.model.name, dataset.name, dataset.eval_split, info.params,
                     info.mult_adds / 1e6, jax.device_count(), jax.process_count(),
                     f", seeds {run_seeds[0]}..{run_seeds[-1]} together ({config.run.seeds_mode})"
                     if num_seeds > 1 else "", f", resumed at step {start}" if start else "")
        if isinstance(dataset, ArrayDataset):
            logging.info("data: %s from %s, %d training and %d %s images", dataset.name,
                         dataset.source or "its loader", len(dataset.train_images),
                         len(dataset.eval_images), dataset.eval_split)

    # Chunks end on every log/eval/checkpoint boundary, and checkpoints are only taken at chunk
    # ends, so a resumed run replays exactly the same sequence of jit calls.
    per_call = steps_per_call(config)
    boundaries = (config.run.log_every, config.run.eval_every, config.run.checkpoint_every)
    progress = Progress(config.run.steps, start, enabled=is_main, bar=config.run.progress)
    t0 = t_log = time.perf_counter()
    # `pending` holds the per-step metrics since the last record (restored ones included), so the
    # record that straddles a resume averages over the same steps as an uninterrupted run's.
    step, rates = start, []
    last_step_logged = last_record
    records = [{}] * num_seeds
    with (checkpoint.Saver(mngr) as saver, PreemptionWatcher(mngr) as watcher,
          contextlib.ExitStack() as closing):
        for board in boards:
            closing.callback(board.close)
        closing.callback(progress.close)
        closing.enter_context(distributed.watching())  # (multi-process: a lost process is exit 4)
        while step < config.run.steps:
            n = min([per_call, config.run.steps - step] + [b - step % b for b in boundaries])
            state, metrics = data.train_chunk(state, n)
            if step == start:  # that call compiled the step, and returned before running it
                t_log = progress.compiled()
            pending.append(metrics)
            step += n
            done = step == config.run.steps
            stop = watcher.should_stop(step)
            log_now = step % config.run.log_every == 0 or step % config.run.eval_every == 0 or done
            save_now = step % config.run.checkpoint_every == 0 or done or stop
            if not (log_now or save_now):
                continue
            pending = fetch(pending)  # the only host sync: once per log/checkpoint interval
            _check_finite(pending, last_step_logged + 1, state, saver, run_seeds)
            saver.poll()  # a failed save stops the run at the next boundary
            if log_now:
                now = time.perf_counter()
                rate = config.run.batch_size * (step - max(last_step_logged, start)) / (now - t_log)
                if last_step_logged > start:  # the first interval also pays for first runs
                    rates.append(rate)  # per seed
                records = [{"step": step, **_record(pending, i, num_seeds),
                            "images_per_sec": round(rate, 1),
                            "wall_time": round(wall_offset + now - t0, 2)} for i in range(num_seeds)]
                if step % config.run.eval_every == 0 or done:
                    for record, evaluated in zip(records, _evaluate(data, state, num_seeds)):
                        record.update(evaluated)
                    if plateau is not None:  # single seed, host-fed: the validation error
                        plateau.update(records[0]["test_error"])
                for log, board, record in zip(logs, boards, records):
                    log.append(record)  # the record of the run; a failure here stops it
                    board.append(record)  # TensorBoard's copy; a failure here is a warning
                progress.update(step, records)
                pending, last_step_logged, t_log = [], step, time.perf_counter()
            if save_now:
                meta = dict(identity, step=step, pending=[
                    {k: np.asarray(v).tolist() for k, v in m.items()} for m in pending])
                if plateau is not None:
                    meta[PLATEAU_META] = plateau.state()
                saver.save(step, state, meta)
            if stop and not done:
                progress.close()
                saver.finish()
                raise Preempted(step, checkpoint.step_dir(mngr, step))

    if "test_error" not in records[0]:  # resumed a finished run: evaluate the restored state
        records = _evaluate(data, state, num_seeds)
    wall_time = round(wall_offset + time.perf_counter() - t0, 2)
    rate = round(float(np.median(rates)), 1) if rates else None
    results, summary = _results(config, dataset, info, run_seeds, records, wall_time, rate)
    if is_main:
        try:
            for d, r in zip(run_dirs, results):
                runs.write_json(runs.results_path(d), r)
            if num_seeds > 1:
                runs.write_json(runs.seeds_path(workdir), summary)
        except RunIOError as e:
            raise RunIOError(f"{e}; {saver.rerun()}") from None
        logging.info("done: test error %s after %d steps",
                     ", ".join(f"{100 * r['test_error']:.2f}%" for r in results), step)
    return summary
