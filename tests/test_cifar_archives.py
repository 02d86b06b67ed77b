"""CIFAR-10 from the home page's archives: all four forms give tfds's arrays in tfds's order; bad
files fail with one line naming the file."""

from __future__ import annotations

import dataclasses
import gzip
import logging
import os
import pickle
import shutil

import numpy as np
import pytest

import archive_fakes as fakes
from resnet_jax.data import DatasetError, cifar_archives, load_dataset, read_test_split, registry

FORMS = ("bin_folder", "py_folder", "bin_archive", "py_archive")


def find(path):
    return cifar_archives.find(registry.CIFAR10_LAYOUT, path)


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    """(batches, {form: path}) for 3 images per batch file."""
    root = str(tmp_path_factory.mktemp("cifar"))
    batches = fakes.cifar_batches(per_file=3)
    return batches, fakes.write_cifar(root, batches)


def test_tfds_order_is_what_the_tfds_builder_writes(cifar, tmp_path, monkeypatch):
    """The real cifar10 builder run on the binary batches: its records are the archive readers'
    arrays, index for index (so the 45k/5k split and every batch agree across routes)."""
    pytest.importorskip("tensorflow_datasets")
    batches, paths = cifar
    data_dir = str(tmp_path / "tfds")
    fakes.tfds_build_cifar(monkeypatch, "cifar10", os.path.dirname(paths["bin_folder"]), data_dir)
    from_tfds = load_dataset("cifar10", data_dir=data_dir)
    train_x = np.concatenate([batches[s][0] for s in fakes.CIFAR_STEMS[:5]])
    assert len(from_tfds.train_images) == 15 and len(from_tfds.eval_images) == 3
    # tfds does not keep file order: it sorts by md5(split + index).
    order = cifar_archives.tfds_order("train", 15)
    assert not np.array_equal(order, np.arange(15))
    np.testing.assert_array_equal(from_tfds.train_images, train_x[order])
    for form in FORMS:
        ds = load_dataset("cifar10", data_dir=paths[form])
        for field in ("train_images", "train_labels", "eval_images", "eval_labels"):
            np.testing.assert_array_equal(getattr(ds, field), getattr(from_tfds, field),
                                          err_msg=f"{form} {field}")
        assert ds.train_labels.dtype == np.int32 and ds.crop_padding == 4


def test_each_form_is_found_by_content_from_its_parent_too(cifar, tmp_path):
    _, paths = cifar
    parent = os.path.dirname(paths["bin_folder"])
    assert find(parent)[:2] == ("bin", "folder")  # the extracted folder comes first
    assert find(paths["py_folder"])[:2] == ("py", "folder")
    renamed = str(tmp_path / "downloaded.bin")  # a file is read by its members, not its name
    shutil.copy(paths["py_archive"], renamed)
    assert find(renamed) == ("py", "archive", renamed)
    only_archive = tmp_path / "only"
    only_archive.mkdir()
    shutil.copy(paths["bin_archive"], only_archive)
    assert find(str(only_archive))[:2] == ("bin", "archive")
    (tmp_path / "tfds" / "cifar10").mkdir(parents=True)  # a tfds data_dir stays tfds's
    shutil.copy(paths["bin_archive"], tmp_path / "tfds")
    assert find(str(tmp_path / "tfds")) is None
    assert find(str(tmp_path / "nothing")) is None


def test_val_split_holds_out_the_last_5k_in_tfds_order(cifar, monkeypatch):
    _, paths = cifar
    fakes.scale_num_val(monkeypatch, "cifar10", 5)
    full = load_dataset("cifar10", data_dir=paths["bin_archive"])
    val = load_dataset("cifar10", "val", data_dir=paths["py_archive"])
    np.testing.assert_array_equal(val.eval_images, full.train_images[10:])
    np.testing.assert_array_equal(val.train_labels, full.train_labels[:10])


def _copy_form(paths, form, tmp_path) -> str:
    dst = str(tmp_path / os.path.basename(paths[form]))
    (shutil.copytree if os.path.isdir(paths[form]) else shutil.copy)(paths[form], dst)
    return dst


def _broken_cases(paths, tmp_path) -> dict[str, tuple[str, str]]:
    """name -> (data_dir, expected part of the one-line message)."""
    cases = {}
    crafted = _copy_form(paths, "py_folder", tmp_path / "crafted")
    with open(os.path.join(crafted, "data_batch_2"), "wb") as f:
        f.write(pickle.dumps({b"data": _Boom()}, protocol=2))
    cases["crafted pickle"] = (crafted, "data_batch_2: refusing to load")
    bad_size = _copy_form(paths, "bin_folder", tmp_path / "size")
    with open(os.path.join(bad_size, "test_batch.bin"), "ab") as f:
        f.write(b"\0" * 10)
    cases["wrong record size"] = (bad_size, "test_batch.bin: 9229 bytes is not a whole number of 3073")
    missing = _copy_form(paths, "bin_folder", tmp_path / "missing")
    os.remove(os.path.join(missing, "data_batch_4.bin"))
    cases["missing batch file"] = (missing, "data_batch_4.bin: missing")
    cut_pickle = _copy_form(paths, "py_folder", tmp_path / "cut")
    with open(os.path.join(cut_pickle, "data_batch_1"), "r+b") as f:
        f.truncate(500)
    cases["truncated pickle"] = (cut_pickle, "data_batch_1: not a CIFAR-10 python batch")
    truncated = str(tmp_path / "cifar-10-python.tar.gz")
    with open(paths["py_archive"], "rb") as f:
        data = f.read()
    with open(truncated, "wb") as f:
        f.write(data[: len(data) * 2 // 3])
    cases["truncated archive"] = (truncated, "cifar-10-python.tar.gz: truncated or corrupt archive")
    not_cifar = tmp_path / "notes.txt"
    not_cifar.write_text("not an archive")
    cases["not an archive"] = (str(not_cifar), "notes.txt: not a CIFAR-10 archive")
    gz_missing = str(tmp_path / "short" / "cifar-10-binary.tar.gz")
    os.makedirs(os.path.dirname(gz_missing))
    shutil.copytree(paths["bin_folder"], tmp_path / "short" / "cifar-10-batches-bin")
    os.remove(tmp_path / "short" / "cifar-10-batches-bin" / "test_batch.bin")
    fakes._tar_gz(gz_missing, str(tmp_path / "short" / "cifar-10-batches-bin"))
    shutil.rmtree(tmp_path / "short" / "cifar-10-batches-bin")
    cases["member missing from the archive"] = (gz_missing, "cifar-10-batches-bin/test_batch.bin is missing")
    return cases


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch SHOULD_NOT_EXIST",))


def test_broken_files_fail_with_one_line_naming_the_file(cifar, tmp_path, monkeypatch):
    _, paths = cifar
    monkeypatch.chdir(tmp_path)
    fakes.assert_one_line_errors("cifar10", _broken_cases(paths, tmp_path))
    assert not (tmp_path / "SHOULD_NOT_EXIST").exists()
    with gzip.open(paths["py_archive"]) as f:  # the case above cut a real gzip stream
        assert f.read(2)


def test_broken_files_exit_2_through_resnet_jax_train(cifar, tmp_path):
    """CIFAR-10's broken files, and an ImageNet folder tree short of classes."""
    _, paths = cifar
    cases = {name: (["--config=experiments/table6.py:20", f"--config.data_dir={data_dir}"], expected)
             for name, (data_dir, expected) in _broken_cases(paths, tmp_path).items()}
    train, val = fakes.imagenet_images(num_val=4, per_class=1)
    fakes.write_imagenet_folders(str(tmp_path / "imagenet"), train, val)
    cases["imagenet short of classes"] = (
        ["--config=experiments/table2.py:resnet18", f"--config.data_dir={tmp_path / 'imagenet'}"],
        "holds 4 classes, ImageNet has 1000 (missing n01440764")
    fakes.assert_train_exits_2(tmp_path, cases)


def test_a_subset_loads_with_one_warning_naming_the_form_and_counts(cifar, monkeypatch, caplog):
    """15 training and 3 test images are never mistaken for CIFAR-10's 50,000 and 10,000."""
    _, paths = cifar
    with caplog.at_level(logging.WARNING):
        ds = load_dataset("cifar10", data_dir=paths["bin_archive"])
    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert message.startswith("cifar10 from cifar-10-binary.tar.gz: 15 train images, 3 test images; "
                              "the official set has 50,000 train, 10,000 test"), message
    assert ds.summary() == {"dataset": "cifar10", "source": "cifar-10-binary.tar.gz",
                            "counts": {"train": 15, "test": 3}, "eval_split": "test",
                            "official_counts": {"train": 50_000, "test": 10_000},
                            "train_images": 15, "eval_images": 3}
    from_folder = load_dataset("cifar10", data_dir=paths["py_folder"])
    assert from_folder.source == "cifar-10-batches-py/ (extracted folder)"
    caplog.clear()  # the official counts: no warning
    spec = registry.SPECS["cifar10"]
    monkeypatch.setitem(registry.SPECS, "cifar10",
                        dataclasses.replace(spec, official_counts={"train": 15, "test": 3}))
    with caplog.at_level(logging.WARNING):
        load_dataset("cifar10", data_dir=paths["bin_archive"])
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_a_folder_of_the_test_batch_alone_is_an_evaluation_source(cifar, tmp_path):
    _, paths = cifar
    for form, name in (("bin_folder", "test_batch.bin"), ("py_folder", "test_batch")):
        only = tmp_path / form / os.path.basename(paths[form])
        only.mkdir(parents=True)
        shutil.copy(os.path.join(paths[form], name), only)
        ds = read_test_split(str(only))
        full = load_dataset("cifar10", data_dir=paths[form])
        np.testing.assert_array_equal(ds.eval_images, full.eval_images)
        np.testing.assert_array_equal(ds.eval_labels, full.eval_labels)
        assert len(ds.train_images) == 0 and dict(ds.counts) == {"test": 3}
        with pytest.raises(DatasetError, match="no training images to take the input mean of"):
            ds.pixel_mean()
        with pytest.raises(DatasetError, match=r"data_batch_1(\.bin)?: missing"):
            load_dataset("cifar10", data_dir=str(only))  # training needs the training batches


def test_the_real_partial_test_batch_reads_as_an_evaluation_source(caplog):
    """The first 1,017 real CIFAR-10 test images, in the binary layout, training batches absent
    (their README gives the labels per class and the first ten in file order)."""
    real = fakes.real_files()
    if real is None:
        pytest.skip("no ../shared/real folder of real files here")
    with caplog.at_level(logging.WARNING):
        ds = read_test_split(os.path.join(real, "cifar-10-batches-bin"))
    assert ds.eval_images.shape == (1017, 32, 32, 3) and dict(ds.counts) == {"test": 1017}
    assert ds.source == "cifar-10-batches-bin/ (extracted folder)"
    np.testing.assert_array_equal(np.bincount(ds.eval_labels, minlength=10),
                                  [105, 93, 100, 104, 92, 87, 114, 102, 110, 110])
    in_file_order = np.empty_like(ds.eval_labels)
    in_file_order[cifar_archives.tfds_order("test", 1017)] = ds.eval_labels
    np.testing.assert_array_equal(in_file_order[:10], [3, 8, 8, 0, 6, 6, 1, 6, 3, 1])
    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "1,017 test images; the official set has 10,000 test" in message


def test_no_cifar_anywhere_is_one_line_saying_where_it_comes_from(tmp_path):
    """The common first mistake: table 6 asked with no CIFAR given and none in ~/tensorflow_datasets.
    One line naming where CIFAR comes from, exit 2, said before tfds is imported (tfds would first
    warn about the missing folder), and no workdir made."""
    import subprocess
    import sys

    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "TFDS_DATA_DIR"}
    env.update(HOME=str(home), JAX_PLATFORMS="cpu")
    workdir = tmp_path / "W"
    cli = os.path.join(os.path.dirname(sys.executable), "resnet-jax")  # the installed command
    done = subprocess.run([cli, "train", "--experiment", "table6:20", "--workdir", str(workdir)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "no cifar10/ folder" in lines[0] and "https://www.cs.toronto.edu/~kriz/cifar.html" in lines[0]
    assert not workdir.exists() and not list(home.iterdir())
