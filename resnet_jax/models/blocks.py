"""Residual units by name (BLOCKS): the original ones of He et al. 2016 and the pre-activation
ones of their follow-up, "Identity Mappings in Deep Residual Networks" (arXiv 1603.05027).

Every block takes keyword options: `features` (the width of its 3x3 conv; it outputs
`expansion * features` channels), `stride`, the injected `conv` and `norm` factories and `act`,
the shortcut `option` letter (Sec 3.3) and where option A puts its zero channels (`zero_pad`).
A new kind of unit is one `Unit` subclass here and one BLOCKS entry.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from resnet_jax.models.layers import (BatchNorm, Shortcut, block_class, conv_factory, he_normal,
                                      stack_conv_impl, stage_blocks)


class Unit(nn.Module):
    """The options every unit takes (module docstring); a unit class adds its own."""

    features: int
    stride: int
    conv: Callable[..., nn.Module]  # nn.Conv or PatchConv (conv_factory)
    norm: Callable[..., BatchNorm]
    act: Callable[[jax.Array], jax.Array] = nn.relu
    shortcut: str = "A"
    zero_pad: str = "after"


class BasicBlock(Unit):
    """Two 3x3 convs, BN after each; ReLU after the addition (or after BN 2 in a plain net)."""

    residual: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.conv(self.features, (3, 3), strides=self.stride, padding=1, name="conv1")(x)
        y = self.act(self.norm(name="bn1")(y))
        y = self.conv(self.features, (3, 3), padding=1, name="conv2")(y)
        y = self.norm(name="bn2")(y)
        if self.residual:
            y = y + Shortcut(self.features, self.stride, self.shortcut, self.conv, self.norm,
                             self.zero_pad, name="shortcut")(x)
        return self.act(y)


class Bottleneck(Unit):
    """1x1 (reduce) -> 3x3 -> 1x1 (restore, 4x). v1: the stride sits on the first 1x1 conv."""

    shortcut: str = "B"  # the paper's bottleneck nets project where dimensions grow (Sec 4.1)
    residual: bool = True
    stride_on_3x3: bool = False  # "v1.5" (later zoos), not the paper's model

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        s1, s3 = (1, self.stride) if self.stride_on_3x3 else (self.stride, 1)
        y = self.conv(self.features, (1, 1), strides=s1, name="conv1")(x)
        y = self.act(self.norm(name="bn1")(y))
        y = self.conv(self.features, (3, 3), strides=s3, padding=1, name="conv2")(y)
        y = self.act(self.norm(name="bn2")(y))
        y = self.conv(4 * self.features, (1, 1), name="conv3")(y)
        y = self.norm(name="bn3")(y)
        if self.residual:
            y = y + Shortcut(4 * self.features, self.stride, self.shortcut, self.conv, self.norm,
                             self.zero_pad, name="shortcut")(x)
        return self.act(y)


class PreActBasicBlock(Unit):
    """1603.05027 Fig. 4(e): BN -> ReLU -> 3x3 conv -> BN -> ReLU -> 3x3 conv, added to the
    shortcut; nothing after the addition, so the shortcut path is a pure identity.

    `shared_preact`: the first BN-ReLU comes before the split, the shortcut takes its output too.
    The net sets it on each stage's first unit: the first unit after conv1 ("we adopt the first
    activation right after conv1 and before splitting into two paths", appendix) and the units that
    change dimensions ("projection shortcuts are also with pre-activation"; the authors' Torch code
    shares it exactly where the channels change). Elsewhere the shortcut is the unit's raw input."""

    shared_preact: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.act(self.norm(name="bn1")(x))
        x = y if self.shared_preact else x
        y = self.conv(self.features, (3, 3), strides=self.stride, padding=1, name="conv1")(y)
        y = self.act(self.norm(name="bn2")(y))
        y = self.conv(self.features, (3, 3), padding=1, name="conv2")(y)
        return y + Shortcut(self.features, self.stride, self.shortcut, self.conv, None,
                            self.zero_pad, name="shortcut")(x)


class PreActBottleneck(Unit):
    """1603.05027 Fig. 4(e) as a bottleneck (Sec. 5, ResNet-164/1001): BN -> ReLU -> 1x1 ->
    BN -> ReLU -> 3x3 -> BN -> ReLU -> 1x1 (4x), identity addition, nothing after it. The stride
    sits on the first 1x1 conv and on the projection (the authors' Torch code, as [1]'s v1);
    `shared_preact` as in PreActBasicBlock."""

    shortcut: str = "B"
    shared_preact: bool = False
    stride_on_3x3: bool = False  # fb.resnet.torch's preresnet.lua; not the authors' code

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        s1, s3 = (1, self.stride) if self.stride_on_3x3 else (self.stride, 1)
        y = self.act(self.norm(name="bn1")(x))
        x = y if self.shared_preact else x
        y = self.conv(self.features, (1, 1), strides=s1, name="conv1")(y)
        y = self.act(self.norm(name="bn2")(y))
        y = self.conv(self.features, (3, 3), strides=s3, padding=1, name="conv2")(y)
        y = self.act(self.norm(name="bn3")(y))
        y = self.conv(4 * self.features, (1, 1), name="conv3")(y)
        return y + Shortcut(4 * self.features, self.stride, self.shortcut, self.conv, None,
                            self.zero_pad, name="shortcut")(x)


@dataclasses.dataclass(frozen=True)
class BlockKind:
    """A registered unit: its module, output channels per `features`, fixed options."""

    module: type[nn.Module]
    expansion: int
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # BN-ReLU before each conv: the net's stem is conv1 alone (each stage's first unit holds the
    # activation) and the net ends with BN-ReLU before pooling (1603.05027 appendix).
    preact: bool = False

    @property
    def residual(self) -> bool:
        return self.options.get("residual", True)

    def accepts(self, option: str) -> bool:
        return option in self.module.__dataclass_fields__


BLOCKS = {
    "basic": BlockKind(BasicBlock, 1),
    "plain": BlockKind(BasicBlock, 1, {"residual": False}),
    "bottleneck": BlockKind(Bottleneck, 4),
    "plain_bottleneck": BlockKind(Bottleneck, 4, {"residual": False}),
    "preact_basic": BlockKind(PreActBasicBlock, 1, preact=True),
    "preact_bottleneck": BlockKind(PreActBottleneck, 4, preact=True),
}


def residual_stages(x: jax.Array, *, block: str | Sequence[str], stage_sizes, widths,
                    stage_key: Callable[[int], str], conv, stack_conv, norm, scan: bool, remat: str,
                    strides: Sequence[int] | None = None, **options: Any) -> jax.Array:
    """The stages of a net of `block` units (one kind, or one per stage): stage i has
    `stage_sizes[i]` units of width `widths[i]`, the first one strided by `strides[i]` (default: 2
    after the first stage, Sec 3.3: the feature map size halves as the filters double). `options`:
    the units' keyword options (shortcut, zero_pad, ...); an option a unit does not have may only be
    off (False)."""
    kinds = (block,) * len(stage_sizes) if isinstance(block, str) else tuple(block)
    strides = tuple(strides) if strides is not None else tuple(2 if s else 1 for s in range(len(kinds)))
    for stage, (name, features, count, stride) in enumerate(zip(kinds, widths, stage_sizes, strides,
                                                                 strict=True)):
        kind = BLOCKS[name]
        for option, value in options.items():
            if not kind.accepts(option) and value:
                raise ValueError(f"option {option}={value!r} does not apply to {name!r} units")
        unit_options = {k: v for k, v in options.items() if kind.accepts(k)} | dict(kind.options)
        x = stage_blocks(block_class(kind.module, remat), x, key=stage_key(stage), count=count,
                         stride=stride, features=features, conv=conv, stack_conv=stack_conv, norm=norm,
                         scan=scan, first={"shared_preact": True} if kind.preact else None,
                         **unit_options)
    return x


def net_stages(net: nn.Module, x: jax.Array, *, conv, norm, stage_key: Callable[[int], str],
               strides: Sequence[int] | None = None) -> jax.Array:
    """`residual_stages` with a net's own fields (block, stage_sizes, widths, shortcut, zero_pad,
    stride_on_3x3, dtype, init_fan, scan_blocks, scan_conv_impl, remat): the body every net shares."""
    return residual_stages(x, block=net.block, stage_sizes=net.stage_sizes, widths=net.widths,
                           stage_key=stage_key, conv=conv, norm=norm, strides=strides,
                           stack_conv=conv_factory(net.dtype, stack_conv_impl(net), net.init_fan),
                           scan=net.scan_blocks, remat=net.remat, shortcut=net.shortcut,
                           zero_pad=net.zero_pad, stride_on_3x3=net.stride_on_3x3)


def classifier(net: nn.Module, x: jax.Array) -> jax.Array:
    """Global average pooling and the fc layer, float32 logits (called inside a net's __call__)."""
    x = x.mean(axis=(1, 2))
    # "We initialize the weights as in [13]" (Sec 3.4): the FC layer too, not flax's LeCun default.
    x = nn.Dense(net.num_classes, kernel_init=he_normal, dtype=net.dtype, param_dtype=jnp.float32,
                 name="fc")(x)
    return x.astype(jnp.float32)
