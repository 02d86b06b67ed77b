"""On-device augmentation for the CIFAR recipe (Sec 4.2): pad, random crop, random horizontal flip;
and, not the paper's, random scaling and rotation (the explainer article's recipe, off by default).

The per-pixel mean is subtracted first (`normalize`) and the padding is zeros, i.e. the mean pixel,
as in the reference implementations (fb.resnet.torch's CIFAR pipeline normalizes, then takes its
zero-padded random crop). Scaling and rotation resample the normalized image bilinearly about its
centre and fill what falls outside it with zeros too: the mean pixel, like the crop's padding, so the
two augmentations agree on what "no image here" looks like (edge replication would smear border
strokes into the corners instead)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.ndimage import map_coordinates


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


def draw_scale_rotation(key: jax.Array, batch: int, *, scale_range: tuple[float, float],
                        max_degrees: float) -> tuple[jax.Array, jax.Array]:
    """Per-image (scale, angle in degrees): scale uniform on [s_min, s_max), angle uniform on
    [-max_degrees, max_degrees), independent of each other and across images."""
    k_scale, k_angle = jax.random.split(key)
    s_min, s_max = scale_range
    scales = jax.random.uniform(k_scale, (batch,), minval=s_min, maxval=s_max)
    angles = jax.random.uniform(k_angle, (batch,), minval=-max_degrees, maxval=max_degrees)
    return scales, angles


def scale_rotate(images: jax.Array, scales: jax.Array, angles: jax.Array) -> jax.Array:
    """Each (H, W, C) image magnified by its scale (> 1 zooms in) and turned by its angle in degrees
    (positive = counter-clockwise as displayed, row 0 at the top, as scipy.ndimage.rotate and
    np.rot90 turn) about the image centre ((H-1)/2, (W-1)/2); same size out, bilinear, zeros outside.

    Output pixel p samples the input at c + R(-angle) (p - c) / scale; scale 1 and angle 0 sample
    every pixel at its own integer position, which bilinear interpolation returns exactly."""
    _, height, width, _ = images.shape
    cy, cx = (height - 1) / 2, (width - 1) / 2
    dy, dx = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32) - cy,
                          jnp.arange(width, dtype=jnp.float32) - cx, indexing="ij")

    def one(image, scale, angle):
        theta = jnp.deg2rad(angle.astype(jnp.float32))
        cos, sin = jnp.cos(theta) / scale, jnp.sin(theta) / scale
        coords = (cy + sin * dx + cos * dy, cx + cos * dx - sin * dy)
        # "constant" is scipy's "grid-constant": neighbours outside the image count as zeros
        plane = lambda channel: map_coordinates(channel, coords, order=1, mode="constant")  # noqa: E731
        return jax.vmap(plane, in_axes=-1, out_axes=-1)(image)

    return jax.vmap(one)(images, scales, angles)


def random_scale_rotate(key: jax.Array, images: jax.Array, *, scale_range: tuple[float, float],
                        max_degrees: float) -> jax.Array:
    """`scale_rotate` by parameters drawn from `key` (`draw_scale_rotation`)."""
    scales, angles = draw_scale_rotation(key, images.shape[0], scale_range=scale_range,
                                         max_degrees=max_degrees)
    return scale_rotate(images, scales, angles)
