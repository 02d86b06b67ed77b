"""The released ImageNet ResNets' tensor names and layouts, and ours (per-block, models/layout.py).

Two families of files hold Table 1's nets:
- the authors' Caffe models (ResNet-50/101/152, the ones the paper reports): layers `conv1` (with a
  bias), `bn_conv1` (BatchNorm: mean and variance stored multiplied by a moving-average factor, the
  third blob), `scale_conv1` (Scale: gamma, beta), then per block `res{stage}{block}_branch2a|2b|2c`
  with `bn...`/`scale...` of the same suffix, and `res{stage}a_branch1` for the projection of a
  stage's first block, `fc1000` last. Blocks are lettered a, b, c, ... in ResNet-50 and in the
  3-block stages of 101/152, a, b1, b2, ... in their longer stages (`res4b22_branch2c`). The
  stride of a stage's first block sits on branch2a and branch1 (v1, the paper's model).
- torchvision's (`resnet18` ... `resnet152`): `conv1`, `bn1`, `layer{1-4}.{i}.conv{1-3}`/`bn{1-3}`,
  `layer{1-4}.{i}.downsample.{0,1}`, `fc`; BN buffers `running_mean`/`running_var` (and a
  `num_batches_tracked` counter, not a parameter of the function). Its bottleneck nets put the
  stride on the 3x3 conv ("v1.5").

Both store convolutions as [out, in, kh, kw] and the fc as [classes, features]; ours are
[kh, kw, in, out] and [features, classes]. Conversions are transposes: exact both ways.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Collection, Iterator, Sequence

import flax.traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from resnet_jax.models import layout
from resnet_jax.models.imagenet import STAGES

Path = tuple[str, ...]  # ("params" | "batch_stats", module, ..., leaf), per-block names


class ReleasedModelError(ValueError):
    """A weight file that does not hold the net it is read as; names the first tensor at fault."""


def variable_shapes(model, image_size: int = 64) -> dict[Path, tuple[int, ...]]:
    """{path: shape} of `model`'s params and batch_stats in the per-block layout (no compute)."""
    shapes = jax.eval_shape(model.init, jax.random.key(0),
                            jnp.zeros((1, image_size, image_size, 3), jnp.float32))
    flat = flax.traverse_util.flatten_dict(layout.to_per_block(jax.tree.map(lambda s: s, shapes)))
    return {k: tuple(v.shape) for k, v in flat.items()}


# ---- torchvision ---------------------------------------------------------------------------------

# Tensor kinds: how a file's array becomes ours.
CONV, FC, VECTOR = "conv", "fc", "vector"
TORCH_BN = (("weight", "params", "scale"), ("bias", "params", "bias"),
            ("running_mean", "batch_stats", "mean"), ("running_var", "batch_stats", "var"))
BN_COUNTER = "num_batches_tracked"  # torchvision's BN step counter: kept by export, ignored here


def bn_torch(prefix: str, module: Path) -> Iterator[tuple[str, Path, str]]:
    for name, collection, leaf in TORCH_BN:
        yield f"{prefix}.{name}", (collection, *module, leaf), VECTOR


def torch_resnet_names(blocks: Sequence[int], *, stages: Sequence[str], convs: int,
                       projected: Collection[int], fc: str) -> list[tuple[str, Path, str]]:
    """(PyTorch key, our path, kind) of every tensor of a torchvision-style ResNet, in network order:
    `conv1`, `bn1`; block b (from 0) of stage s (from 1) as `layer{s}.{b}.conv{i}`/`bn{i}`, i up to
    `convs`, with the projection `layer{s}.0.downsample.{0,1}` (conv, BN) where s is in `projected`;
    the fc `{fc}.weight`/`.bias`. `blocks`: blocks per stage; `stages`: our name of each stage
    (layout.block_name's prefix)."""
    names = [("conv1.weight", ("params", "conv1", "kernel"), CONV), *bn_torch("bn1", ("bn1",))]
    for stage, (count, stage_name) in enumerate(zip(blocks, stages, strict=True), start=1):
        for b in range(count):
            theirs, ours = f"layer{stage}.{b}", layout.block_name(stage_name, b + 1)
            for i in range(1, convs + 1):
                names.append((f"{theirs}.conv{i}.weight", ("params", ours, f"conv{i}", "kernel"), CONV))
                names += bn_torch(f"{theirs}.bn{i}", (ours, f"bn{i}"))
            if b == 0 and stage in projected:
                names.append((f"{theirs}.downsample.0.weight",
                              ("params", ours, "shortcut", "proj_conv", "kernel"), CONV))
                names += bn_torch(f"{theirs}.downsample.1", (ours, "shortcut", "proj_bn"))
    return names + [(f"{fc}.weight", ("params", "fc", "kernel"), FC),
                    (f"{fc}.bias", ("params", "fc", "bias"), VECTOR)]


def torchvision_names(depth: int) -> list[tuple[str, Path, str]]:
    """(torchvision key, our path, kind) of every tensor of ResNet-`depth`, in network order."""
    kind, counts = STAGES[depth]
    # option B: a projection where the shape changes, every stage's first block but a basic conv2_x's
    first = 1 if kind == "bottleneck" else 2
    return torch_resnet_names(counts, stages=[f"conv{s}" for s in range(2, len(counts) + 2)],
                              convs=2 if kind == "basic" else 3,
                              projected=range(first, len(counts) + 1), fc="fc")


def torchvision_depth(keys) -> int:
    """The depth of the torchvision ResNet whose state dict has `keys` (its blocks per stage)."""
    counts = []
    for stage in range(1, 5):
        blocks = {int(m.group(1)) for k in keys if (m := re.match(rf"layer{stage}\.(\d+)\.", k))}
        counts.append(len(blocks))
    kind = "bottleneck" if any(k.endswith(".conv3.weight") for k in keys) else "basic"
    for depth, (k, c) in STAGES.items():
        if k == kind and c == tuple(counts):
            return depth
    raise ReleasedModelError(f"holds a {kind}-block ResNet with {counts} blocks per stage, not one "
                             f"of Table 1's ({', '.join(f'ResNet-{d}' for d in STAGES)})")


# ---- Caffe (the authors' models) -----------------------------------------------------------------

def caffe_block_letter(depth: int, count: int, block: int) -> str:
    """'a', 'b', 'c', ... (ResNet-50, and 101/152's 3-block stages) or 'a', 'b1', 'b2', ..."""
    if depth > 50 and count > 3:
        return "a" if block == 1 else f"b{block - 1}"
    return chr(ord("a") + block - 1)


@dataclasses.dataclass(frozen=True)
class CaffeUnit:
    """One conv (or the fc) of a Caffe net and the three layers that hold it and its BN."""

    conv: str  # layer name of the conv / fc
    bn: str | None  # BatchNorm layer (mean, variance, factor)
    scale: str | None  # Scale layer (gamma, beta)
    ours: Path  # our module path of the conv / fc
    ours_bn: Path | None  # our module path of its BN
    stride: int  # the stride the conv must have in the paper's (v1) net


def caffe_units(depth: int) -> list[CaffeUnit]:
    """Every conv + BN of the authors' ResNet-`depth` (50/101/152), then the fc, in network order."""
    kind, counts = STAGES[depth]
    if kind != "bottleneck":
        raise ReleasedModelError(f"the authors released ResNet-50/101/152 in Caffe, not ResNet-{depth}")
    units = [CaffeUnit("conv1", "bn_conv1", "scale_conv1", ("conv1",), ("bn1",), 2)]
    for s, count in enumerate(counts, start=2):
        for b in range(1, count + 1):
            tag = f"{s}{caffe_block_letter(depth, count, b)}"
            ours = layout.block_name(f"conv{s}", b)
            stride = 2 if b == 1 and s > 2 else 1
            if b == 1:
                units.append(CaffeUnit(f"res{tag}_branch1", f"bn{tag}_branch1", f"scale{tag}_branch1",
                                       (ours, "shortcut", "proj_conv"), (ours, "shortcut", "proj_bn"),
                                       stride))
            for i, branch in enumerate("abc", start=1):
                units.append(CaffeUnit(f"res{tag}_branch2{branch}", f"bn{tag}_branch2{branch}",
                                       f"scale{tag}_branch2{branch}", (ours, f"conv{i}"),
                                       (ours, f"bn{i}"), stride if branch == "a" else 1))
    units.append(CaffeUnit("fc1000", None, None, ("fc",), None, 1))
    return units


def caffe_depth(layer_names) -> int:
    """The depth of the authors' net with these layer names (its blocks per stage)."""
    counts = tuple(sum(1 for n in layer_names if re.fullmatch(rf"res{s}[a-z][0-9]*_branch2a", n))
                   for s in range(2, 6))
    for depth, (kind, c) in STAGES.items():
        if kind == "bottleneck" and c == counts:
            return depth
    raise ReleasedModelError(f"holds a net with {list(counts)} residual blocks per stage, not the "
                             "authors' ResNet-50/101/152")


# ---- shape checks --------------------------------------------------------------------------------

def to_ours(array: np.ndarray, kind: str) -> np.ndarray:
    if kind == CONV:
        return np.ascontiguousarray(np.transpose(array, (2, 3, 1, 0)))
    if kind == FC:
        return np.ascontiguousarray(array.T)
    return array


def from_ours(array: np.ndarray, kind: str) -> np.ndarray:
    if kind == CONV:
        return np.ascontiguousarray(np.transpose(array, (3, 2, 0, 1)))
    if kind == FC:
        return np.ascontiguousarray(array.T)
    return array


def checked(name: str, array: np.ndarray, kind: str, path: Path,
            shapes: dict[Path, tuple[int, ...]]) -> np.ndarray:
    """`array` (the file's tensor `name`) as our variable `path`, float32; ReleasedModelError if the
    model has no such variable or it has another shape."""
    if path not in shapes:
        raise ReleasedModelError(f"{name}: the model has no {'/'.join(path)}")
    ours = to_ours(np.asarray(array), kind)
    if ours.shape != shapes[path]:
        want = from_ours(np.zeros(shapes[path], np.int8), kind).shape
        raise ReleasedModelError(f"{name} has shape {list(np.shape(array))}, expected {list(want)}")
    if not np.issubdtype(ours.dtype, np.floating):
        raise ReleasedModelError(f"{name} holds {ours.dtype} values, not floats")
    return ours.astype(np.float32)


def unflatten(flat: dict[Path, np.ndarray]) -> dict:
    """{path: array} -> {"params": ..., "batch_stats": ...} nested dicts (per-block layout)."""
    return flax.traverse_util.unflatten_dict(flat)


# ---- conversions ---------------------------------------------------------------------------------

def from_torch_names(state: dict[str, np.ndarray], names: list[tuple[str, Path, str]],
                     shapes: dict[Path, tuple[int, ...]], net: str) -> dict:
    """A PyTorch state dict -> our variables (per block) by `names` ((key, our path, kind), in
    network order); ReleasedModelError naming the first tensor, in network order, that is missing
    or has the wrong shape, else the first the model (`net`, e.g. "ResNet-34") does not have.
    BN counters (num_batches_tracked) are not part of the function and are left out."""
    flat = {}
    for key, path, kind in names:
        if key not in state:
            raise ReleasedModelError(f"{key} is missing (a {net} has it)")
        flat[path] = checked(key, state[key], kind, path, shapes)
    known = {key for key, _, _ in names}
    if extra := [k for k in state if k not in known and not k.endswith("." + BN_COUNTER)]:
        raise ReleasedModelError(f"{extra[0]} is not a tensor of {net}")
    _check_complete(flat, shapes)
    return unflatten(flat)


def to_torch_names(variables: dict, names: list[tuple[str, Path, str]], holder: str,
                   counters: dict[str, int] | None) -> dict[str, np.ndarray]:
    """Our variables (either layout) -> a PyTorch state dict with `names`' keys, in their order.
    `counters`: each BN's num_batches_tracked after its running_var, {BN key prefix: count}
    (absent ones 0), as torch >= 0.4 saves them; None: no counters (torch 0.3's files)."""
    flat = flax.traverse_util.flatten_dict(layout.to_per_block(variables))
    state: dict[str, np.ndarray] = {}
    for key, path, kind in names:
        if path not in flat:
            raise ReleasedModelError(f"the model has no {'/'.join(path)} for {key}: {holder} cannot "
                                     "hold it")
        state[key] = from_ours(np.asarray(flat[path]), kind)
        if counters is not None and key.endswith(".running_var"):
            bn = key.removesuffix("running_var")
            state[bn + BN_COUNTER] = np.asarray(counters.get(bn.removesuffix("."), 0), np.int64)
    if extra := [p for p in flat if p not in {path for _, path, _ in names}]:
        raise ReleasedModelError(f"{'/'.join(extra[0])} has no place in {holder}")
    return state


def from_torchvision(state: dict[str, np.ndarray], depth: int,
                     shapes: dict[Path, tuple[int, ...]]) -> dict:
    """A torchvision state dict -> our variables (per block), as from_torch_names."""
    return from_torch_names(state, torchvision_names(depth), shapes, f"ResNet-{depth}")


def to_torchvision(variables: dict, depth: int) -> dict[str, np.ndarray]:
    """Our variables (either layout) -> a torchvision state dict, BN counters included (zero), so
    torchvision's strict `load_state_dict` takes it."""
    return to_torch_names(variables, torchvision_names(depth), f"torchvision's ResNet-{depth}", {})


def from_caffe(layers: dict, depth: int, shapes: dict[Path, tuple[int, ...]]) -> dict:
    """The authors' Caffe layers ({name: layer with .blobs and .params}) -> our variables.

    BatchNorm: Caffe keeps mean and variance multiplied by a moving-average factor (blob 3) and
    divides on use: mean = blob1 * (1/factor), as Caffe computes it (0 if the factor is 0). Its eps
    must be the 1e-5 of our BN. Scale: gamma, beta. A conv whose stored stride differs from the v1
    net's (stride on branch2a and branch1) is reported, as are missing layers and blobs of the
    wrong shape, by the first such layer in network order."""
    flat = {}
    for unit in caffe_units(depth):
        conv = _caffe_layer(layers, unit.conv)
        if unit.bn is None:  # fc1000: weight [classes, features], bias
            _blobs(conv, 2)
            flat[("params", *unit.ours, "kernel")] = checked(
                unit.conv, conv.blobs[0], FC, ("params", *unit.ours, "kernel"), shapes)
            flat[("params", *unit.ours, "bias")] = checked(
                f"{unit.conv} bias", conv.blobs[1], VECTOR, ("params", *unit.ours, "bias"), shapes)
            continue
        # (checked where the file keeps the layer's settings; an unset stride is Caffe's default 1)
        settings = conv.params.get("convolution_param")
        strides = (settings.get("stride") or [1]) if settings is not None else [unit.stride]
        if strides[0] != unit.stride:
            raise ReleasedModelError(f"{unit.conv} has stride {strides[0]}, but the v1 net (stride on "
                                     f"branch2a and branch1) has {unit.stride} there")
        bias = unit.conv == "conv1"
        _blobs(conv, 2 if bias else 1)
        path = ("params", *unit.ours, "kernel")
        flat[path] = checked(unit.conv, conv.blobs[0], CONV, path, shapes)
        if bias:
            path = ("params", *unit.ours, "bias")
            flat[path] = checked(f"{unit.conv} bias", conv.blobs[1], VECTOR, path, shapes)
        bn = _caffe_layer(layers, unit.bn)
        _blobs(bn, 3)
        eps = bn.params.get("batch_norm_param", {}).get("eps", 1e-5)
        if not np.isclose(eps, 1e-5, rtol=1e-3):
            raise ReleasedModelError(f"{unit.bn} has BN eps {eps}, not 1e-5")
        factor = np.asarray(bn.blobs[2], np.float32).reshape(-1)
        if factor.size != 1:
            raise ReleasedModelError(f"{unit.bn}: its third blob (the moving-average factor) has "
                                     f"{factor.size} values, not 1")
        inv = np.float32(0.0) if factor[0] == 0 else np.float32(1.0) / factor[0]
        for blob, leaf, what in ((0, "mean", "mean"), (1, "var", "variance")):
            path = ("batch_stats", *unit.ours_bn, leaf)
            flat[path] = checked(f"{unit.bn} {what}", np.asarray(bn.blobs[blob], np.float32) * inv,
                                 VECTOR, path, shapes)
        scale = _caffe_layer(layers, unit.scale)
        _blobs(scale, 2)
        for blob, leaf, what in ((0, "scale", "gamma"), (1, "bias", "beta")):
            path = ("params", *unit.ours_bn, leaf)
            flat[path] = checked(f"{unit.scale} {what}", scale.blobs[blob], VECTOR, path, shapes)
    _check_complete(flat, shapes)
    return unflatten(flat)


def _caffe_layer(layers: dict, name: str):
    if name not in layers:
        raise ReleasedModelError(f"layer {name} is missing")
    return layers[name]


def _blobs(layer, count: int) -> None:
    if len(layer.blobs) != count:
        raise ReleasedModelError(f"layer {layer.name} has {len(layer.blobs)} blobs, expected {count}")


def _check_complete(flat: dict, shapes: dict) -> None:
    if missing := [p for p in shapes if p not in flat]:
        raise ReleasedModelError(f"the file has nothing for {'/'.join(missing[0])}")
