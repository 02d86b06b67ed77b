"""CIFAR-100 from the home page's archives: all four forms give tfds cifar100's arrays in tfds's order
(fine labels; `cifar100_coarse` the coarse ones); bad files fail with one line naming the file."""

from __future__ import annotations

import os
import pickle
import shutil

import numpy as np
import pytest

import archive_fakes as fakes
from resnet_jax.data import DatasetError, cifar_archives, load_dataset, registry

FORMS = ("bin_folder", "py_folder", "bin_archive", "py_archive")
FIELDS = ("train_images", "train_labels", "eval_images", "eval_labels")


@pytest.fixture(scope="module")
def cifar100(tmp_path_factory):
    """({split: (images, coarse, fine)}, {form: path}): 12 training and 5 test images."""
    splits = fakes.cifar100_splits(num_train=12, num_test=5)
    return splits, fakes.write_cifar100(str(tmp_path_factory.mktemp("cifar100")), splits)


def test_every_form_gives_the_tfds_builders_records(cifar100, tmp_path, monkeypatch):
    """The real cifar100 builder run on the binary files: its records are the archive readers'
    arrays, index for index; both label kinds are the files' in tfds's md5 order."""
    pytest.importorskip("tensorflow_datasets")
    splits, paths = cifar100
    data_dir = str(tmp_path / "tfds")
    fakes.tfds_build_cifar(monkeypatch, "cifar100", os.path.dirname(paths["bin_folder"]), data_dir)
    from_tfds = load_dataset("cifar100", data_dir=data_dir)
    coarse_tfds = load_dataset("cifar100_coarse", data_dir=data_dir)
    images, coarse, fine = splits["train"]
    order = cifar_archives.tfds_order("train", 12)
    assert not np.array_equal(order, np.arange(12))  # tfds does not keep file order
    np.testing.assert_array_equal(from_tfds.train_images, images[order])
    np.testing.assert_array_equal(from_tfds.train_labels, fine[order])
    np.testing.assert_array_equal(coarse_tfds.train_labels, coarse[order])
    assert (from_tfds.num_classes, coarse_tfds.num_classes) == (100, 20)
    assert from_tfds.source == "tfds cifar100" and dict(from_tfds.counts) == {"train": 12, "test": 5}
    for form in FORMS:
        for name, reference in (("cifar100", from_tfds), ("cifar100_coarse", coarse_tfds)):
            ds = load_dataset(name, data_dir=paths[form])
            for field in FIELDS:
                np.testing.assert_array_equal(getattr(ds, field), getattr(reference, field),
                                              err_msg=f"{name} {form} {field}")
            assert ds.train_labels.dtype == np.int32
            assert (ds.crop_padding, ds.image_shape) == (4, (32, 32, 3))


def test_found_by_content_from_a_parent_and_not_taken_for_cifar10(cifar100, tmp_path):
    _, paths = cifar100
    layout = registry.CIFAR100_LAYOUT
    parent = os.path.dirname(paths["bin_folder"])
    assert cifar_archives.find(layout, parent)[:2] == ("bin", "folder")
    assert cifar_archives.find(layout, paths["py_folder"])[:2] == ("py", "folder")
    renamed = str(tmp_path / "download")
    shutil.copy(paths["py_archive"], renamed)
    assert cifar_archives.find(layout, renamed) == ("py", "archive", renamed)
    assert load_dataset("cifar100", data_dir=parent).source == "cifar-100-binary/ (extracted folder)"
    assert load_dataset("cifar100", data_dir=renamed).source == "cifar-100-python.tar.gz"
    with pytest.raises(DatasetError, match="cifar-100-python.tar.gz: not a CIFAR-10 archive"):
        load_dataset("cifar10", data_dir=paths["py_archive"])


def test_val_split_holds_out_the_last_images_in_tfds_order(cifar100, monkeypatch):
    _, paths = cifar100
    fakes.scale_num_val(monkeypatch, "cifar100", 4)
    full = load_dataset("cifar100", data_dir=paths["bin_archive"])
    val = load_dataset("cifar100", "val", data_dir=paths["py_archive"])
    np.testing.assert_array_equal(val.eval_images, full.train_images[8:])
    np.testing.assert_array_equal(val.train_labels, full.train_labels[:8])


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch SHOULD_NOT_EXIST",))


def _broken_cases(paths, tmp_path) -> dict[str, tuple[str, str]]:
    """name -> (data_dir, expected part of the one-line message)."""
    def copy(form, where):
        dst = str(tmp_path / where / os.path.basename(paths[form]))
        (shutil.copytree if os.path.isdir(paths[form]) else shutil.copy)(paths[form], dst)
        return dst
    os.makedirs(tmp_path / "crafted")
    os.makedirs(tmp_path / "cut")
    cases = {}
    crafted = copy("py_folder", "crafted")
    with open(os.path.join(crafted, "train"), "wb") as f:
        f.write(pickle.dumps({b"data": _Boom()}, protocol=2))
    cases["crafted pickle"] = (crafted, "cifar-100-python/train: refusing to load")
    size = copy("bin_folder", "size")
    with open(os.path.join(size, "test.bin"), "ab") as f:
        f.write(b"\0" * 3073)  # a CIFAR-10 record's size: CIFAR-100's hold two label bytes
    cases["wrong record size"] = (size, "test.bin: 18443 bytes is not a whole number of 3074-byte")
    label = copy("py_folder", "label")
    with open(os.path.join(label, "test"), "rb") as f:
        batch = pickle.load(f)  # our own file, written by the fixture
    batch[b"fine_labels"][2] = 100
    with open(os.path.join(label, "test"), "wb") as f:
        pickle.dump(batch, f, protocol=2)
    cases["fine label out of range"] = (label, "test: fine 100 is not a CIFAR-100 class (0..99)")
    no_fine = copy("py_folder", "keys")
    with open(os.path.join(no_fine, "train"), "wb") as f:
        pickle.dump({b"data": batch[b"data"], b"labels": batch[b"fine_labels"]}, f, protocol=2)
    cases["a CIFAR-10 batch"] = (no_fine, "train: not a CIFAR-100 python batch")
    cut = copy("py_folder", "cut")
    with open(os.path.join(cut, "train"), "r+b") as f:
        f.truncate(700)
    cases["truncated pickle"] = (cut, "cifar-100-python/train: not a CIFAR-100 python batch")
    with open(paths["bin_archive"], "rb") as f:
        data = f.read()
    truncated = tmp_path / "cifar-100-binary.tar.gz"
    truncated.write_bytes(data[: len(data) // 2])
    cases["truncated archive"] = (str(truncated), "cifar-100-binary.tar.gz: truncated or corrupt archive")
    return cases


def test_broken_files_fail_with_one_line_naming_the_file(cifar100, tmp_path, monkeypatch):
    _, paths = cifar100
    monkeypatch.chdir(tmp_path)
    fakes.assert_one_line_errors("cifar100", _broken_cases(paths, tmp_path))
    assert not (tmp_path / "SHOULD_NOT_EXIST").exists()


def test_broken_files_exit_2_through_resnet_jax_train(cifar100, tmp_path):
    _, paths = cifar100
    fakes.assert_train_exits_2(tmp_path, {
        name: (["--config=experiments/table6.py:20", "--config.dataset=cifar100",
                f"--config.data_dir={data_dir}"], expected)
        for name, (data_dir, expected) in _broken_cases(paths, tmp_path).items()})
