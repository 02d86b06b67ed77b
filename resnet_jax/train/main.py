"""`resnet-jax train --config=experiments/table6.py:20 --workdir=runs/r20 [--config.FIELD=VALUE ...]`.

Exit codes: 0 finished (or preempted after saving a checkpoint: rerun to resume), 1 the loss
diverged, 2 bad configuration, flags, workdir (or another run is using it) or dataset, 3 a write
failed (disk full, I/O error, permissions: the last good checkpoint is named; rerun to resume).
Multi-host: run the same command on every host with --coordinator/--num_processes/--process_id, or
--distributed where JAX detects them (TPU pods, Slurm, Open MPI); see docs/scaling.md.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from resnet_jax.data import DatasetError

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. experiments/table6.py:110.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: metrics, checkpoints, results.")
_STEPS = flags.DEFINE_integer(
    "steps", None, "Shorter run with the paper schedule's shape (lr milestones at the same fractions); "
    "log/eval/checkpoint intervals scale with it. Unlike --config.steps, which changes only the length.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator", None, "Multi-process: host:port of process 0 (or env JAX_COORDINATOR_ADDRESS).")
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "Multi-process: number of processes (or env JAX_NUM_PROCESSES).")
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "Multi-process: this process's index, 0..num_processes-1 (or env JAX_PROCESS_ID).")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Multi-process with the settings detected by JAX (TPU pods, Slurm, Open MPI).")
_SEEDS = flags.DEFINE_integer(
    "seeds", None, "Train seeds config.seed..config.seed+N-1 together in one program, each logged in "
    "WORKDIR/seed{s}/ (same as --config.num_seeds=N; --config.seeds_mode=loop|vmap|devices).")
flags.mark_flags_as_required(["config", "workdir"])


def _fail(message: str, code: int) -> None:
    print(f"resnet-jax train: error: {message}", file=sys.stderr)
    sys.exit(code)


def _main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    # Imported here so `--help` and flag errors stay fast. The distributed system must be joined
    # before anything touches a JAX backend, and importing the loop may (module-level constants).
    from resnet_jax.train import distributed  # noqa: PLC0415

    try:
        distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                               auto=_DISTRIBUTED.value)
    except distributed.DistributedConfigError as e:
        _fail(str(e), 2)

    from resnet_jax.configs import scaled_steps  # noqa: PLC0415
    from resnet_jax.train.loop import (  # noqa: PLC0415
        ConfigError, Preempted, RunIOError, TrainingDiverged, check_workdir, train_and_evaluate,
        validate_config)

    logging.set_verbosity(logging.INFO)
    # Our progress at INFO; other libraries (orbax narrates every save, jax lists absent backends)
    # only from WARNING up.
    logging.get_absl_handler().addFilter(
        lambda r: r.levelno >= logging.converter.STANDARD_WARNING or "resnet_jax" in r.pathname)

    config = _CONFIG.value
    try:
        if _STEPS.value is not None:
            if _STEPS.value <= 0:
                raise ConfigError(f"--steps must be positive, got {_STEPS.value}")
            config = scaled_steps(config.copy_and_resolve_references(), _STEPS.value)
        if _SEEDS.value is not None:
            if "num_seeds" not in config:
                raise ConfigError(f"--seeds: {config.model} configs train one seed per run")
            config = config.copy_and_resolve_references()
            config.num_seeds = _SEEDS.value
        # Checked before logging turns verbose, so a bad input prints exactly one line.
        validate_config(config)
        check_workdir(_WORKDIR.value)
    except ConfigError as e:
        _fail(str(e), 2)

    try:
        train_and_evaluate(config, _WORKDIR.value)
    except (ConfigError, DatasetError) as e:
        _fail(str(e), 2)
    except TrainingDiverged as e:
        _fail(str(e), 1)
    except RunIOError as e:
        _fail(str(e), 3)
    except Preempted as e:
        print(f"resnet-jax train: {e}", file=sys.stderr)
        sys.exit(0)


def main(argv: list[str]) -> None:
    app.run(_main, argv=argv)
