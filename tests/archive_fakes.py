"""Small datasets in the exact layouts their publishers ship, and the same images as `tfds build`
would prepare them (run here without TensorFlow: the two calls tfds makes into TensorFlow are
replaced by their PIL / builtin equivalents)."""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import tarfile

import numpy as np
from PIL import Image

# The official ImageNet layouts are written by the reader bench's writers (one copy of them).
from resnet_jax.bench.readers import write_imagenet_folders, write_imagenet_tars  # noqa: F401

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


def write_cifar(root: str, batches: dict) -> dict[str, str]:
    """All four official forms of `batches` under `root`: {'bin_folder', 'py_folder', 'bin_archive',
    'py_archive'} -> path."""
    bin_dir, py_dir = os.path.join(root, "cifar-10-batches-bin"), os.path.join(root, "cifar-10-batches-py")
    os.makedirs(bin_dir)
    os.makedirs(py_dir)
    for stem, (images, labels) in batches.items():
        planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)  # R, G, B planes, row-major
        records = np.concatenate([labels.astype(np.uint8)[:, None], planes], axis=1)
        with open(os.path.join(bin_dir, f"{stem}.bin"), "wb") as f:
            f.write(records.tobytes())
        batch = {b"batch_label": f"{stem} of 6".encode(), b"labels": [int(v) for v in labels],
                 b"data": planes, b"filenames": [f"img_{i}.png".encode() for i in range(len(images))]}
        with open(os.path.join(py_dir, stem), "wb") as f:
            pickle.dump(batch, f, protocol=2)  # as the site's files: protocol 2, bytes keys
    with open(os.path.join(bin_dir, "batches.meta.txt"), "w") as f:
        f.write("\n".join(CIFAR_LABEL_NAMES) + "\n\n")
    with open(os.path.join(py_dir, "batches.meta"), "wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in CIFAR_LABEL_NAMES],
                     b"num_cases_per_batch": 10000, b"num_vis": 3072}, f, protocol=2)
    archives = {"bin_archive": os.path.join(root, "cifar-10-binary.tar.gz"),
                "py_archive": os.path.join(root, "cifar-10-python.tar.gz")}
    _tar_gz(archives["bin_archive"], bin_dir)
    _tar_gz(archives["py_archive"], py_dir)
    return {"bin_folder": bin_dir, "py_folder": py_dir, **archives}


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


def tfds_build_cifar10(monkeypatch, extracted_root: str, data_dir: str) -> None:
    """`tfds build cifar10 --file_format=array_record` from the binary batches under
    `extracted_root` (the real builder's code: its order, its shuffling, its ArrayRecord files)."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download import download_manager
    from tensorflow_datasets.image_classification import cifar

    monkeypatch.setattr(cifar, "tf", _GFileModule)
    monkeypatch.setattr(tfds.features.Image, "encode_example", _encode_without_tf)
    monkeypatch.setattr(download_manager.DownloadManager, "download_and_extract",
                        lambda self, url: extracted_root)
    builder = tfds.builder("cifar10", data_dir=data_dir, file_format="array_record")
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
