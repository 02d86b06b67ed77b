"""ImageNet from the folder tree and from the official tars: the records tfds would prepare from the
same files (bytes, order, classes), a cached index, skipped corrupt files, missing classes."""

from __future__ import annotations

import logging
import os
import pickle
import shutil

import numpy as np
import pytest

import archive_fakes as fakes
from resnet_jax.data import DatasetError, imagenet, imagenet_files


@pytest.fixture(scope="module")
def imagenet_dirs(tmp_path_factory):
    """{'folders', 'tars', 'tfds'} -> data_dir of the same 8 validation and 16 training images."""
    tfds = pytest.importorskip("tensorflow_datasets")
    root = tmp_path_factory.mktemp("imagenet")
    train, val = fakes.imagenet_images(num_val=8, per_class=2)
    fakes.write_imagenet_folders(str(root / "folders"), train, val)
    fakes.write_imagenet_tars(str(root / "tars"), train, val)
    with pytest.MonkeyPatch.context() as monkeypatch:
        fakes.tfds_build_imagenet2012(monkeypatch, str(root / "tars"), str(root / "tfds"))
    del tfds
    return {"folders": str(root / "folders"), "tars": str(root / "tars"), "tfds": str(root / "tfds"),
            "classes": sorted(train)}


@pytest.fixture
def eight_classes(monkeypatch, imagenet_dirs):
    monkeypatch.setattr(imagenet, "NUM_CLASSES", len(imagenet_dirs["classes"]))


def _copy(imagenet_dirs, form, tmp_path) -> str:
    dst = str(tmp_path / form)
    shutil.copytree(imagenet_dirs[form], dst, ignore=shutil.ignore_patterns("*.resnet_jax_index.npz"))
    return dst


@pytest.mark.parametrize("form", ["folders", "tars"])
def test_records_are_tfds_records_index_for_index(imagenet_dirs, eight_classes, form):
    """Same JPEG bytes in the same order as `tfds build imagenet2012` writes them; labels name the
    same wnids (tfds numbers them among all 1000, these among the 8 present)."""
    import tensorflow_datasets as tfds

    names = tfds.features.ClassLabel(names_file=imagenet_files._tfds_file("labels.txt")).names
    for split in ("train", "validation"):
        ours = imagenet.open_split(split, imagenet_dirs[form])
        theirs = imagenet.open_split(split, imagenet_dirs["tfds"])
        assert isinstance(ours, imagenet_files.FileRecords) and len(ours) == len(theirs) > 0
        for i in range(len(ours)):
            assert ours[i]["image"] == theirs[i]["image"], (split, i)
            assert ours.classes[ours[i]["label"]] == names[theirs[i]["label"]], (split, i)
    # The same batches from either source, and a resumed run continues exactly.
    ours = imagenet.train_batches(imagenet.open_split("train", imagenet_dirs[form]), 4, seed=1,
                                  crop_size=16, scale_range=(16, 24))
    theirs = imagenet.train_batches(imagenet.open_split("train", imagenet_dirs["tfds"]), 4, seed=1,
                                    crop_size=16, scale_range=(16, 24))
    first, second = next(ours), next(ours)
    np.testing.assert_array_equal(first["image"], next(theirs)["image"])
    resumed = imagenet.train_batches(imagenet.open_split("train", imagenet_dirs[form]), 4, seed=1,
                                     crop_size=16, scale_range=(16, 24), start_step=1)
    np.testing.assert_array_equal(next(resumed)["image"], second["image"])


def test_label_order_is_tfds_classlabel_order():
    """Train labels are positions among the sorted wnids; for the full 1000 that is tfds's
    ClassLabel (checkpoints from either route are interchangeable)."""
    import tensorflow_datasets as tfds

    wnids = imagenet_files.tfds_wnids()
    label = tfds.features.ClassLabel(names_file=imagenet_files._tfds_file("labels.txt"))
    assert len(wnids) == len(set(wnids)) == 1000 and wnids == sorted(wnids)
    assert [label.str2int(w) for w in wnids] == list(range(1000))
    assert len(imagenet_files.validation_wnids()) == 50_000
    assert set(imagenet_files.validation_wnids()) == set(wnids)


def test_sources_pickle_for_grain_workers_and_shard(imagenet_dirs, eight_classes):
    source = imagenet.open_split("train", imagenet_dirs["tars"])
    source[0]  # opens the tar in this process
    copy = pickle.loads(pickle.dumps(source))
    assert [copy[i]["image"] for i in range(3)] == [source[i]["image"] for i in range(3)]
    assert len(imagenet.host_shard(source)) == len(source)
    with pytest.raises(IndexError):
        source[len(source)]


def test_index_is_cached_beside_the_data_or_in_the_cache_dir(imagenet_dirs, eight_classes, tmp_path,
                                                             monkeypatch):
    data = _copy(imagenet_dirs, "tars", tmp_path)
    first = imagenet.open_split("train", data)
    assert os.path.exists(os.path.join(data, "ILSVRC2012_img_train.tar.resnet_jax_index.npz"))

    def no_rescan(*args):
        raise AssertionError("indexed again")
    monkeypatch.setattr(imagenet_files, "_index_train_tar", no_rescan)
    again = imagenet.open_split("train", data)
    assert [again[i]["image"] for i in range(len(again))] == [first[i]["image"] for i in range(len(first))]
    monkeypatch.undo()
    monkeypatch.setattr(imagenet, "NUM_CLASSES", len(imagenet_dirs["classes"]))
    # A data folder we cannot write to (a folder where the index file would go stands in for
    # permissions, which root ignores): the index goes to the cache dir.
    folders = _copy(imagenet_dirs, "folders", tmp_path)
    os.mkdir(os.path.join(folders, "train.resnet_jax_index.npz"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    imagenet.open_split("train", folders)
    assert len(os.listdir(tmp_path / "cache" / "resnet_jax" / "imagenet_index")) == 1
    # A changed class folder is indexed again.
    wnid = imagenet_dirs["classes"][0]
    class_dir = os.path.join(folders, "train", wnid)
    os.remove(os.path.join(class_dir, sorted(os.listdir(class_dir))[0]))
    assert len(imagenet.open_split("train", folders)) == len(first) - 1


def _corrupt(good: bytes) -> dict[str, bytes]:
    return {"empty.JPEG": b"", "page.JPEG": b"<html>404 Not Found</html>",
            "cut.JPEG": good[: len(good) // 2]}


def test_corrupt_images_are_skipped_with_a_warning_naming_them(imagenet_dirs, eight_classes, tmp_path,
                                                               caplog):
    train, val = fakes.imagenet_images(num_val=8, per_class=2)
    wnid = imagenet_dirs["classes"][0]
    bad = {f"{wnid}_{k}": data for k, data in _corrupt(next(iter(train[wnid].values()))).items()}
    train[wnid].update(bad)
    fakes.write_imagenet_folders(str(tmp_path / "folders"), train, val)
    fakes.write_imagenet_tars(str(tmp_path / "tars"), train, val)
    for form in ("folders", "tars"):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            source = imagenet.open_split("train", str(tmp_path / form))
        assert len(source) == 16, form
        (message,) = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
        assert "skipping 3 file(s)" in message and all(name in message for name in bad), message
        assert all(source[i]["image"][:3] == b"\xff\xd8\xff" for i in range(len(source)))


def test_missing_classes_fail_with_one_line_naming_one(imagenet_dirs, eight_classes, tmp_path,
                                                       monkeypatch):
    folders = _copy(imagenet_dirs, "folders", tmp_path)
    gone = imagenet_dirs["classes"][3]
    shutil.rmtree(os.path.join(folders, "val", gone))
    with pytest.raises(DatasetError, match=f"val has no images of class {gone} of .*train"):
        imagenet.open_split("validation", folders)
    shutil.rmtree(os.path.join(folders, "train", gone))
    os.makedirs(os.path.join(folders, "val", gone))
    monkeypatch.setattr(imagenet, "NUM_CLASSES", len(imagenet_dirs["classes"]) - 1)
    with pytest.raises(DatasetError, match=f"val has class {gone} that .*train lacks"):
        imagenet.open_split("validation", folders)
    monkeypatch.setattr(imagenet, "NUM_CLASSES", 1000)  # the real check, on the real class list
    with pytest.raises(DatasetError) as err:
        imagenet.open_split("train", folders)
    assert ("holds 7 classes, ImageNet has 1000 (missing n01440764, n01443537, n01484850 ...)"
            in str(err.value))
    assert "\n" not in str(err.value)
    tars = _copy(imagenet_dirs, "tars", tmp_path)
    with open(os.path.join(tars, "ILSVRC2012_img_train.tar"), "r+b") as f:
        f.truncate(5000)
    with pytest.raises(DatasetError, match="ILSVRC2012_img_train.tar: not a readable tar"):
        imagenet.open_split("train", tars)
    # A refused folder is left as it was found: no cached index of ours beside the data.
    assert not [f for d in (folders, tars) for f in os.listdir(d) if f.endswith(".resnet_jax_index.npz")]


def test_prepare_packs_what_tfds_builds_resuming_after_a_kill(imagenet_dirs, eight_classes, tmp_path,
                                                               monkeypatch, capsys):
    from resnet_jax import cli
    from resnet_jax.data import imagenet_pack

    dst = str(tmp_path / "packed")
    argv = ["resnet-jax", "prepare", "imagenet", imagenet_dirs["tars"], dst, "--images_per_shard=5"]
    write, written = imagenet_pack._write_shard, []

    def killed_at_the_third_shard(path, *args):
        if len(written) == 2:  # killed after the first image of the third shard

            def kill():
                raise KeyboardInterrupt
            return write(path, *args[:-1], kill)
        written.append(os.path.basename(path))
        return write(path, *args)
    monkeypatch.setattr(imagenet_pack, "_write_shard", killed_at_the_third_shard)
    with pytest.raises(KeyboardInterrupt):
        cli.main(argv)
    left = os.listdir(imagenet_pack.version_dir(dst))
    assert "dataset_info.json" not in left and not [f for f in left if ".tmp" in f], left
    with pytest.raises(DatasetError, match="has not finished; run it again"):  # not read until done
        imagenet.open_split("train", dst)
    written.clear()
    monkeypatch.setattr(imagenet_pack, "_write_shard", lambda path, *args: (
        written.append(os.path.basename(path)), write(path, *args))[1])
    capsys.readouterr()
    cli.main(argv)
    out, err = capsys.readouterr()
    assert "16 train images, 8 validation images" in out
    # Not a terminal: lines, not a bar; resumed with 2 of 6 shards (8 of 24 images) packed.
    lines = err.splitlines()
    assert lines[0].startswith("packing imagenet2012: 50% (12/24 images") and "\r" not in err
    assert lines[-1].startswith("packing imagenet2012: 100% (24/24 images"), lines
    assert len(written) == 4 and "imagenet2012-train.array_record-00000-of-00004" not in written
    for split in ("train", "validation"):  # a tfds directory equal to what `tfds build` writes
        ours, theirs = imagenet.open_split(split, dst), imagenet.open_split(split, imagenet_dirs["tfds"])
        assert len(ours) == len(theirs)
        for i in range(len(ours)):
            assert ours[i]["image"] == theirs[i]["image"] and ours[i]["label"] == theirs[i]["label"]


def test_prepare_refuses_bad_input_with_one_line(imagenet_dirs, eight_classes, tmp_path, capsys):
    from resnet_jax import cli

    def fails(*args) -> str:
        with pytest.raises(SystemExit) as exit_:
            cli.main(["resnet-jax", "prepare", "imagenet", *args, "--no_progress"])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.count("\n") == 1, err
        return err
    assert "no train/ folder or ILSVRC2012_img_train.tar" in fails(str(tmp_path), str(tmp_path / "d"))
    dst = str(tmp_path / "packed")
    cli.main(["resnet-jax", "prepare", "imagenet", imagenet_dirs["tars"], dst, "--no_progress"])
    assert "holds part of a different preparation" in fails(imagenet_dirs["folders"], dst)
    src = _copy(imagenet_dirs, "folders", tmp_path)  # (no index cached in it yet)
    before = sorted(os.listdir(src))
    assert "holds part of a different preparation" in fails(src, dst)
    assert sorted(os.listdir(src)) == before  # a failed preparation leaves its source as it was


def test_reader_speed_bench_runs_every_reader(tmp_path):
    from resnet_jax.bench.readers import reader_rates

    out = reader_rates(str(tmp_path), rounds=1, num_train=8, num_val=3)
    assert out["images"] == 8 and 40 < out["mean_jpeg_kb"] < 200 and out["prepare_images_per_s"] > 0
    for mode in ("read", "read_decode"):
        assert set(out[mode]) == {"folders", "tars", "tfds"} and min(out[mode].values()) > 0


def test_the_file_readers_import_neither_tensorflow_nor_tfds(imagenet_dirs, tmp_path):
    import subprocess
    import sys

    cifar = fakes.write_cifar(str(tmp_path), fakes.cifar_batches(per_file=1))["py_archive"]
    code = ("import sys\n"
            "from resnet_jax.data import imagenet, load_dataset\n"
            f"imagenet.NUM_CLASSES = {len(imagenet_dirs['classes'])}\n"
            f"load_dataset('cifar10', data_dir={cifar!r})\n"
            f"for split in ('train', 'validation'):\n"
            f"    imagenet.open_split(split, {imagenet_dirs['tars']!r})[0]\n"
            "assert not {'tensorflow', 'tensorflow_datasets'} & set(sys.modules), 'imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_val_tar_cut_short_fails_naming_it(imagenet_dirs, tmp_path, monkeypatch):
    """Cut inside an image: that image runs past the end. Cut between images: it reads as a
    shorter tar, which the full set's 50,000 images expose."""
    train, val = fakes.imagenet_images(num_val=8, per_class=1)
    fakes.write_imagenet_tars(str(tmp_path), {}, val)
    os.remove(tmp_path / "ILSVRC2012_img_train.tar")
    one = next(iter(train.values()))
    for wnid in imagenet_files.tfds_wnids():  # the full 1000 classes, one tiny image each
        os.makedirs(tmp_path / "train" / wnid)
        (tmp_path / "train" / wnid / f"{wnid}_1.JPEG").write_bytes(next(iter(one.values())))
    with pytest.raises(DatasetError, match="ILSVRC2012_img_val.tar holds 8 of the 50,000 validation"):
        imagenet.open_split("validation", str(tmp_path))
    import tarfile

    with tarfile.open(tmp_path / "ILSVRC2012_img_val.tar") as tar:
        cut = tar.getmembers()[-1].offset_data + 10
    with open(tmp_path / "ILSVRC2012_img_val.tar", "r+b") as f:
        f.truncate(cut)
    with pytest.raises(DatasetError, match="ILSVRC2012_img_val.tar: not a readable tar"):
        imagenet.open_split("validation", str(tmp_path))
