"""Datasets (digits, CIFAR-10 via tfds without TensorFlow) and on-device augmentation."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import archive_fakes as fakes
from resnet_jax.data import DatasetError, load_dataset
from resnet_jax.data.augment import normalize, pad_crop_flip


def test_digits_is_a_fixed_real_split():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert a.train_images.shape == (1437, 8, 8, 3) and a.eval_images.shape == (360, 8, 8, 3)
    assert a.train_images.dtype == np.uint8 and a.train_images.max() == 255
    np.testing.assert_array_equal(a.eval_labels, b.eval_labels)
    assert set(np.unique(a.train_labels)) == set(range(10))
    val = load_dataset("digits", "val")
    assert len(val.train_images) + len(val.eval_images) == 1437


def test_pixel_mean_is_per_pixel_over_training_split():
    ds = load_dataset("digits")
    mean = ds.pixel_mean()
    assert mean.shape == (8, 8, 3)
    np.testing.assert_allclose(mean[3, 4, 1], ds.train_images[:, 3, 4, 1].mean() / 255, rtol=1e-6)
    assert mean[0, 0, 0] < mean[4, 4, 0]  # digit strokes are central: the mean is not a constant
    x = normalize(jnp.asarray(ds.train_images), jnp.asarray(mean))
    np.testing.assert_allclose(np.asarray(x).mean(0), 0, atol=1e-5)


def test_crop_and_flip_are_crops_of_the_padded_image():
    rng = np.random.default_rng(0)
    images = rng.integers(1, 256, (64, 32, 32, 3), dtype=np.uint8)  # no zeros: padding is visible
    out = np.asarray(pad_crop_flip(jax.random.key(3), jnp.asarray(images), 4))
    assert out.shape == images.shape and out.dtype == np.uint8
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
    offsets, flips = set(), []
    for i in range(len(images)):
        found = [(y, x, f) for y in range(9) for x in range(9) for f in (0, 1)
                 if np.array_equal(out[i], (padded[i, y:y + 32, x:x + 32][:, ::-1] if f else
                                            padded[i, y:y + 32, x:x + 32]))]
        assert found, f"image {i} is not a (flipped) crop of its padded original"
        offsets.add(found[0][:2])
        flips.append(found[0][2])
    assert len(offsets) > 20 and 0.25 < np.mean(flips) < 0.75


def test_augmentation_is_a_function_of_the_key():
    images = jnp.asarray(np.random.default_rng(1).integers(0, 256, (8, 8, 8, 3), dtype=np.uint8))
    a = pad_crop_flip(jax.random.key(0), images, 1)
    b = pad_crop_flip(jax.random.key(0), images, 1)
    c = pad_crop_flip(jax.random.key(1), images, 1)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_cifar10_through_tfds_mock_data(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=40):
        ds = load_dataset("cifar10")
        assert ds.train_images.shape == (40, 32, 32, 3) and ds.train_images.dtype == np.uint8
        assert ds.eval_images.shape == (40, 32, 32, 3) and ds.crop_padding == 4
        assert ds.train_labels.dtype == np.int32 and ds.train_labels.max() < 10
        fakes.scale_num_val(monkeypatch, "cifar10", 8)
        val = load_dataset("cifar10", "val")
        assert len(val.train_images) == 32 and len(val.eval_images) == 8
        np.testing.assert_array_equal(val.eval_images, ds.train_images[32:])


def test_missing_cifar10_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetError) as err:
        load_dataset("cifar10", data_dir=str(tmp_path))
    msg = str(err.value)
    assert "tfds build cifar10" in msg and "digits" in msg and "\n" not in msg


def test_unknown_dataset_and_split():
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset("mnist")
    with pytest.raises(DatasetError, match="eval_split"):
        load_dataset("digits", "train")


def test_reading_cifar_does_not_import_tensorflow():
    code = ("import sys, tensorflow_datasets as tfds\n"
            "from resnet_jax.data import load_dataset\n"
            "with tfds.testing.mock_data(num_examples=4):\n"
            "    load_dataset('cifar10')\n"
            "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
