"""ImageNet plain and residual networks of Table 1 (18/34 basic blocks, 50/101/152 bottlenecks)."""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from resnet_jax.models.blocks import classifier, net_stages
from resnet_jax.models.inputs import INPUT_CONVENTIONS, TORCHVISION_MEAN, adapt_input
from resnet_jax.models.layers import conv_factory, norm_factory
from resnet_jax.models.variants import STAGES, WIDTHS

__all__ = ["INPUT_CONVENTIONS", "STAGES", "TORCHVISION_MEAN", "WIDTHS", "ImageNetResNet", "adapt_input",
           "caffe_max_pool"]


def caffe_max_pool(x: jax.Array) -> jax.Array:
    """Caffe's pool1 (3x3/2 max, no padding) with its ceil-mode output size: ceil((H - 3) / 2) + 1
    windows from the top-left corner, the last one cut off at the edge. The paper nets' pool pads
    by 1 on each side instead; the two agree in size at 224 but not in which pixels they take."""
    pads = []
    for size in x.shape[1:3]:
        out = -(-(size - 3) // 2) + 1
        pads.append((0, (out - 1) * 2 + 3 - size))
    return nn.max_pool(x, (3, 3), strides=(2, 2), padding=pads)


class ImageNetResNet(nn.Module):
    """conv1 7x7/2 -> 3x3 max pool/2 -> conv2_x..conv5_x -> global average pool -> fc."""

    block: str = "bottleneck"  # blocks.BLOCKS
    stage_sizes: Sequence[int] = (3, 4, 6, 3)  # blocks in conv2_x..conv5_x (Table 1)
    widths: Sequence[int] = WIDTHS
    shortcut: str = "B"
    zero_pad: str = "after"
    num_classes: int = 1000
    stride_on_3x3: bool = False
    bn_group_size: int = 0  # images per BN statistics group; 0: the whole batch
    dtype: Any = jnp.float32
    scan_blocks: bool = True  # blocks 2..k of a stage under one nn.scan (layers.repeated_blocks)
    scan_conv_impl: str | None = None  # "im2col": the scanned blocks' convs as matmuls
    remat: str = "none"  # "block": recompute each block's activations in the backward pass
    init_fan: str = "in"  # He init's fan (layers.INIT_FANS)
    # Options that let the released models be expressed exactly (train/released.py); the defaults
    # are the paper's nets as this project trains them.
    input_convention: str = "paper"  # INPUT_CONVENTIONS
    input_std: tuple[float, float, float] | None = None  # the convention's std unless given
    conv1_bias: bool = False  # the Caffe models' conv1 has a bias (redundant before BN)
    pool_ceil_mode: bool = False  # Caffe's pool1: no padding, ceil-mode size (caffe_max_pool)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        conv = conv_factory(self.dtype, init_fan=self.init_fan)
        norm = norm_factory(train, self.bn_group_size, self.dtype)
        x = adapt_input(x.astype(self.dtype), self.input_convention, self.input_std)
        x = conv(64, (7, 7), strides=2, padding=3, use_bias=self.conv1_bias, name="conv1")(x)
        x = nn.relu(norm(name="bn1")(x))
        if self.pool_ceil_mode:
            x = caffe_max_pool(x)
        else:
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        x = net_stages(self, x, conv=conv, norm=norm, stage_key=lambda i: f"conv{i + 2}")
        return classifier(self, x)
