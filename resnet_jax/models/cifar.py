"""CIFAR nets (Sec 4.2): 3x3 conv(16) -> 3 stages at 32/16/8 -> global average pool -> fc.

The units are any blocks.BLOCKS kind: the paper's plain and basic residual units (6n+2 layers),
and the bottleneck and pre-activation units of its follow-up (1603.05027: 9n+2 layers for
bottlenecks). A pre-activation net has no BN-ReLU after conv1 (each stage's first unit holds it)
and ends with BN-ReLU before pooling (1603.05027 appendix).
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from resnet_jax.models.blocks import BLOCKS, classifier, net_stages
from resnet_jax.models.inputs import adapt_input
from resnet_jax.models.layers import conv_factory, norm_factory


class CifarResNet(nn.Module):
    """3x3 conv(16) -> 3 stages of `block` units with `widths` filters -> GAP -> fc."""

    block: str = "basic"  # blocks.BLOCKS
    stage_sizes: Sequence[int] = (3, 3, 3)  # units per stage (n of 6n+2 or 9n+2)
    widths: Sequence[int] = (16, 32, 64)  # each stage's 3x3 conv width
    shortcut: str = "A"
    zero_pad: str = "after"  # where option A's zero channels go (layers.ZERO_PAD_OPTIONS)
    stride_on_3x3: bool = False  # bottleneck units only
    num_classes: int = 10
    bn_group_size: int = 0  # images per BN statistics group; 0: the whole batch
    dtype: Any = jnp.float32
    conv_impl: str = "xla"  # or "im2col": same math as a matmul (layers.PatchConv)
    scan_blocks: bool = True  # blocks 2..n of a stage under one nn.scan (layers.repeated_blocks)
    scan_conv_impl: str | None = None  # conv_impl inside the scanned blocks (None: conv_impl)
    remat: str = "none"  # "block": recompute each block's activations in the backward pass
    init_fan: str = "in"  # He init's fan (layers.INIT_FANS)
    # What a model trained elsewhere expects of its input (models/inputs.py); defaults: the paper's.
    input_convention: str = "paper"
    input_std: tuple[float, float, float] | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        preact = BLOCKS[self.block].preact
        conv = conv_factory(self.dtype, self.conv_impl, self.init_fan)
        norm = norm_factory(train, self.bn_group_size, self.dtype)
        x = adapt_input(x.astype(self.dtype), self.input_convention, self.input_std)
        x = conv(16, (3, 3), padding=1, name="conv1")(x)
        if not preact:
            x = nn.relu(norm(name="bn1")(x))
        x = net_stages(self, x, conv=conv, norm=norm, stage_key=lambda i: f"stage{i + 1}")
        if preact:
            x = nn.relu(norm(name="final_bn")(x))
        return classifier(self, x)
