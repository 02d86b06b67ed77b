"""Small datasets in the exact layouts their publishers ship, and the same images as `tfds build`
would prepare them (run here without TensorFlow: the two calls tfds makes into TensorFlow are
replaced by their PIL / builtin equivalents)."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import sys
import tarfile

import numpy as np
from PIL import Image

# The official ImageNet layouts are written by the reader bench's writers (one copy of them).
from resnet_jax.bench.readers import write_imagenet_folders, write_imagenet_tars  # noqa: F401

def assert_one_line_errors(dataset: str, cases: dict[str, tuple[str, str]]) -> None:
    """Each case {name: (data_dir, expected text)}: loading raises one DatasetError line."""
    from resnet_jax.data import DatasetError, load_dataset

    for name, (data_dir, expected) in cases.items():
        try:
            load_dataset(dataset, data_dir=data_dir)
        except DatasetError as e:
            assert expected in str(e) and "\n" not in str(e), (name, str(e))
        else:
            raise AssertionError(f"{name}: loaded without an error")


def assert_train_exits_2(tmp_path, cases: dict[str, tuple[list[str], str]]) -> None:
    """Each case {name: ([--config=..., more flags], expected text)}: `resnet-jax train` says
    one line naming the problem and exits 2 (all cases in one child process)."""
    import scaleout_helpers as h

    argvs = [["train", *argv[:1], f"--workdir={tmp_path / 'run'}", "--config.steps=1", *argv[1:]]
             for argv, _ in cases.values()]
    runner = h.run([sys.executable, "tests/cli_runner.py"], {**h.env(1), "HOME": str(tmp_path)},
                   input=json.dumps(argvs))
    assert runner.returncode == 0, runner.stderr
    assert not os.path.exists(os.path.join(h.REPO, "SHOULD_NOT_EXIST"))
    for (name, (_, expected)), result in zip(cases.items(), json.loads(runner.stdout)):
        lines = [line for line in result["stderr"].splitlines() if line.strip()]
        assert result["code"] == 2 and len(lines) == 1, (name, result)
        assert lines[0].startswith("resnet-jax train: error: ") and expected in lines[0], (name, lines)


def real_files() -> str | None:
    """The shared folder of real files (`../shared/real` beside the project's root; from a git
    worktree one level further up), or None where it is absent."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for up in ("..", os.path.join("..", "..")):
        path = os.path.normpath(os.path.join(root, up, "shared", "real"))
        if os.path.isdir(path):
            return path
    return None


def scale_num_val(monkeypatch, name: str, num_val: int) -> None:
    """The paper's 5k validation hold-out of `name`, scaled down to a fake's size."""
    from resnet_jax.data import registry

    monkeypatch.setitem(registry.SPECS, name, dataclasses.replace(registry.SPECS[name], num_val=num_val))


CIFAR_LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                     "truck"]
CIFAR_STEMS = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def cifar_batches(per_file: int = 3, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Random images (n, 32, 32, 3) uint8 and labels per official batch file name (without .bin)."""
    rng = np.random.default_rng(seed)
    return {stem: (rng.integers(0, 256, (per_file, 32, 32, 3), dtype=np.uint8),
                   rng.integers(0, 10, per_file).astype(np.int32)) for stem in CIFAR_STEMS}


def _tar_gz(path: str, folder: str) -> None:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname=os.path.basename(folder))


def _write_forms(root: str, names: dict[str, str], batches: dict, extra: dict[str, dict[str, object]]
                 ) -> dict[str, str]:
    """The binary and python folders and .tar.gz of one CIFAR dataset. `names`: {'bin_folder',
    'py_folder', 'bin_archive', 'py_archive'} -> file name; `batches`: {stem: (images, [(pickle key,
    labels)] in the binary record's byte order)}; `extra`: {'bin'|'py': {file name: text or dict}}."""
    paths = {key: os.path.join(root, name) for key, name in names.items()}
    for form in ("bin", "py"):
        os.makedirs(paths[f"{form}_folder"])
    for stem, (images, labels) in batches.items():
        planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)  # R, G, B planes, row-major
        records = np.concatenate([*(v.astype(np.uint8)[:, None] for _, v in labels), planes], axis=1)
        with open(os.path.join(paths["bin_folder"], f"{stem}.bin"), "wb") as f:
            f.write(records.tobytes())
        batch = {b"batch_label": f"{stem} batch".encode(), b"data": planes,
                 b"filenames": [f"img_{i}.png".encode() for i in range(len(images))],
                 **{key: [int(v) for v in values] for key, values in labels}}
        with open(os.path.join(paths["py_folder"], stem), "wb") as f:
            pickle.dump(batch, f, protocol=2)  # as the site's files: protocol 2, bytes keys
    for form, files in extra.items():
        for name, content in files.items():
            data = content.encode() if form == "bin" else pickle.dumps(content, protocol=2)
            with open(os.path.join(paths[f"{form}_folder"], name), "wb") as f:
                f.write(data)
    for form in ("bin", "py"):
        _tar_gz(paths[f"{form}_archive"], paths[f"{form}_folder"])
    return paths


def write_cifar(root: str, batches: dict) -> dict[str, str]:
    """All four official forms of CIFAR-10 `batches` under `root`: {'bin_folder', 'py_folder',
    'bin_archive', 'py_archive'} -> path."""
    names = {"bin_folder": "cifar-10-batches-bin", "py_folder": "cifar-10-batches-py",
             "bin_archive": "cifar-10-binary.tar.gz", "py_archive": "cifar-10-python.tar.gz"}
    meta = {b"label_names": [n.encode() for n in CIFAR_LABEL_NAMES], b"num_cases_per_batch": 10000,
            b"num_vis": 3072}
    return _write_forms(root, names, {stem: (x, [(b"labels", y)]) for stem, (x, y) in batches.items()},
                        {"bin": {"batches.meta.txt": "\n".join(CIFAR_LABEL_NAMES) + "\n\n"},
                         "py": {"batches.meta": meta}})


def cifar100_splits(num_train: int = 12, num_test: int = 5, seed: int = 1
                    ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """{'train'|'test': (images, coarse labels 0..19, fine labels 0..99)}."""
    rng = np.random.default_rng(seed)
    return {split: (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                    rng.integers(0, 20, n).astype(np.int32), rng.integers(0, 100, n).astype(np.int32))
            for split, n in (("train", num_train), ("test", num_test))}


def write_cifar100(root: str, splits: dict) -> dict[str, str]:
    """The four official forms of CIFAR-100: `cifar-100-binary/{train,test}.bin` (records of a
    coarse label byte, a fine label byte, 3072 pixel bytes) with the two label-name files, and
    `cifar-100-python/{train,test,meta}` (pickles with b'fine_labels' and b'coarse_labels'),
    each also as its .tar.gz."""
    names = {"bin_folder": "cifar-100-binary", "py_folder": "cifar-100-python",
             "bin_archive": "cifar-100-binary.tar.gz", "py_archive": "cifar-100-python.tar.gz"}
    fine, coarse = [f"fine_{i}" for i in range(100)], [f"coarse_{i}" for i in range(20)]
    return _write_forms(
        root, names, {split: (x, [(b"coarse_labels", c), (b"fine_labels", f)])
                      for split, (x, c, f) in splits.items()},
        {"bin": {"fine_label_names.txt": "\n".join(fine) + "\n",
                 "coarse_label_names.txt": "\n".join(coarse) + "\n"},
         "py": {"meta": {b"fine_label_names": [n.encode() for n in fine],
                         b"coarse_label_names": [n.encode() for n in coarse]}}})


def _png(image) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _encode_without_tf(self, image) -> bytes:
    """tfds.features.Image.encode_example: file objects and paths pass through, arrays become PNG
    (tfds encodes with TensorFlow, which only the `prepare` extra installs)."""
    if hasattr(image, "read"):
        return image.read()
    if isinstance(image, (str, os.PathLike)):
        with open(image, "rb") as f:
            return f.read()
    return _png(image)


class _GFileModule:
    class io:  # noqa: N801 (stands in for tf.io)
        class gfile:  # noqa: N801
            GFile = staticmethod(lambda path, mode="r": open(os.fspath(path), mode))
            exists = staticmethod(os.path.exists)


def tfds_build_cifar(monkeypatch, name: str, extracted_root: str, data_dir: str) -> None:
    """`tfds build cifar10|cifar100 --file_format=array_record` from the binary batches under
    `extracted_root` (the real builder's code: its order, its shuffling, its ArrayRecord files)."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download import download_manager
    from tensorflow_datasets.image_classification import cifar

    monkeypatch.setattr(cifar, "tf", _GFileModule)
    monkeypatch.setattr(tfds.features.Image, "encode_example", _encode_without_tf)
    monkeypatch.setattr(download_manager.DownloadManager, "download_and_extract",
                        lambda self, url: extracted_root)
    builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        verify_ssl=False, download_mode=tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS))


def imagenet_images(num_val: int = 8, per_class: int = 2, seed: int = 0
                    ) -> tuple[dict[str, dict[str, bytes]], dict[str, bytes]]:
    """({wnid: {file name: JPEG}}, {val file name: JPEG}): the first `num_val` official validation
    images' names (their classes per the devkit) and `per_class` training images of each class."""
    from imagenet_fakes import jpeg
    from resnet_jax.data.imagenet_files import validation_wnids

    rng = np.random.default_rng(seed)

    def image():
        h, w = rng.integers(20, 40, size=2)
        return jpeg(rng.integers(0, 256, (h // 4, w // 4, 3), dtype=np.uint8).repeat(4, 0).repeat(4, 1))
    truth = validation_wnids()[:num_val]
    train = {w: {f"{w}_{k}.JPEG": image() for k in (11, 2, 300)[:per_class]} for w in sorted(set(truth))}
    val = {f"ILSVRC2012_val_{k:08d}.JPEG": image() for k in range(1, num_val + 1)}
    return train, val


def tfds_build_imagenet2012(monkeypatch, manual_dir: str, data_dir: str) -> None:
    """`tfds build imagenet2012 --manual_dir ... --file_format=array_record` (the real builder)."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download import extractor
    from tensorflow_datasets.datasets.imagenet2012 import imagenet2012_dataset_builder, imagenet_common

    for module in (imagenet_common, imagenet2012_dataset_builder, extractor):
        monkeypatch.setattr(module, "tf", _GFileModule)
    monkeypatch.setattr(tfds.features.Image, "encode_example", _encode_without_tf)
    builder = tfds.builder("imagenet2012", data_dir=data_dir, file_format="array_record")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
