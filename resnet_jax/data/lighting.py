"""On-device ImageNet normalization: per-pixel mean subtraction and AlexNet PCA lighting noise.

The host sends uint8 crops (4x less to transfer than float32); these batch-wide ops run in the
jitted step, their randomness a function of (seed, step) like the CIFAR augmentation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from resnet_jax.data import augment

# Principal components of ImageNet RGB pixel values in [0, 1] (Krizhevsky et al. 2012; the values
# used by fb.resnet.torch): eigenvalues and eigenvectors (columns) of the 3x3 covariance.
PCA_EIGVAL = np.array([0.2175, 0.0188, 0.0045], np.float32)
PCA_EIGVEC = np.array([[-0.5675, 0.7192, 0.4009],
                        [-0.5808, -0.0045, -0.8140],
                        [-0.5836, -0.6948, 0.4203]], np.float32)


def lighting_offsets(key: jax.Array, batch: int, alpha_std: float) -> jax.Array:
    """Per-image RGB offsets sum_i alpha_i * lambda_i * p_i, alpha_i ~ N(0, alpha_std^2): (B, 3)."""
    alpha = alpha_std * jax.random.normal(key, (batch, 3), jnp.float32)
    return (alpha * PCA_EIGVAL) @ PCA_EIGVEC.T


def mean_for(pixel_mean: jax.Array, height: int, width: int) -> jax.Array:
    """The cached mean image, resized when the input is not its size (whole-image test scales)."""
    if pixel_mean.shape[:2] == (height, width):
        return pixel_mean
    return jax.image.resize(pixel_mean, (height, width, pixel_mean.shape[-1]), "bilinear")


def normalize(images: jax.Array, pixel_mean: jax.Array, dtype=jnp.float32,
              key: jax.Array | None = None, alpha_std: float = 0.0) -> jax.Array:
    """uint8 (..., H, W, 3) -> augment.normalize (the cached mean resized to the input), plus PCA
    lighting noise if keyed."""
    x = augment.normalize(images, mean_for(pixel_mean, *images.shape[-3:-1]))  # float32
    if key is not None and alpha_std > 0:
        offsets = lighting_offsets(key, images.shape[0], alpha_std)
        x = x + offsets.reshape(offsets.shape[0], *([1] * (images.ndim - 2)), 3)
    return x.astype(dtype)
