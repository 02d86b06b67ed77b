"""On-device augmentation for the CIFAR recipe (Sec 4.2): pad, random crop, random horizontal flip.

The per-pixel mean is subtracted first (`normalize`) and the padding is zeros, i.e. the mean pixel,
as in the reference implementations (fb.resnet.torch's CIFAR pipeline normalizes, then takes its
zero-padded random crop)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def pad_crop_flip(key: jax.Array, images: jax.Array, pad: int) -> jax.Array:
    """Zero-pad `pad` pixels per side, take a random HxW crop and flip it with probability 1/2.

    Meant for normalized images (padding = the mean pixel); the crop offsets and flips depend only on
    `key` and the shape, not on the dtype or the values."""
    batch, height, width, channels = images.shape
    k_y, k_x, k_flip = jax.random.split(key, 3)
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    ys = jax.random.randint(k_y, (batch,), 0, 2 * pad + 1)
    xs = jax.random.randint(k_x, (batch,), 0, 2 * pad + 1)
    crop = jax.vmap(lambda img, y, x: jax.lax.dynamic_slice(img, (y, x, 0), (height, width, channels)))
    crops = crop(padded, ys, xs)
    flip = jax.random.bernoulli(k_flip, 0.5, (batch,))
    return jnp.where(flip[:, None, None, None], crops[:, :, ::-1, :], crops)


def normalize(images: jax.Array, pixel_mean: jax.Array, dtype=jnp.float32) -> jax.Array:
    """uint8 -> [0, 1] minus the per-pixel training mean (the paper's only input normalization)."""
    return (images.astype(jnp.float32) / 255.0 - pixel_mean).astype(dtype)
