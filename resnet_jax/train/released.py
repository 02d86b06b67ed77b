"""Released models' files to and from this project's variables.

`read_weights` turns a released model's file (the authors' Caffe ResNet-50/101/152 with their mean
image, a torchvision state dict as .safetensors or .pth, or akamaster's / chenyaofo's CIFAR ResNet)
into this project's variables, the model options that express what the file contains
(models/imagenet.py: input convention, conv1 bias, Caffe's pooling, v1/v1.5), the input mean, and
provenance. `torchvision_file` and `cifar_torch_file` write a run's variables back as such files.
Run folders made of them, a run's weights read back, and training started from them are
train/run_weights.py's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os

import ml_collections
import numpy as np

from resnet_jax import runs
from resnet_jax.data import torch_write
from resnet_jax.data.torch_files import LEGACY, read_torch
from resnet_jax.data.weight_files import (WeightFileError, file_format, read_binaryproto,
                                          read_caffemodel, read_safetensors, safetensors_bytes)
from resnet_jax.models import parse_model_name, released, released_cifar
from resnet_jax.models.imagenet import TORCHVISION_MEAN
from resnet_jax.train import released_cifar as cifar_files

CAFFE_MEAN = "ResNet_mean.binaryproto"  # the mean image released beside the Caffe models
META_PREFIX = "resnet_jax."  # our fields in an exported file's safetensors metadata


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
    shapes = cifar_files.net_shapes(fields, num_classes, image_size=64)
    variables = released.from_caffe(layers, depth, shapes)
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
    shapes = cifar_files.net_shapes(fields, num_classes, image_size=64)
    variables = released.from_torchvision(state, depth, shapes)
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
