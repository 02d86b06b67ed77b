"""Model registry: `create_model("cifar_resnet110")`, `create_model("imagenet_plain34")`, ...

Names are `{family}_{kind}{depth}` with family `cifar` or `imagenet` and kind `resnet` or `plain`.
"""

from __future__ import annotations

import re
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from resnet_jax.models.cifar import CifarResNet, blocks_per_stage
from resnet_jax.models.imagenet import INPUT_CONVENTIONS, STAGES, ImageNetResNet
from resnet_jax.models.layers import CONV_IMPLS, REMAT_OPTIONS, SHORTCUT_OPTIONS, BatchNorm

__all__ = ["BatchNorm", "CifarResNet", "ImageNetResNet", "create_model", "parse_model_name",
           "input_shape"]

_NAME = re.compile(r"^(cifar|imagenet)_(resnet|plain)(\d+)$")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def parse_model_name(name: str) -> tuple[str, bool, int]:
    """'cifar_resnet110' -> ('cifar', True, 110); raises ValueError with the valid forms."""
    m = _NAME.match(name)
    if not m:
        raise ValueError(f"unknown model {name!r}: expected cifar_resnetN / cifar_plainN (N=6n+2) or "
                         f"imagenet_resnetN / imagenet_plainN (N in {sorted(STAGES)})")
    family, kind, depth = m.group(1), m.group(2), int(m.group(3))
    if family == "cifar":
        blocks_per_stage(depth)
    elif depth not in STAGES:
        raise ValueError(f"unknown model {name!r}: ImageNet depths are {sorted(STAGES)}")
    return family, kind == "resnet", depth


def create_model(name: str, *, shortcut: str | None = None, num_classes: int | None = None,
                 bn_group_size: int = 0, dtype: str = "float32",
                 stride_on_3x3: bool = False, conv_impl: str = "xla", scan_blocks: bool = True,
                 scan_conv_impl: str | None = None, remat: str = "none",
                 input_convention: str = "paper", conv1_bias: bool = False,
                 pool_ceil_mode: bool = False) -> nn.Module:
    """Build a model by name. Shortcut defaults follow the paper: A on CIFAR, B on ImageNet.

    `bn_group_size`: images per BN statistics group (layers.BatchNorm), 0 the whole batch.
    `scan_blocks`: a stage's blocks after its first under one nn.scan (compile time and memory
    independent of depth; parameters stacked, models/layout.py) or unrolled; `scan_conv_impl`:
    conv_impl inside the scanned blocks (default: conv_impl; layers.stack_conv_impl); `remat` "block":
    each block's activations recomputed in the backward pass (REMAT_OPTIONS). `input_convention`,
    `conv1_bias`, `pool_ceil_mode`: ImageNet nets only, what a released model's files contain
    (models/imagenet.py; defaults: the paper's nets as trained here)."""
    family, residual, depth = parse_model_name(name)
    if shortcut is not None and shortcut not in SHORTCUT_OPTIONS:
        raise ValueError(f"unknown shortcut option {shortcut!r}: expected one of {SHORTCUT_OPTIONS}")
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}: expected one of {sorted(DTYPES)}")
    if scan_conv_impl is not None and scan_conv_impl not in CONV_IMPLS:
        raise ValueError(f"unknown scan_conv_impl {scan_conv_impl!r}: expected one of {CONV_IMPLS}")
    if remat not in REMAT_OPTIONS:
        raise ValueError(f"unknown remat {remat!r}: expected one of {REMAT_OPTIONS}")
    common: dict[str, Any] = dict(depth=depth, residual=residual, bn_group_size=bn_group_size,
                                  dtype=DTYPES[dtype], scan_blocks=bool(scan_blocks),
                                  scan_conv_impl=scan_conv_impl, remat=remat)
    if family == "cifar":
        if shortcut == "C":
            raise ValueError("shortcut option C is defined for the ImageNet nets only")
        if stride_on_3x3:
            raise ValueError("stride_on_3x3 (v1.5) applies to ImageNet bottleneck nets only")
        if input_convention != "paper" or conv1_bias or pool_ceil_mode:
            raise ValueError("input_convention, conv1_bias and pool_ceil_mode describe released "
                             "ImageNet models; the CIFAR nets have none of them")
        if conv_impl not in CONV_IMPLS:
            raise ValueError(f"unknown conv_impl {conv_impl!r}: expected one of {CONV_IMPLS}")
        return CifarResNet(shortcut=shortcut or "A", num_classes=num_classes or 10,
                           conv_impl=conv_impl, **common)
    if conv_impl != "xla":
        raise ValueError("conv_impl 'im2col' is for the CIFAR nets (several seeds per run) only")
    if input_convention not in INPUT_CONVENTIONS:
        raise ValueError(f"unknown input_convention {input_convention!r}: expected one of "
                         f"{', '.join(INPUT_CONVENTIONS)}")
    return ImageNetResNet(shortcut=shortcut or "B", num_classes=num_classes or 1000,
                          stride_on_3x3=stride_on_3x3, input_convention=input_convention,
                          conv1_bias=bool(conv1_bias), pool_ceil_mode=bool(pool_ceil_mode), **common)


def input_shape(name: str) -> tuple[int, int, int]:
    """The paper's input size for a model family (the nets accept any size)."""
    return (32, 32, 3) if parse_model_name(name)[0] == "cifar" else (224, 224, 3)
