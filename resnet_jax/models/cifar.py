"""CIFAR-10 plain and residual networks of depth 6n+2 (Sec 4.2)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from resnet_jax.models.layers import (BatchNorm, Shortcut, block_class, conv_factory, he_normal,
                                      norm_factory, stack_conv_impl, stage_blocks)


def blocks_per_stage(depth: int) -> int:
    """n for a 6n+2-layer CIFAR net; raises for any other depth."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"CIFAR nets have depth 6n+2 (20, 32, 44, 56, 110, 1202, ...); got {depth}")
    return (depth - 2) // 6


class BasicBlock(nn.Module):
    """Two 3x3 convs, BN after each; ReLU after the addition (or after BN 2 in a plain net)."""

    features: int
    stride: int
    residual: bool
    shortcut: str
    conv: Callable[..., nn.Module]  # nn.Conv or PatchConv (conv_factory)
    norm: Callable[..., BatchNorm]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.conv(self.features, (3, 3), strides=self.stride, padding=1, name="conv1")(x)
        y = nn.relu(self.norm(name="bn1")(y))
        y = self.conv(self.features, (3, 3), padding=1, name="conv2")(y)
        y = self.norm(name="bn2")(y)
        if self.residual:
            y = y + Shortcut(self.features, self.stride, self.shortcut, self.conv, self.norm,
                             name="shortcut")(x)
        return nn.relu(y)


class CifarResNet(nn.Module):
    """3x3 conv(16) -> 3 stages of n blocks at 32/16/8 with 16/32/64 filters -> GAP -> fc."""

    depth: int = 20
    residual: bool = True
    shortcut: str = "A"
    num_classes: int = 10
    widths: Sequence[int] = (16, 32, 64)
    bn_group_size: int = 0  # images per BN statistics group; 0: the whole batch
    dtype: Any = jnp.float32
    conv_impl: str = "xla"  # or "im2col": same math as a matmul (layers.PatchConv)
    scan_blocks: bool = True  # blocks 2..n of a stage under one nn.scan (layers.repeated_blocks)
    scan_conv_impl: str | None = None  # conv_impl inside the scanned blocks (None: conv_impl)
    remat: str = "none"  # "block": recompute each block's activations in the backward pass

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        n = blocks_per_stage(self.depth)
        conv = conv_factory(self.dtype, self.conv_impl)
        norm = norm_factory(train, self.bn_group_size, self.dtype)
        x = x.astype(self.dtype)
        x = conv(self.widths[0], (3, 3), padding=1, name="conv1")(x)
        x = nn.relu(norm(name="bn1")(x))
        block = block_class(BasicBlock, self.remat)
        stack_conv = conv_factory(self.dtype, stack_conv_impl(self))
        for stage, features in enumerate(self.widths):
            x = stage_blocks(block, x, f"stage{stage + 1}", n, 2 if stage > 0 else 1, features,
                             self.residual, self.shortcut, conv, stack_conv, norm, self.scan_blocks)
        x = x.mean(axis=(1, 2))
        # "We initialize the weights as in [13]" (Sec 3.4): the FC layer too, not flax's LeCun default.
        x = nn.Dense(self.num_classes, kernel_init=he_normal, dtype=self.dtype, param_dtype=jnp.float32,
                     name="fc")(x)
        return x.astype(jnp.float32)
