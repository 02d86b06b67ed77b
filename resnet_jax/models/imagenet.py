"""ImageNet plain and residual networks of Table 1 (18/34 basic blocks, 50/101/152 bottlenecks)."""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from resnet_jax.models.cifar import BasicBlock
from resnet_jax.models.layers import (BatchNorm, Shortcut, block_class, conv_factory, he_normal,
                                      norm_factory, stack_conv_impl, stage_blocks)

# depth -> (block kind, blocks in conv2_x..conv5_x), straight from Table 1.
STAGES = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
WIDTHS = (64, 128, 256, 512)

# What the first conv of a net expects, given the pipeline's normalized input x = image/255 - mean
# (RGB, data/augment.normalize): (channel order, factor, divisor) with input = x * factor / divisor
# per RGB channel, then reordered. "paper": this project's nets, [0, 1] minus the per-pixel
# training mean (Sec 3.4). "caffe": the authors' released Caffe models, BGR in 0-255 minus their
# mean image. "torchvision": RGB in [0, 1] minus a mean colour, divided by a per-channel std. The
# mean itself is data (the training mean, or the one a released model came with), not an option.
INPUT_CONVENTIONS = {
    "paper": ("rgb", 1.0, (1.0, 1.0, 1.0)),
    "caffe": ("bgr", 255.0, (1.0, 1.0, 1.0)),
    "torchvision": ("rgb", 1.0, (0.229, 0.224, 0.225)),
}
TORCHVISION_MEAN = (0.485, 0.456, 0.406)


def adapt_input(x: jax.Array, convention: str) -> jax.Array:
    """The normalized RGB input `x` in the form a net of `convention` was trained on."""
    order, factor, std = INPUT_CONVENTIONS[convention]
    if factor != 1.0:
        x = x * factor
    if std != (1.0, 1.0, 1.0):
        x = x / jnp.asarray(std, x.dtype)
    return x[..., ::-1] if order == "bgr" else x


def caffe_max_pool(x: jax.Array) -> jax.Array:
    """Caffe's pool1 (3x3/2 max, no padding) with its ceil-mode output size: ceil((H - 3) / 2) + 1
    windows from the top-left corner, the last one cut off at the edge. The paper nets' pool pads
    by 1 on each side instead; the two agree in size at 224 but not in which pixels they take."""
    pads = []
    for size in x.shape[1:3]:
        out = -(-(size - 3) // 2) + 1
        pads.append((0, (out - 1) * 2 + 3 - size))
    return nn.max_pool(x, (3, 3), strides=(2, 2), padding=pads)


class Bottleneck(nn.Module):
    """1x1 (reduce) -> 3x3 -> 1x1 (restore, 4x). v1: the stride sits on the first 1x1 conv."""

    features: int
    stride: int
    residual: bool
    shortcut: str
    conv: Callable[..., nn.Module]  # from conv_factory
    norm: Callable[..., BatchNorm]
    stride_on_3x3: bool = False  # "v1.5" (later zoos), not the paper's model

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        s1, s3 = (1, self.stride) if self.stride_on_3x3 else (self.stride, 1)
        y = self.conv(self.features, (1, 1), strides=s1, name="conv1")(x)
        y = nn.relu(self.norm(name="bn1")(y))
        y = self.conv(self.features, (3, 3), strides=s3, padding=1, name="conv2")(y)
        y = nn.relu(self.norm(name="bn2")(y))
        y = self.conv(4 * self.features, (1, 1), name="conv3")(y)
        y = self.norm(name="bn3")(y)
        if self.residual:
            y = y + Shortcut(4 * self.features, self.stride, self.shortcut, self.conv, self.norm,
                             name="shortcut")(x)
        return nn.relu(y)


class ImageNetResNet(nn.Module):
    """conv1 7x7/2 -> 3x3 max pool/2 -> conv2_x..conv5_x -> global average pool -> fc."""

    depth: int = 50
    residual: bool = True
    shortcut: str = "B"
    num_classes: int = 1000
    stride_on_3x3: bool = False
    bn_group_size: int = 0  # images per BN statistics group; 0: the whole batch
    dtype: Any = jnp.float32
    scan_blocks: bool = True  # blocks 2..k of a stage under one nn.scan (layers.repeated_blocks)
    scan_conv_impl: str | None = None  # "im2col": the scanned blocks' convs as matmuls
    remat: str = "none"  # "block": recompute each block's activations in the backward pass
    # Options that let the released models be expressed exactly (train/released.py); the defaults
    # are the paper's nets as this project trains them.
    input_convention: str = "paper"  # INPUT_CONVENTIONS
    conv1_bias: bool = False  # the Caffe models' conv1 has a bias (redundant before BN)
    pool_ceil_mode: bool = False  # Caffe's pool1: no padding, ceil-mode size (caffe_max_pool)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if self.depth not in STAGES:
            raise ValueError(f"ImageNet nets have depth {sorted(STAGES)}; got {self.depth}")
        kind, counts = STAGES[self.depth]
        conv = conv_factory(self.dtype)
        norm = norm_factory(train, self.bn_group_size, self.dtype)
        if self.input_convention not in INPUT_CONVENTIONS:
            raise ValueError(f"unknown input_convention {self.input_convention!r}: expected one of "
                             f"{sorted(INPUT_CONVENTIONS)}")
        x = adapt_input(x.astype(self.dtype), self.input_convention)
        x = conv(64, (7, 7), strides=2, padding=3, use_bias=self.conv1_bias, name="conv1")(x)
        x = nn.relu(norm(name="bn1")(x))
        if self.pool_ceil_mode:
            x = caffe_max_pool(x)
        else:
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        if kind == "basic":
            block = block_class(BasicBlock, self.remat)
        else:
            block = functools.partial(block_class(Bottleneck, self.remat),
                                      stride_on_3x3=self.stride_on_3x3)
        stack_conv = conv_factory(self.dtype, stack_conv_impl(self))
        for stage, (features, count) in enumerate(zip(WIDTHS, counts)):
            x = stage_blocks(block, x, f"conv{stage + 2}", count, 2 if stage > 0 else 1, features,
                             self.residual, self.shortcut, conv, stack_conv, norm, self.scan_blocks)
        x = x.mean(axis=(1, 2))
        # "We initialize the weights as in [13]" (Sec 3.4): the FC layer too, not flax's LeCun default.
        x = nn.Dense(self.num_classes, kernel_init=he_normal, dtype=self.dtype, param_dtype=jnp.float32,
                     name="fc")(x)
        return x.astype(jnp.float32)
