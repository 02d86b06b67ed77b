"""The explainer article's small ResNet (experiments/explainer.py), built from the paper's parts.

conv1 3x3/1 (64) -> BN -> ReLU -> 3x3/2 max pool -> one basic unit of 64 (conv3x3-BN-ReLU-conv3x3-
BN-add-ReLU) -> one bottleneck unit (1x1 64 -> 3x3 64 -> 1x1 256, projection shortcut, add, ReLU)
-> global average pool -> fc. The article leaves the stem's kernel and stride open; this takes the
paper's CIFAR first layer (Sec 4.2: 3x3, stride 1; 64 filters, the article's width, so the basic
unit's shortcut is an identity) and its ImageNet max pool (Table 1: 3x3, stride 2), so 32x32 inputs
run both units at 16x16. Neither unit downsamples (the article names no stride): they are ResNet-18's
and ResNet-50's conv2_1 (Table 1), the bottleneck's addition after its last BN and before the ReLU
(Fig 5), its 64 -> 256 shortcut a projection (option B, Sec 3.3). He init, BN epsilon 1e-5 (layers).
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from resnet_jax.models.blocks import classifier, net_stages
from resnet_jax.models.inputs import adapt_input
from resnet_jax.models.layers import conv_factory, norm_factory


class ExplainerNet(nn.Module):
    """conv1 (64) + BN-ReLU + max pool -> one unit per stage, all at stride 1 -> GAP -> fc."""

    block: Sequence[str] = ("basic", "bottleneck")  # blocks.BLOCKS kind of each stage
    stage_sizes: Sequence[int] = (1, 1)
    widths: Sequence[int] = (64, 64)  # each stage's 3x3 conv width (a bottleneck outputs 4x)
    shortcut: str = "B"
    zero_pad: str = "after"
    stride_on_3x3: bool = False  # no unit strides: accepted for the common options, moves nothing
    num_classes: int = 10
    bn_group_size: int = 0  # images per BN statistics group; 0: the whole batch
    dtype: Any = jnp.float32
    conv_impl: str = "xla"
    scan_blocks: bool = True  # one unit per stage: nothing to scan
    scan_conv_impl: str | None = None
    remat: str = "none"
    init_fan: str = "in"
    input_convention: str = "paper"
    input_std: tuple[float, float, float] | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        conv = conv_factory(self.dtype, self.conv_impl, self.init_fan)
        norm = norm_factory(train, self.bn_group_size, self.dtype)
        x = adapt_input(x.astype(self.dtype), self.input_convention, self.input_std)
        x = conv(self.widths[0], (3, 3), padding=1, name="conv1")(x)
        x = nn.relu(norm(name="bn1")(x))
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        x = net_stages(self, x, conv=conv, norm=norm, stage_key=lambda i: f"stage{i + 1}",
                       strides=(1,) * len(self.stage_sizes))
        return classifier(self, x)
