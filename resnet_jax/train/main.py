"""`resnet-jax train --config=experiments/table6.py:20 --workdir=runs/r20 [--config.FIELD=VALUE ...]`."""

from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from resnet_jax.data import DatasetError

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. experiments/table6.py:110.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: metrics, checkpoints, results.")
flags.mark_flags_as_required(["config", "workdir"])


def _main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from resnet_jax.train.loop import ConfigError, train_and_evaluate  # noqa: PLC0415

    logging.set_verbosity(logging.INFO)
    # orbax narrates every save at INFO; keep its warnings, drop the chatter.
    logging.get_absl_handler().addFilter(
        lambda r: r.levelno >= logging.converter.STANDARD_WARNING or "orbax" not in r.pathname)
    try:
        train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    except (ConfigError, DatasetError) as e:
        print(f"resnet-jax train: error: {e}", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str]) -> None:
    app.run(_main, argv=argv)
