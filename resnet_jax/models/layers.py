"""Building blocks shared by the CIFAR and ImageNet networks of He et al. (2016).

Every conv is followed by BN and then the nonlinearity (Sec 3.4).  BN statistics are computed over
groups of `group_size` images, so a data-parallel run can reproduce the paper's per-GPU statistics
(64 images on CIFAR, 32 on ImageNet) independently of how many devices share the batch.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from resnet_jax.models.layout import block_name, stacked_name

# He et al. (2015) "MSRA" init: zero-mean Gaussian, std sqrt(2 / fan_in) (fan_in = k*k*c_in), the
# forward-pass case of that paper. Its backward-pass case, std sqrt(2 / (k*k*c_out)), is what the
# authors' Torch code for 1603.05027 draws (INIT_FANS "out").
he_normal = nn.initializers.variance_scaling(2.0, "fan_in", "normal")
INIT_FANS = {"in": he_normal, "out": nn.initializers.variance_scaling(2.0, "fan_out", "normal")}

SHORTCUT_OPTIONS = ("A", "B", "C")
# Option A's zero channels: after the identity ones (fb.resnet.torch, ours) or split before and
# after them (akamaster's CIFAR nets: the identity sits in the middle channels). The paper does not say.
ZERO_PAD_OPTIONS = ("after", "both")
REMAT_OPTIONS = ("none", "block")


class BatchNorm(nn.Module):
    """Batch normalization whose statistics are taken over groups of `group_size` images.

    `group_size=0` normalizes over the whole (global, possibly multi-device) batch, i.e. sync BN.
    Running statistics average the per-group statistics, so they do not depend on the device count.
    """

    use_running_average: bool = False
    group_size: int = 0
    momentum: float = 0.9
    epsilon: float = 1e-5
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        features = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (features,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (features,), jnp.float32)
        ra_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,), jnp.float32)
        ra_var = self.variable("batch_stats", "var", jnp.ones, (features,), jnp.float32)

        if self.use_running_average:
            mean, var = ra_mean.value, ra_var.value
            y = (x.astype(jnp.float32) - mean) * jax.lax.rsqrt(var + self.epsilon)
        else:
            batch = x.shape[0]
            group = self.group_size or batch
            if batch % group:
                raise ValueError(f"batch {batch} is not divisible by the BN group size {group}")
            xg = x.astype(jnp.float32).reshape(batch // group, group, *x.shape[1:])
            axes = tuple(range(1, xg.ndim - 1))
            mean = xg.mean(axes, keepdims=True)
            # E[x^2] - E[x]^2 lets XLA fuse both reductions into one pass (as flax's fast variance).
            var = jnp.maximum((xg * xg).mean(axes, keepdims=True) - mean * mean, 0.0)
            y = ((xg - mean) * jax.lax.rsqrt(var + self.epsilon)).reshape(x.shape)
            if not self.is_initializing():
                m = self.momentum
                ra_mean.value = m * ra_mean.value + (1 - m) * mean.reshape(-1, features).mean(0)
                ra_var.value = m * ra_var.value + (1 - m) * var.reshape(-1, features).mean(0)
        return (y * scale + bias).astype(self.dtype)


CONV_IMPLS = ("xla", "im2col")


class PatchConv(nn.Module):
    """nn.Conv's bias-free convolution as patch extraction (strided slices) and one matmul.

    Same parameter as nn.Conv (name, shape, init), so the two are interchangeable in a checkpoint.
    Why: under jax.vmap over several seeds, per-seed kernels turn nn.Conv into a grouped
    convolution, but turn this matmul into one batched matmul (train/seeds.py, `conv_impl`).
    """

    features: int
    kernel_size: tuple[int, int]
    strides: int = 1
    padding: int | str = "SAME"
    use_bias: bool = False
    kernel_init: Callable = he_normal
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.use_bias:
            raise ValueError("PatchConv has no bias (every conv here is followed by BN)")
        kh, kw = self.kernel_size
        s, cin = self.strides, x.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (kh, kw, cin, self.features),
                            self.param_dtype)
        pads = [_padding(size, k, s, self.padding) for size, k in zip(x.shape[1:3], (kh, kw))]
        x = jnp.pad(x.astype(self.dtype), ((0, 0), *pads, (0, 0)))
        ho, wo = (x.shape[1] - kh) // s + 1, (x.shape[2] - kw) // s + 1
        # Feature order (i, j, c) is the row-major flattening of the HWIO kernel's first three axes.
        patches = jnp.concatenate([x[:, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s, :]
                                   for i in range(kh) for j in range(kw)], axis=-1)
        return patches @ kernel.reshape(kh * kw * cin, self.features).astype(self.dtype)


def _padding(size: int, k: int, stride: int, padding: int | str) -> tuple[int, int]:
    if isinstance(padding, int):
        return padding, padding
    if padding != "SAME":
        raise ValueError(f"PatchConv supports an int padding or 'SAME', not {padding!r}")
    total = max((-(-size // stride) - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


def conv_factory(dtype: Any, impl: str = "xla", init_fan: str = "in") -> Callable[..., nn.Module]:
    """Bias-free conv with He init (a bias would be cancelled by the following BN); `impl` "xla"
    is nn.Conv (lax.conv), "im2col" the same math as a matmul (PatchConv); `init_fan` INIT_FANS."""
    if impl not in CONV_IMPLS:
        raise ValueError(f"unknown conv_impl {impl!r}: expected one of {CONV_IMPLS}")
    return functools.partial(nn.Conv if impl == "xla" else PatchConv, use_bias=False,
                             kernel_init=INIT_FANS[init_fan], dtype=dtype, param_dtype=jnp.float32)


def norm_factory(train: bool, group_size: int, dtype: Any) -> Callable[..., BatchNorm]:
    return functools.partial(BatchNorm, use_running_average=not train, group_size=group_size,
                             dtype=dtype)


def subsample_and_zero_pad(x: jax.Array, stride: int, out_channels: int,
                           zero_pad: str = "after") -> jax.Array:
    """Option A shortcut: x[:, ::s, ::s, :] and zero entries for the extra channels (no params),
    placed after the identity channels or, `zero_pad="both"`, half before and half after."""
    if stride > 1:
        x = x[:, ::stride, ::stride, :]
    extra = out_channels - x.shape[-1]
    if extra > 0:
        before = extra // 2 if zero_pad == "both" else 0
        x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (before, extra - before)))
    return x


class Shortcut(nn.Module):
    """The identity/projection path of a residual block (Sec 3.3, options A/B/C).

    `norm` None: a projection without BN after it (pre-activation units, whose input is already
    normalized: 1603.05027's appendix, "projection shortcuts are also with pre-activation")."""

    out_channels: int
    stride: int
    option: str
    conv: Callable[..., nn.Module]  # nn.Conv or PatchConv (conv_factory)
    norm: Callable[..., BatchNorm] | None
    zero_pad: str = "after"  # ZERO_PAD_OPTIONS

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        changes_shape = self.stride != 1 or x.shape[-1] != self.out_channels
        if self.option == "C" or (self.option == "B" and changes_shape):
            x = self.conv(self.out_channels, (1, 1), strides=self.stride, name="proj_conv")(x)
            return self.norm(name="proj_bn")(x) if self.norm is not None else x
        if changes_shape:  # option A, or identity-compatible B
            return subsample_and_zero_pad(x, self.stride, self.out_channels, self.zero_pad)
        return x


def block_class(block: type[nn.Module], remat: str) -> type[nn.Module]:
    """`block`, or with remat="block" the same block under jax.checkpoint: its activations are
    recomputed in the backward pass instead of kept (memory of one block per stage, ~1/3 more
    compute), same function and parameters."""
    if remat not in REMAT_OPTIONS:
        raise ValueError(f"unknown remat {remat!r}: expected one of {REMAT_OPTIONS}")
    return nn.remat(block) if remat == "block" else block


def stack_conv_impl(model: nn.Module) -> str:
    """The conv implementation of a model's scanned blocks: `scan_conv_impl` if set, else the
    model's `conv_impl` (ImageNet nets: "xla"). Unrolled blocks are outside any loop and keep
    `conv_impl`. Why a separate choice: XLA:CPU runs convolutions inside a while loop (the scan)
    several times slower than in straight-line code, but matmuls at full speed; PatchConv holds
    the same parameter, so either choice reads the same checkpoints."""
    default = getattr(model, "conv_impl", "xla")
    return (model.scan_conv_impl or default) if model.scan_blocks else default


def repeated_blocks(make_block: Callable[..., nn.Module], x: jax.Array, count: int,
                    names: Sequence[str], stacked_name: str, scan: bool) -> jax.Array:
    """The `count` identical blocks that follow a stage's first (same shapes, stride 1), in order.

    `scan`: one block body under nn.scan (lax.scan), its parameters and batch statistics stacked on
    a leading axis under `stacked_name` (models/layout.py converts to and from `names`), so the
    program, and its compile time, do not grow with depth. Every slice gets its own init key
    (split_rngs), so each block is drawn independently from the same He distribution as when
    unrolled. Otherwise the blocks are unrolled as modules `names`.
    """
    if count == 0:
        return x
    if not scan:
        for name in names:
            x = make_block(name=name)(x)
        return x
    body = nn.scan(lambda block, carry, _: (block(carry), None),
                   # intermediates too: capture_intermediates/sow inside a block stack per block
                   variable_axes={"params": 0, "batch_stats": 0, "intermediates": 0},
                   split_rngs={"params": True}, length=count)
    return body(make_block(name=stacked_name), x, None)[0]


def stage_blocks(block: Callable[..., nn.Module], x: jax.Array, *, key: str, count: int, stride: int,
                 features: int, conv: Callable[..., nn.Module], stack_conv: Callable[..., nn.Module],
                 scan: bool, first: Mapping[str, Any] | None = None, **options: Any) -> jax.Array:
    """One stage (CIFAR `stage{i}`, ImageNet Table 1's `conv{i}_x`): its first block, which may
    change the shape (`stride`, `features`; `first`: options of that block alone), then the
    `count - 1` identical blocks after it (`repeated_blocks`, their convs made by `stack_conv`).
    `options`: the block's other keyword options (norm, shortcut, ...), the same for every block."""
    x = block(features=features, stride=stride, conv=conv, **options, **(first or {}),
              name=block_name(key, 1))(x)
    same = functools.partial(block, features=features, stride=1, conv=stack_conv, **options)
    return repeated_blocks(same, x, count - 1, [block_name(key, b) for b in range(2, count + 1)],
                           stacked_name(key), scan)
