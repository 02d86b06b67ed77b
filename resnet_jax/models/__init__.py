"""Model registry: `create_model("cifar_resnet110")`, `create_model("cifar_preact_bottleneck1001")`, ...

Names are `{variant}{depth}`, one variant per entry of variants.VARIANTS (family, unit, depth rule,
widths, default shortcut); the units are blocks.BLOCKS.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from resnet_jax.models.blocks import BLOCKS
from resnet_jax.models.cifar import CifarResNet
from resnet_jax.models.explainer import ExplainerNet
from resnet_jax.models.imagenet import ImageNetResNet
from resnet_jax.models.inputs import check_input
from resnet_jax.models.layers import (CONV_IMPLS, INIT_FANS, REMAT_OPTIONS, SHORTCUT_OPTIONS,
                                      ZERO_PAD_OPTIONS, BatchNorm)
from resnet_jax.models.variants import VARIANTS, ModelSpec, parse_model_name

__all__ = ["BLOCKS", "BatchNorm", "CifarResNet", "ExplainerNet", "ImageNetResNet", "ModelSpec", "VARIANTS",
           "create_model", "parse_model_name", "input_shape"]

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def _choice(option: str, value: Any, choices) -> None:
    if value not in choices:
        raise ValueError(f"unknown {option} {value!r}: expected one of {', '.join(map(str, choices))}")


def create_model(name: str, *, shortcut: str | None = None, num_classes: int | None = None,
                 bn_group_size: int = 0, dtype: str = "float32",
                 stride_on_3x3: bool = False, conv_impl: str = "xla", scan_blocks: bool = True,
                 scan_conv_impl: str | None = None, remat: str = "none",
                 input_convention: str = "paper", conv1_bias: bool = False,
                 pool_ceil_mode: bool = False, zero_pad: str = "after",
                 input_std: Sequence[float] | None = None, init_fan: str = "in") -> nn.Module:
    """Build a model by name. Shortcut defaults are the variant's (the papers': A on the CIFAR
    nets of basic units, B on bottleneck and ImageNet nets).

    `bn_group_size`: images per BN statistics group (layers.BatchNorm), 0 the whole batch.
    `scan_blocks`: a stage's blocks after its first under one nn.scan (compile time and memory
    independent of depth; parameters stacked, models/layout.py) or unrolled; `scan_conv_impl`:
    conv_impl inside the scanned blocks (default: conv_impl; layers.stack_conv_impl); `remat` "block":
    each block's activations recomputed in the backward pass (REMAT_OPTIONS).
    `stride_on_3x3`: bottleneck units' stride on the 3x3 conv ("v1.5"; the papers': the first 1x1).
    What a model trained elsewhere contains: `input_convention` and `input_std` (models/inputs.py),
    `zero_pad` (where option A's zero channels go, layers.ZERO_PAD_OPTIONS), `init_fan` (He init's
    fan: "in" the papers', "out" the authors' Torch code for 1603.05027), and, ImageNet nets only,
    `conv1_bias`, `pool_ceil_mode` (models/imagenet.py). Defaults: the paper's nets as trained here."""
    spec = parse_model_name(name)
    if shortcut is not None:
        _choice("shortcut option", shortcut, SHORTCUT_OPTIONS)
    _choice("dtype", dtype, DTYPES)
    _choice("conv_impl", conv_impl, CONV_IMPLS)
    if scan_conv_impl is not None:
        _choice("scan_conv_impl", scan_conv_impl, CONV_IMPLS)
    _choice("remat", remat, REMAT_OPTIONS)
    _choice("zero_pad", zero_pad, ZERO_PAD_OPTIONS)
    _choice("init_fan", init_fan, INIT_FANS)
    check_input(input_convention, input_std)
    if stride_on_3x3 and not all(BLOCKS[kind].accepts("stride_on_3x3") for kind in spec.kinds):
        raise ValueError(f"stride_on_3x3 (v1.5) applies to bottleneck nets only, not {name}")
    common: dict[str, Any] = dict(
        block=spec.block, stage_sizes=spec.stage_sizes, widths=spec.widths,
        shortcut=shortcut or spec.shortcut, zero_pad=zero_pad, stride_on_3x3=bool(stride_on_3x3),
        bn_group_size=bn_group_size, dtype=DTYPES[dtype], scan_blocks=bool(scan_blocks),
        scan_conv_impl=scan_conv_impl, remat=remat, init_fan=init_fan, input_convention=input_convention,
        input_std=tuple(input_std) if input_std is not None else None)
    if spec.family != "imagenet":
        if shortcut == "C":
            raise ValueError("shortcut option C is defined for the ImageNet nets only")
        if conv1_bias or pool_ceil_mode:
            raise ValueError("conv1_bias and pool_ceil_mode describe released ImageNet models; the "
                             "CIFAR nets have neither")
        net = ExplainerNet if spec.family == "explainer" else CifarResNet
        return net(num_classes=num_classes or 10, conv_impl=conv_impl, **common)
    if conv_impl != "xla":
        raise ValueError("conv_impl 'im2col' is for the CIFAR nets (several seeds per run) only")
    return ImageNetResNet(num_classes=num_classes or 1000, conv1_bias=bool(conv1_bias),
                          pool_ceil_mode=bool(pool_ceil_mode), **common)


def input_shape(name: str) -> tuple[int, int, int]:
    """The paper's input size for a model family (the nets accept any size)."""
    return (224, 224, 3) if parse_model_name(name).family == "imagenet" else (32, 32, 3)
