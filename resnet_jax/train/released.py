"""Released ImageNet models as runs of this project: import, export, and fine-tuning from them.

`read_weights` turns a released model's file (the authors' Caffe ResNet-50/101/152 with their mean
image, or a torchvision state dict as .safetensors or .pth) into this project's variables, the
model options that express what the file contains (models/imagenet.py: input convention, conv1
bias, Caffe's pooling, v1/v1.5), the input mean, and provenance. `write_run` makes a run folder of
it (config.json, the mean, a step-0 checkpoint in the engine's layout), which `resnet-jax eval`,
the notebook and the analysis tools open like any trained run. `to_safetensors` writes a run's
weights back under torchvision's names; `init_from` starts training from a run or a file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
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
from resnet_jax.data import torch_write
from resnet_jax.data.torch_files import LEGACY, read_torch
from resnet_jax.data.weight_files import (WeightFileError, file_format, read_binaryproto,
                                          read_caffemodel, read_safetensors, safetensors_bytes)
from resnet_jax.models import input_shape, layout, parse_model_name, released, released_cifar
from resnet_jax.models.imagenet import TORCHVISION_MEAN
from resnet_jax.train import checkpoint, released_cifar as cifar_files
from resnet_jax.train.engine import TrainState, create_engine

CAFFE_MEAN = "ResNet_mean.binaryproto"  # the mean image released beside the Caffe models
META_PREFIX = "resnet_jax."  # our fields in an exported file's safetensors metadata
RECORD = "imported.json"  # beside an imported CIFAR run: what its file needs to be written again


class WeightsError(ValueError):
    """A weight file or run that cannot be imported, exported or started from; one line."""


@dataclasses.dataclass(frozen=True)
class Imported:
    fields: dict  # config fields: model, shortcut, stride_on_3x3, input_convention, ...
    variables: dict  # {"params", "batch_stats"}, per-block layout, float32 numpy
    input_mean: np.ndarray  # (H, W, 3) RGB in [0, 1]: subtracted from image/255
    num_classes: int
    record: dict | None = None  # a CIFAR file's form, wrapper, counters, published error (RECORD)


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_weights(path: str, mean_path: str | None = None, model: str | None = None) -> Imported:
    """A released model's file as variables of the net it holds (`model`, e.g. imagenet_resnet50,
    if given, else the depth the file has). WeightsError naming the first bad tensor."""
    try:
        fmt = file_format(path)
        if fmt == "caffe":
            return _read_caffe(path, mean_path, model)
        if mean_path:
            raise WeightsError(f"--mean is for the Caffe models; {path} carries its input convention")
        if fmt == "safetensors":
            state, metadata = read_safetensors(path)
        else:
            file, metadata = read_torch(path), {}
            state, _ = released_cifar.strip_data_parallel(file.state)
            if released_cifar.is_cifar(state):
                return _from_cifar_file(path, file, model)
        return _from_torchvision(path, fmt, state, metadata, model)
    except (WeightFileError, released.ReleasedModelError) as e:
        raise WeightsError(str(e) if str(e).startswith(path) else f"{path}: {e}") from None


def _from_cifar_file(path: str, file, model: str | None) -> Imported:
    """akamaster's or chenyaofo's CIFAR ResNet (train/released_cifar.py)."""
    sha = _sha256(path)
    fields, variables, mean, num_classes, record = cifar_files.from_torch_file(
        file, model, {"file": os.path.basename(path), "sha256": sha})
    fields["imported_from"] = (f"{record['family']} torch {file.form} {os.path.basename(path)} "
                               f"sha256:{sha}")
    return Imported(fields, variables, mean, num_classes, record)


def _depth(model: str | None, found) -> int:
    if model is None:
        return found()
    try:
        spec = parse_model_name(model)
    except ValueError as e:
        raise WeightsError(str(e)) from None
    if spec.variant != "imagenet_resnet":
        raise WeightsError(f"released models are ImageNet ResNets, not {model}")
    return spec.depth


def _shapes(fields: dict, num_classes: int) -> dict:
    config = configs.override(configs.imagenet_config(fields["model"]), **fields)
    return released.variable_shapes(configs.build_model(configs.resolve(config, "cpu"), num_classes))


def _read_caffe(path: str, mean_path: str | None, model: str | None) -> Imported:
    layers = read_caffemodel(path)  # first: a missing or broken model file is the first thing to say
    mean_path = mean_path or os.path.join(os.path.dirname(path), CAFFE_MEAN)
    if not os.path.exists(mean_path):
        raise WeightsError(f"{path}: the Caffe models subtract the released mean image; give it "
                           f"with --mean (no {mean_path})")
    depth = _depth(model, lambda: released.caffe_depth(layers))
    fc = layers.get("fc1000")
    num_classes = int(fc.blobs[0].shape[0]) if fc is not None and fc.blobs else 1000
    fields = {"model": f"imagenet_resnet{depth}", "shortcut": "B", "stride_on_3x3": False,
              "input_convention": "caffe", "conv1_bias": True, "pool_ceil_mode": True,
              "imported_from": f"caffe {os.path.basename(path)} sha256:{_sha256(path)}, mean "
                               f"{os.path.basename(mean_path)} sha256:{_sha256(mean_path)}"}
    variables = released.from_caffe(layers, depth, _shapes(fields, num_classes))
    return Imported(fields, variables, caffe_mean(read_binaryproto(mean_path), mean_path), num_classes)


def caffe_mean(blob: np.ndarray, path: str) -> np.ndarray:
    """The released mean image (1x)3xHxW BGR 0-255 -> HxWx3 RGB in [0, 1]."""
    mean = blob.reshape(blob.shape[-3:]) if blob.ndim == 4 and blob.shape[0] == 1 else blob
    if mean.ndim != 3 or mean.shape[0] != 3:
        raise WeightsError(f"{path}: a mean image of shape {list(blob.shape)}, not 3xHxW")
    return np.ascontiguousarray(mean[::-1].transpose(1, 2, 0) / np.float32(255.0), np.float32)


def _from_torchvision(path: str, fmt: str, state: dict, metadata: dict, model: str | None) -> Imported:
    depth = _depth(model or metadata.get(META_PREFIX + "model"),
                   lambda: released.torchvision_depth(state))
    fc = state.get("fc.weight")
    num_classes = int(fc.shape[0]) if fc is not None and fc.ndim == 2 else 1000
    v15 = metadata.get(META_PREFIX + "stride_on_3x3", str(depth >= 50)) == "True"
    convention = metadata.get(META_PREFIX + "input_convention", "torchvision")
    if convention not in ("torchvision", "paper"):
        raise WeightsError(f"{path}: input convention {convention!r} cannot come with torchvision names")
    fields = {"model": f"imagenet_resnet{depth}", "shortcut": "B", "stride_on_3x3": depth >= 50 and v15,
              "input_convention": convention, "conv1_bias": False, "pool_ceil_mode": False,
              "imported_from": f"torchvision {fmt} {os.path.basename(path)} sha256:{_sha256(path)}"}
    variables = released.from_torchvision(state, depth, _shapes(fields, num_classes))
    if metadata.get(META_PREFIX + "input_mean", MEAN_TORCHVISION) == MEAN_TORCHVISION:
        mean = torchvision_mean()
    else:  # a net trained here: its training mean was exported beside the weights
        mean = _mean_beside(path)
    return Imported(fields, variables, mean, num_classes)


MEAN_TORCHVISION, MEAN_BESIDE = "torchvision", "beside"  # where an exported file's input mean is


def torchvision_mean() -> np.ndarray:
    """torchvision's mean colour as an input mean image (1x1x3, broadcast over any size)."""
    return np.asarray(TORCHVISION_MEAN, np.float32).reshape(1, 1, 3)


def mean_path_for(path: str) -> str:
    """Where `export` writes the input mean of a net trained here: `<file>.mean.npy`."""
    return os.path.splitext(path)[0] + ".mean.npy"


def _mean_beside(path: str) -> np.ndarray:
    try:
        mean = np.load(mean_path_for(path), allow_pickle=False)
    except (OSError, ValueError) as e:
        raise WeightsError(f"{path} was exported with its training mean beside it: "
                           f"{mean_path_for(path)} is needed ({e})") from None
    if mean.ndim != 3 or mean.shape[-1] != 3:
        raise WeightsError(f"{mean_path_for(path)} holds shape {list(mean.shape)}, not HxWx3")
    return np.asarray(mean, np.float32)


# ---- run folders ---------------------------------------------------------------------------------

def run_config(imported: Imported) -> ml_collections.ConfigDict:
    """The recipe of the imported net's family (Sec 3.4 ImageNet, Sec 4.2 CIFAR), its file's
    options set."""
    model = imported.fields["model"]
    family = parse_model_name(model).family
    config = configs.imagenet_config(model) if family == "imagenet" else configs.cifar_config(model)
    configs.override(config, **imported.fields)
    return config


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
        shape = (64, 64, 3) if parse_model_name(config.model.name).family == "imagenet" else (32, 32, 3)
        state = checkpoint.restore_latest(mngr, engine.abstract_state(shape))
    except checkpoint.CheckpointError as e:
        raise WeightsError(str(e)) from None
    finally:
        mngr.close()
    if state is None:
        raise WeightsError(f"{workdir} has no readable checkpoint")
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    return config, jax.tree.map(np.asarray, layout.to_per_block(jax.device_get(variables))), num_classes


# ---- export --------------------------------------------------------------------------------------

def torchvision_file(config: ml_collections.ConfigDict, variables: dict, mean: np.ndarray,
                     out: str) -> list[str]:
    """Write a run's variables as a torchvision state dict in safetensors (`out`), with our model
    options in its metadata; the input mean of a net trained here goes to `<out>.mean.npy`.
    WeightsError if torchvision's ResNet cannot hold the net. Returns the files written.

    A v1 bottleneck net (the paper's, stride on the first 1x1) has the same tensors as torchvision's
    v1.5 one; the metadata says which it is (`stride_on_3x3`), and torchvision runs it once each
    stage's first block has its strides moved (`V1_NOTE`)."""
    spec = parse_model_name(config.model.name)
    problems = [why for bad, why in (
        (spec.variant != "imagenet_resnet", f"{config.model.name} is not an ImageNet ResNet"),
        (config.model.shortcut != "B", f"shortcut option {config.model.shortcut} (torchvision's nets use B)"),
        (config.model.conv1_bias, "conv1_bias (torchvision's conv1 has none)"),
        (config.model.pool_ceil_mode, "pool_ceil_mode (torchvision pools with padding 1)"),
        (config.model.input_convention == "caffe", "the Caffe input convention (BGR, 0-255)")) if bad]
    if problems:
        raise WeightsError(f"torchvision's ResNet cannot hold this net: {problems[0]}")
    try:
        state = released.to_torchvision(variables, spec.depth)
    except released.ReleasedModelError as e:
        raise WeightsError(str(e)) from None
    # torchvision's own mean colour is implied by the convention; any other mean (a training
    # mean: nets trained or fine-tuned here subtract their dataset's) travels beside the file.
    beside = not (config.model.input_convention == "torchvision" and mean is not None
                  and np.array_equal(mean, torchvision_mean()))
    metadata = {"format": "pt", META_PREFIX + "model": config.model.name,
                META_PREFIX + "stride_on_3x3": str(bool(config.model.stride_on_3x3)),
                META_PREFIX + "input_convention": config.model.input_convention,
                META_PREFIX + "input_mean": MEAN_BESIDE if beside else MEAN_TORCHVISION}
    runs.write_bytes(out, safetensors_bytes(state, metadata))
    if beside:
        buf = io.BytesIO()
        np.save(buf, np.asarray(mean, np.float32))
        runs.write_bytes(mean_path_for(out), buf.getvalue())
        return [out, mean_path_for(out)]
    return [out]


def cifar_torch_file(config: ml_collections.ConfigDict, variables: dict, mean: np.ndarray | None,
                     record: dict | None, out: str) -> str:
    """Write a CIFAR run's variables as its family's PyTorch file `out` (train/released_cifar.py):
    an imported run's in its file's form, wrapper, key names and BN counters. Returns the form."""
    try:
        file = cifar_files.to_torch_file(config, variables, mean, record)
    except released.ReleasedModelError as e:
        raise WeightsError(str(e)) from None
    data = torch_write.legacy_bytes(file) if file.form == LEGACY else torch_write.zip_bytes(file)
    runs.write_bytes(out, data)
    return file.form


V1_NOTE = ("a v1 net (stride on the first 1x1 conv, the paper's): in torchvision set "
           "layerN[0].conv1.stride = 2 and layerN[0].conv2.stride = 1 for N = 2, 3, 4")


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
            fields = {f: imported.fields.get(f, base[f]) for f in MODEL_FIELDS}
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
