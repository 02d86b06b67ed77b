"""Load a finished (or interrupted) training run from its workdir for analysis, without training.

A workdir written by `train_and_evaluate` holds `config.json` and orbax checkpoints; loading
rebuilds the same engine (model, mesh) and dataset, then restores the newest checkpoint into the
engine's TrainState structure.
"""

from __future__ import annotations

import dataclasses

import jax
import ml_collections

from resnet_jax import configs, runs
from resnet_jax.data import ArrayDataset, DatasetError, load_dataset, read_test_split
from resnet_jax.train import checkpoint, orbax_quiet, run_weights
from resnet_jax.train.engine import DeviceData, Engine, TrainState, create_engine, put_dataset


class RunError(RuntimeError):
    """A workdir that cannot be loaded (no config, no or a damaged checkpoint); one-line message."""


@dataclasses.dataclass(frozen=True)
class Run:
    workdir: str
    config: ml_collections.ConfigDict
    dataset: ArrayDataset
    engine: Engine
    data: DeviceData
    state: TrainState

    @property
    def step(self) -> int:
        return int(jax.device_get(self.state.step))

    @property
    def variables(self) -> dict:
        return {"params": self.state.params, "batch_stats": self.state.batch_stats}


def read_config(workdir: str) -> ml_collections.ConfigDict:
    path = runs.config_path(workdir)
    try:
        saved = runs.read_json(path)
    except FileNotFoundError:
        raise RunError(f"{workdir!r} is not a training run: no config.json") from None
    except (OSError, ValueError) as e:
        raise RunError(f"cannot read {path}: {e}") from None
    try:
        config = configs.from_saved(saved)
        configs.validate(config)
    except configs.ConfigError as e:
        raise RunError(f"{path} is not a valid run config: {e}") from None
    return config


def restore_state(workdir: str, engine: Engine, image_shape) -> TrainState:
    """The newest checkpoint's TrainState, in the structure and shardings the engine expects. A
    `seed{s}/` folder of a multi-seed run (`--seeds N`) gets its seed's slice of the run's stacked
    checkpoint."""
    source, seed_index = workdir, None
    if not runs.has_checkpoints(workdir):
        found = _multi_seed_run(workdir, engine.config.run.seed)
        if found is None:
            raise RunError(f"{workdir!r} has no checkpoints/ directory")
        source, seed_index, num_seeds = found
    target = engine.abstract_state(image_shape)
    if seed_index is not None:
        target = jax.tree.map(lambda s: jax.ShapeDtypeStruct((num_seeds, *s.shape), s.dtype,
                                                             sharding=s.sharding), target)
    mngr = checkpoint.manager(source, read_only=True)
    try:
        state = checkpoint.restore_latest(mngr, target)
    except Exception as e:  # noqa: BLE001 (orbax reports damage through many exception types)
        raise RunError(f"cannot restore the checkpoint in {source!r} "
                       f"(step {mngr.latest_step()}): {orbax_quiet.gist(e) or type(e).__name__}") from None
    finally:
        mngr.close()
    if state is None:
        raise RunError(f"{source!r} has no finished checkpoint")
    return state if seed_index is None else jax.tree.map(lambda x: x[seed_index], state)


def _multi_seed_run(workdir: str, seed: int) -> tuple[str, int, int] | None:
    """(run workdir, seed index, number of seeds) if `workdir` is the `seed{seed}/` folder of a
    multi-seed run, whose stacked checkpoints live one level up."""
    parent = runs.multi_seed_parent(workdir, seed)
    if parent is None:
        return None
    try:
        run = configs.from_saved(runs.read_json(runs.config_path(parent)))
    except (OSError, ValueError):  # (ConfigError is a ValueError)
        return None
    first, num_seeds = run.run.seed, run.run.num_seeds
    if num_seeds > 1 and first <= seed < first + num_seeds:
        return parent, seed - first, num_seeds
    return None


def load_run(workdir: str, data_dir: str | None = None, *, dataset_loader=None) -> Run:
    """Config, dataset, engine, device-resident data and the latest checkpoint of a run.
    `dataset_loader` (load_dataset, the default, or one taking its arguments) reads a trained run's
    dataset: a caller loading runs of one dataset (the seeds of a `--seeds N` run) may memoise it."""
    config = read_config(workdir)
    if data_dir is not None:
        config.data.data_dir = data_dir
    mean = run_weights.input_mean(workdir)
    try:
        if mean is None:
            dataset = (dataset_loader or load_dataset)(config.data.name, config.data.eval_split,
                                                       config.data.data_dir)
        else:  # an imported net brings its input mean: the test split alone will do (a subset for
            # evaluation may lack the training batches)
            dataset = read_test_split(config.data.data_dir, config.data.name)
    except DatasetError as e:
        raise RunError(str(e)) from None
    # The run may have used another device count: keep whole eval batches divisible by this one's.
    devices = jax.device_count()
    per_device = -(-min(config.run.eval_batch_size, len(dataset.eval_images)) // devices)
    config.run.eval_batch_size = per_device * devices
    engine = create_engine(config, dataset.crop_padding, dataset.num_classes)
    state = restore_state(workdir, engine, dataset.image_shape)
    data = put_dataset(dataset, engine.mesh, config.run.eval_batch_size, mean)
    return Run(workdir, config, dataset, engine, data, state)
