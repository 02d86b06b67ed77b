"""Random scaling and rotation (the explainer article's augmentation, not the paper's): the drawn
parameters follow their stated distributions, the resampling has the stated geometry, and with the
ranges off (the default) the paper's batches are bit for bit what they were."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage, stats

from resnet_jax import configs
from resnet_jax.data.augment import (draw_scale_rotation, normalize, pad_crop_flip, random_scale_rotate,
                                     scale_rotate)
from resnet_jax.train.engine import create_engine

EPS32 = np.finfo(np.float32).eps


def test_drawn_parameters_are_uniform_and_independent():
    """Scale uniform on [s_min, s_max), angle uniform on [-d, d), no correlation between them or
    between neighbouring images; a Kolmogorov-Smirnov test per parameter, at 20,000 draws."""
    n, scale_range, degrees = 20_000, (0.8, 1.25), 15.0
    scales, angles = map(np.asarray, jax.jit(draw_scale_rotation, static_argnums=1, static_argnames=(
        "scale_range", "max_degrees"))(jax.random.key(5), n, scale_range=scale_range, max_degrees=degrees))
    assert scales.min() >= 0.8 and scales.max() < 1.25 and angles.min() >= -15 and angles.max() < 15
    assert stats.kstest(scales, stats.uniform(0.8, 0.45).cdf).pvalue > 1e-3
    assert stats.kstest(angles, stats.uniform(-15, 30).cdf).pvalue > 1e-3
    # independent draws: |r| of n independent pairs has standard deviation 1/sqrt(n); 4 of them
    # bound it at p ~ 6e-5 per pair
    for a, b in ((scales, angles), (scales[1:], scales[:-1]), (angles[1:], angles[:-1])):
        assert abs(np.corrcoef(a, b)[0, 1]) < 4 / np.sqrt(n)


def test_scale_one_and_angle_zero_is_the_identity_exactly():
    images = jnp.asarray(np.random.default_rng(0).normal(size=(3, 9, 12, 3)), jnp.float32)
    out = jax.jit(scale_rotate)(images, jnp.ones(3), jnp.zeros(3))
    np.testing.assert_array_equal(out, images)
    drawn = jax.jit(random_scale_rotate, static_argnames=("scale_range", "max_degrees"))(
        jax.random.key(0), images, scale_range=(1.0, 1.0), max_degrees=0.0)
    np.testing.assert_array_equal(drawn, images)


def test_quarter_turn_is_rot90():
    """The sign convention: +90 degrees is np.rot90 (counter-clockwise as displayed)."""
    images = np.random.default_rng(1).normal(size=(2, 10, 10, 3)).astype(np.float32)
    out = np.asarray(jax.jit(scale_rotate)(jnp.asarray(images), jnp.ones(2), jnp.asarray([90.0, -90.0])))
    # float32 cos(pi/2) is ~4e-8, not 0: sample positions off by that times the radius (~5 px)
    tol = 4 * EPS32 * 5 * np.abs(images).max()
    np.testing.assert_allclose(out[0], np.rot90(images[0]), atol=tol, rtol=0)
    np.testing.assert_allclose(out[1], np.rot90(images[1], -1), atol=tol, rtol=0)


def test_drawn_rotation_and_scale_of_a_linear_ramp():
    """Bilinear interpolation reproduces a linear image exactly, so the output at every pixel whose
    source lies inside the image is the ramp at the source point c + R(-angle) (p - c) / scale,
    computed here in float64 from the parameters the same key draws."""
    batch, size = 16, 32
    key, scale_range, degrees = jax.random.key(7), (0.7, 1.4), 40.0
    y, x = np.mgrid[:size, :size].astype(np.float64)
    ramp = np.stack([y, x, 3 * y - 2 * x], -1)  # three independent linear channels
    images = jnp.asarray(np.broadcast_to(ramp, (batch, *ramp.shape)), jnp.float32)
    out = np.asarray(jax.jit(random_scale_rotate, static_argnames=("scale_range", "max_degrees"))(
        key, images, scale_range=scale_range, max_degrees=degrees))
    scales, angles = map(np.asarray, draw_scale_rotation(key, batch, scale_range=scale_range,
                                                         max_degrees=degrees))
    assert np.ptp(angles) > degrees and np.ptp(scales) > 0.3  # a spread of draws, not one
    c = (size - 1) / 2
    checked = 0
    for i in range(batch):
        t, s = np.deg2rad(angles[i]), scales[i]
        sy = c + (np.sin(t) * (x - c) + np.cos(t) * (y - c)) / s
        sx = c + (np.cos(t) * (x - c) - np.sin(t) * (y - c)) / s
        inside = (sy >= 0) & (sy <= size - 1) & (sx >= 0) & (sx <= size - 1)
        expected = np.stack([sy, sx, 3 * sy - 2 * sx], -1)
        # float32 sample positions (|coordinate| < 2 size, a few roundings) times the ramp's slope (<= 5)
        tol = 8 * EPS32 * 2 * size * 5
        np.testing.assert_allclose(out[i][inside], expected[inside], atol=tol, rtol=0)
        # outside the image: zeros (the mean pixel of a normalized image)
        far = (sy < -1) | (sy > size) | (sx < -1) | (sx > size)
        np.testing.assert_array_equal(out[i][far], 0.0)
        checked += inside.sum()
    assert checked > batch * size * size / 2


@pytest.mark.numerics
def test_matches_scipy_rotate_at_the_drawn_angles():
    """An independent implementation of the same rotation (scipy.ndimage.rotate, bilinear, zeros
    outside, about the centre) on random images, at the angles the key draws."""
    batch, key = 6, jax.random.key(11)
    images = np.random.default_rng(2).uniform(size=(batch, 12, 16, 3)).astype(np.float32)
    out = np.asarray(jax.jit(random_scale_rotate, static_argnames=("scale_range", "max_degrees"))(
        key, jnp.asarray(images), scale_range=(1.0, 1.0), max_degrees=180.0))
    _, angles = draw_scale_rotation(key, batch, scale_range=(1.0, 1.0), max_degrees=180.0)
    for i, angle in enumerate(np.asarray(angles, np.float64)):
        expected = ndimage.rotate(images[i].astype(np.float64), angle, axes=(1, 0), reshape=False,
                                  order=1, mode="grid-constant", cval=0.0)
        # float32 positions (radius ~10 px, a few roundings) times the largest step between pixels (1)
        np.testing.assert_allclose(out[i], expected, atol=8 * EPS32 * 10, rtol=0)


def test_resampling_is_a_function_of_the_key():
    images = jnp.asarray(np.random.default_rng(3).uniform(size=(4, 8, 8, 3)), jnp.float32)
    f = jax.jit(random_scale_rotate, static_argnames=("scale_range", "max_degrees"))
    a, b, c = (f(jax.random.key(k), images, scale_range=(0.9, 1.1), max_degrees=10.0) for k in (0, 0, 1))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def _paper_batch(engine, seed, step, data):
    """The paper's training batch as the engine made it before scaling and rotation existed:
    gather, normalize, pad-crop-flip from key purpose 2."""
    idx = engine.batch_indices(seed, step, data.train_images.shape[0])
    idx = jax.lax.with_sharding_constraint(idx, engine.batch_sharding)
    images = normalize(data.train_images[idx], data.pixel_mean, engine.model.dtype)
    key = jax.random.fold_in(engine.key(seed, 2), step)
    return pad_crop_flip(key, images, engine.crop_padding), data.train_labels[idx]


def test_paper_batches_are_unchanged_with_the_ranges_off(digits_engine):
    """Off (the default): the same program (equal jaxprs: no extra key split, no resampling) and
    the same bits as the paper's pipeline, at several seeds and steps."""
    engine, _, data = digits_engine
    assert configs.scale_rotation(engine.config) is None
    args = (np.int32(3), np.int32(5), data)
    paper = functools.partial(_paper_batch, engine)
    assert str(jax.make_jaxpr(engine.training_batch)(*args)) == str(jax.make_jaxpr(paper)(*args))
    ours, reference = jax.jit(engine.training_batch), jax.jit(paper)
    for seed, step in ((0, 0), (3, 5), (3, 37), (7, 1000)):
        a, b = ours(np.int32(seed), np.int32(step), data), reference(np.int32(seed), np.int32(step), data)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.numerics
def test_ranges_on_resample_before_the_papers_crop_and_flip(digits_engine):
    """On: the normalized batch scaled and rotated by key purpose 4's draws, then the paper's
    crop and flip from purpose 2 (the same crops and flips as off), the labels untouched."""
    engine, ds, data = digits_engine
    config = configs.override(engine.config.copy_and_resolve_references(), zoom_range=(0.8, 1.2),
                              rotation_degrees=30.0)
    on = create_engine(config, ds.crop_padding, ds.num_classes)
    seed, step = np.int32(3), np.int32(5)
    images, labels = jax.jit(on.training_batch)(seed, step, data)
    paper_images, paper_labels = jax.jit(functools.partial(_paper_batch, engine))(seed, step, data)
    np.testing.assert_array_equal(labels, paper_labels)
    assert not np.array_equal(images, paper_images)

    def expected(seed, step, data):
        idx = on.batch_indices(seed, step, data.train_images.shape[0])
        x = normalize(data.train_images[idx], data.pixel_mean, on.model.dtype)
        x = random_scale_rotate(jax.random.fold_in(on.key(seed, 4), step), x, scale_range=(0.8, 1.2),
                                max_degrees=30.0)
        return pad_crop_flip(jax.random.fold_in(on.key(seed, 2), step), x, on.crop_padding)

    # the same elementwise ops in another program: XLA may fuse the normalization differently (1 ulp)
    np.testing.assert_allclose(images, jax.jit(expected)(seed, step, data), rtol=0, atol=4 * EPS32)


@pytest.mark.parametrize("field, value, match", [
    ("zoom_range", (1.2, 0.9), "zoom_range must be \\(min, max\\) with 0 < min <= max"),
    ("zoom_range", (0.0, 1.0), "zoom_range must be"),
    ("zoom_range", (1.1,), "zoom_range must be"),
    ("rotation_degrees", -5.0, "rotation_degrees must be in \\[0, 180\\]"),
])
def test_bad_ranges_are_one_line_config_errors(field, value, match):
    config = configs.override(configs.cifar_config("cifar_resnet20"), **{field: value})
    with pytest.raises(configs.ConfigError, match=match):
        configs.check_fields(config)


def test_the_ranges_are_the_device_resident_datas_only():
    config = configs.override(configs.imagenet_config(), rotation_degrees=10.0)
    with pytest.raises(configs.ConfigError, match="augment the device-resident datasets"):
        configs.check_fields(config)
    configs.check_fields(configs.override(configs.cifar_config("cifar_resnet20"), zoom_range=(0.9, 1.1),
                                          rotation_degrees=15.0))
