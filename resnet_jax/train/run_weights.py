"""Run folders of released weights, and a run's weights read back or trained from.

`write_run` makes a run folder of a released model's file as train/released.py reads it
(config.json, the input mean, a step-0 checkpoint in the engine's layout), which `resnet-jax eval`,
the notebook and the analysis tools open like any trained run. `read_run` gives any run's newest
variables back (for `export`), `run_input_mean` the mean its net subtracts. `load_init` and
`start_from` start training from a run or a released file (`--config.init_from`).
"""

from __future__ import annotations

import os
import shutil

import flax.traverse_util
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from resnet_jax import configs, runs
from resnet_jax.configs import ConfigError
from resnet_jax.data import DatasetError, load_dataset
from resnet_jax.models import input_shape, layout
from resnet_jax.train import checkpoint
from resnet_jax.train.engine import TrainState, create_engine
from resnet_jax.train.released import Imported, WeightsError, read_weights

RECORD = "imported.json"  # beside an imported CIFAR run: what its file needs to be written again


def run_config(imported: Imported) -> ml_collections.ConfigDict:
    """The recipe of the imported net's family (Sec 3.4 ImageNet, Sec 4.2 CIFAR), its file's
    options set."""
    return configs.override(configs.recipe(imported.fields["model"]), **imported.fields)


def _state(config: ml_collections.ConfigDict, variables: dict, num_classes: int) -> TrainState:
    """A step-0 TrainState holding `variables`, in the engine's layout, without compiling init."""
    engine = create_engine(config, 0, num_classes)
    target = engine.abstract_state(input_shape(config.model.name))
    stacked = layout.convert(variables, layout.layout_of(target) or layout.PER_BLOCK)
    params = jax.tree.map(jnp.asarray, stacked["params"])
    return TrainState(step=jnp.zeros((), jnp.int32), seed=jnp.asarray(config.run.seed, jnp.int32),
                      params=params, batch_stats=jax.tree.map(jnp.asarray, stacked["batch_stats"]),
                      opt_state=engine.tx.init(params), warmup_done=jnp.asarray(not config.optim.warmup),
                      train_error_ema=jnp.ones((), jnp.float32))


def write_run(imported: Imported, out: str) -> ml_collections.ConfigDict:
    """Make the run folder `out`: config.json, the input mean, a step-0 checkpoint. Written in a
    temporary folder beside it and renamed when complete, so `out` is whole or absent; an existing
    `out` is refused (WeightsError) and left as it is."""
    if os.path.exists(out):
        raise WeightsError(f"{out} exists: import into a new folder")
    config = run_config(imported)
    try:
        configs.validate(config)
    except ConfigError as e:
        raise WeightsError(str(e)) from None
    out = os.path.abspath(out)
    tmp = f"{out}.importing-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        os.makedirs(tmp)
        runs.write_json(runs.config_path(tmp), config.to_json_best_effort(indent=2))
        np.save(runs.input_mean_path(tmp), imported.input_mean)
        if imported.record is not None:
            runs.write_json(os.path.join(tmp, RECORD), imported.record)
        state = _state(config, imported.variables, imported.num_classes)
        meta = checkpoint.run_identity(config)
        with checkpoint.Saver(checkpoint.manager(tmp, 1)) as saver:
            saver.save(0, state, {**meta, "step": 0, "pending": []})
        os.rename(tmp, out)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise runs.RunIOError(f"cannot write {out} ({runs.os_cause(e)})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return config


def read_record(workdir: str) -> dict | None:
    """What an imported CIFAR run's file needs to be written again (RECORD), or None."""
    path = os.path.join(workdir, RECORD)
    if not os.path.exists(path):
        return None
    try:
        return runs.read_json(path)
    except (OSError, ValueError) as e:
        raise WeightsError(f"cannot read {path}: {e}") from None


def input_mean(workdir: str) -> np.ndarray | None:
    """The input mean an imported run came with, or None (a run trained here: its training mean)."""
    path = runs.input_mean_path(workdir)
    return np.load(path, allow_pickle=False) if os.path.exists(path) else None


def run_input_mean(config: ml_collections.ConfigDict, workdir: str) -> np.ndarray:
    """The mean a run's net subtracts from image/255: the one an imported model came with, else
    its training set's per-pixel mean (computed, or the cached ImageNet mean)."""
    mean = input_mean(workdir)
    if mean is not None:
        return mean
    try:
        if config.data.name in configs.HOST_FED:
            from resnet_jax.data import imagenet  # noqa: PLC0415 (grain only for ImageNet)
            from resnet_jax.train import imagenet_eval  # noqa: PLC0415

            train = imagenet.open_split("train", config.data.data_dir)
            try:
                return imagenet_eval.mean_image(config, train, workdir)
            except ValueError as e:  # its image_backend cannot run here, and no mean was cached
                raise WeightsError(f"the training mean of {workdir} is needed: {e}") from None
        return load_dataset(config.data.name, config.data.eval_split, config.data.data_dir).pixel_mean()
    except DatasetError as e:
        raise WeightsError(f"the training mean of {workdir} is needed: {e}") from None


def _newest_shapes(mngr: ocp.CheckpointManager, workdir: str) -> tuple[dict, int]:
    """({field: shapes} of the newest checkpoint, classes), nothing restored."""
    step = mngr.latest_step()
    if step is None:
        raise WeightsError(f"{workdir} has no checkpoint")
    shapes = checkpoint.saved_shapes(mngr, step)
    return shapes, int(shapes["params"]["fc"]["bias"][-1])


def read_run_shapes(workdir: str) -> tuple[ml_collections.ConfigDict, dict, int]:
    """(config, {field: shapes} of its newest checkpoint, classes), nothing restored."""
    config = _run_config(workdir)
    mngr = checkpoint.manager(workdir, read_only=True)
    try:
        shapes, num_classes = _newest_shapes(mngr, workdir)
    finally:
        mngr.close()
    return config, shapes, num_classes


def _run_config(workdir: str) -> ml_collections.ConfigDict:
    try:
        return configs.from_saved(runs.read_json(runs.config_path(workdir)))
    except FileNotFoundError:
        raise WeightsError(f"{workdir} is not a run folder: no config.json") from None
    except (OSError, ValueError) as e:
        raise WeightsError(f"cannot read {runs.config_path(workdir)}: {e}") from None


def read_run(workdir: str) -> tuple[ml_collections.ConfigDict, dict, int]:
    """(config, variables in the per-block layout as numpy, classes) of a run's newest checkpoint."""
    config = _run_config(workdir)
    mngr = checkpoint.manager(workdir, read_only=True)
    try:
        _, num_classes = _newest_shapes(mngr, workdir)
        if config.run.num_seeds > 1:
            raise WeightsError(f"{workdir} trained {config.run.num_seeds} seeds: use one of its seed folders")
        engine = create_engine(config, 0, num_classes)
        state = checkpoint.restore_latest(mngr, engine.abstract_state(input_shape(config.model.name)))
    except checkpoint.CheckpointError as e:
        raise WeightsError(str(e)) from None
    finally:
        mngr.close()
    if state is None:
        raise WeightsError(f"{workdir} has no readable checkpoint")
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    return config, jax.tree.map(np.asarray, layout.to_per_block(jax.device_get(variables))), num_classes


# ---- fine-tuning ---------------------------------------------------------------------------------

MODEL_FIELDS = ("model", "shortcut", "stride_on_3x3", "input_convention", "input_std", "zero_pad",
                "conv1_bias", "pool_ceil_mode")


def load_init(config: ml_collections.ConfigDict) -> dict:
    """The variables (per block) of `config.run.init_from`, a run folder or a released model's file,
    checked to hold `config`'s net (its model options too); ConfigError, one line, if not. Read
    before the workdir is touched, so a wrong source leaves nothing behind."""
    source = config.run.init_from
    try:
        if os.path.isdir(source):
            saved, variables, _ = read_run(source)
            fields = {f: configs.get(saved, f) for f in MODEL_FIELDS}
        else:
            imported = read_weights(source)
            base = configs.base_config()  # (options an ImageNet file leaves at their defaults)
            fields = {f: imported.fields.get(f, configs.get(base, f)) for f in MODEL_FIELDS}
            variables = imported.variables
    except WeightsError as e:
        raise ConfigError(f"init_from: {e}") from None
    if differ := [f for f in MODEL_FIELDS if _value(fields[f]) != _value(configs.get(config, f))]:
        raise ConfigError(f"init_from {source} holds {fields['model']} with "
                          + ", ".join(f"{f}={_value(fields[f])!r}" for f in differ if f != "model")
                          + f"; set {' '.join(f'--config.{f}={_flag(fields[f])}' for f in differ)}")
    return variables


def _value(v):
    return tuple(v) if isinstance(v, (list, tuple)) else v


def _flag(v) -> str:
    """A field's value as a --config flag takes it, one shell word: (0.2,0.2,0.2) for a tuple."""
    return f"({','.join(map(str, v))})" if isinstance(v, (list, tuple)) else str(v)


def start_from(state: TrainState, config: ml_collections.ConfigDict, variables: dict) -> TrainState:
    """`state` (freshly initialized) with the params and BN statistics `variables` (load_init's).
    The fc is kept as initialized when the class count differs (a new head, He init like every
    layer here); every other tensor must match. The backbone's BN running statistics are kept as
    they are, and fine-tuning updates them as training always does (train-mode batch statistics,
    momentum 0.9). The optimizer starts afresh (zero velocity)."""
    source = config.run.init_from
    fresh = {"params": state.params, "batch_stats": state.batch_stats}
    wanted = layout.layout_of(fresh) or layout.PER_BLOCK
    ours = flax.traverse_util.flatten_dict(layout.to_per_block(jax.device_get(fresh)))
    theirs = flax.traverse_util.flatten_dict(variables)
    merged = {}
    for path, value in ours.items():
        name = "/".join(path)
        if path not in theirs:
            raise ConfigError(f"init_from {source} has no {name}")
        if theirs[path].shape == value.shape:
            merged[path] = np.asarray(theirs[path], value.dtype)
        elif path[:2] == ("params", "fc"):
            merged[path] = value  # a new head for the new class count
        else:
            raise ConfigError(f"init_from {source}: {name} has shape {list(theirs[path].shape)}, "
                              f"this net's is {list(value.shape)}")
    if extra := [p for p in theirs if p not in ours]:
        raise ConfigError(f"init_from {source}: {'/'.join(extra[0])} has no place in {config.model.name}")
    loaded = layout.convert(flax.traverse_util.unflatten_dict(merged), wanted)
    loaded = jax.tree.map(lambda x, t: jax.device_put(x, t.sharding), loaded, fresh)
    return state.replace(params=loaded["params"], batch_stats=loaded["batch_stats"])
