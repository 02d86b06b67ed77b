"""The dataset specs: the names callers list are derived from them, and what each loader returns
agrees with its spec."""

import numpy as np
import pytest

from resnet_jax.data import (DATASETS, HOST_FED, READS_DATA_DIR, SPECS, DatasetError, load_dataset, registry,
                             spec)


def test_the_name_lists_are_views_of_the_specs():
    assert set(DATASETS) | set(HOST_FED) == set(SPECS) and not set(DATASETS) & set(HOST_FED)
    assert HOST_FED == ("imagenet",)
    assert {"cifar10", "imagenet"} <= set(READS_DATA_DIR) and "digits" not in READS_DATA_DIR
    assert all(spec(name).reads_data_dir == (name in READS_DATA_DIR) for name in SPECS)
    lines = registry.help_lines()
    assert len(lines) == len(SPECS) and all("\n" not in line for line in lines)
    with pytest.raises(DatasetError, match="unknown dataset 'mnist': expected one of cifar10, "):
        spec("mnist")


def test_cifar_specs_hold_the_papers_facts():
    """Sec 4.2: 32x32 images, 4-pixel padding, 50k train / 10k test, a 45k/5k hold-out."""
    s = spec("cifar10")
    assert (s.num_classes, s.image_shape, s.crop_padding, s.num_val) == (10, (32, 32, 3), 4, 5000)
    assert dict(s.official_counts) == {"train": 50_000, "test": 10_000}
    assert s.archive.record_bytes == 3073 and s.tfds_name == "cifar10"


@pytest.mark.parametrize("name", ["digits", "digits32"])
def test_a_loaded_dataset_agrees_with_its_spec(name):
    s = spec(name)
    ds = load_dataset(name)
    assert (ds.name, ds.num_classes, ds.crop_padding, ds.image_shape) == (
        name, s.num_classes, s.crop_padding, s.image_shape)
    assert dict(ds.counts) == dict(s.official_counts) == {"train": 1437, "test": 360}
    assert ds.source == "scikit-learn digits" and ds.summary()["eval_images"] == 360
    val = load_dataset(name, "val")
    assert len(val.eval_images) == s.num_val and len(val.train_images) == 1437 - s.num_val
    assert set(np.unique(ds.eval_labels)) == set(range(s.num_classes))


def test_splits_and_feeding_are_checked_against_the_spec():
    with pytest.raises(DatasetError, match="unknown eval_split 'validation': expected 'test' or 'val'"):
        load_dataset("digits", "validation")
    with pytest.raises(DatasetError, match="read lazily on the hosts"):
        load_dataset("imagenet", "validation")
