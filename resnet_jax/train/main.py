"""`resnet-jax train --config=experiments/table6.py:20 --workdir=runs/r20 [--config.FIELD=VALUE ...]`."""

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
_SEEDS = flags.DEFINE_integer(
    "seeds", None, "Train seeds config.seed..config.seed+N-1 together in one program, each logged in "
    "WORKDIR/seed{s}/ (same as --config.num_seeds=N; --config.seeds_mode=loop|vmap|devices).")
flags.mark_flags_as_required(["config", "workdir"])


def _main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from resnet_jax.configs import scaled_steps  # noqa: PLC0415
    from resnet_jax.train.loop import ConfigError, train_and_evaluate  # noqa: PLC0415

    logging.set_verbosity(logging.INFO)
    # orbax narrates every save at INFO; keep its warnings, drop the chatter.
    logging.get_absl_handler().addFilter(
        lambda r: r.levelno >= logging.converter.STANDARD_WARNING or "orbax" not in r.pathname)
    try:
        config = _CONFIG.value
        if _STEPS.value is not None:
            if _STEPS.value <= 0:
                raise ConfigError(f"--steps must be positive, got {_STEPS.value}")
            config = scaled_steps(config.copy_and_resolve_references(), _STEPS.value)
        if _SEEDS.value is not None:
            if "num_seeds" not in config:
                raise ConfigError(f"--seeds: {config.model} configs train one seed per run")
            config = config.copy_and_resolve_references()
            config.num_seeds = _SEEDS.value
        if config.get("num_seeds", 1) != 1:
            from resnet_jax.train.seeds_loop import train_seeds  # noqa: PLC0415

            train_seeds(config, _WORKDIR.value)
        else:
            train_and_evaluate(config, _WORKDIR.value)
    except (ConfigError, DatasetError) as e:
        print(f"resnet-jax train: error: {e}", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str]) -> None:
    app.run(_main, argv=argv)
