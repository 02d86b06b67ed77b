"""How datasets are served: device-resident arrays or lazily read host-fed records (the registry
that names them is registry.py).

Small image-classification sets (CIFAR-10, digits, synthetic) fit in device memory (CIFAR-10 train
is 150 MB as uint8), so the whole split lives on the accelerator and batches are gathered and
augmented there, with no host round trip per step (`ArrayDataset`). ImageNet does not: its records
are read lazily from disk and decoded and augmented on each host (`HostDataset`, data/imagenet.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    from resnet_jax.data.cifar_archives import Layout


class DatasetError(RuntimeError):
    """A dataset is missing or malformed; the message says how to fix it."""


@dataclasses.dataclass(frozen=True)
class ArrayDataset:
    """uint8 NHWC images and int32 labels for a train split and an evaluation split."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    eval_images: np.ndarray
    eval_labels: np.ndarray
    num_classes: int
    crop_padding: int  # pixels of zero padding before the random crop (4 for 32x32 CIFAR)
    eval_split: str  # "test" (final numbers) or "val" (held out of train, for choices)
    source: str = ""  # the form read, e.g. "cifar-10-binary.tar.gz", "cifar-100-python/ (extracted folder)"
    counts: Mapping[str, int] = dataclasses.field(default_factory=dict)  # images read per split
    official_counts: Mapping[str, int] = dataclasses.field(default_factory=dict)  # the published set's

    def __post_init__(self):
        for split in ("train", "eval"):
            images, labels = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if images.dtype != np.uint8 or images.ndim != 4:
                raise DatasetError(f"{self.name}: {split} images must be uint8 NHWC, got "
                                   f"{images.dtype} {images.shape}")
            if len(images) != len(labels):
                raise DatasetError(f"{self.name}: {len(images)} {split} images but {len(labels)} labels")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])

    def summary(self) -> dict:
        """What was read, for config.json / results.json / eval output: the form, the images read
        per split (before any validation hold-out) and the official set's counts."""
        return {"dataset": self.name, "source": self.source, "counts": dict(self.counts),
                "official_counts": dict(self.official_counts), "eval_split": self.eval_split,
                "train_images": len(self.train_images), "eval_images": len(self.eval_images)}

    def pixel_mean(self) -> np.ndarray:
        """Per-pixel mean (H, W, C) of the training split in [0, 1] units (the paper subtracts it)."""
        if not len(self.train_images):
            raise DatasetError(f"{self.name} from {self.source or 'this source'} has no training images "
                               "to take the input mean of (an evaluation-only source)")
        return (self.train_images.astype(np.float64).mean(0) / 255.0).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Everything the package knows about one dataset (the records are in registry.py)."""

    name: str
    description: str  # one line, for --help and docs
    get_it: str  # where to get it, for --help, docs and errors
    num_classes: int
    image_shape: tuple[int, int, int] | None  # None: chosen by config.data.image_size (host-fed crops)
    crop_padding: int  # zero padding before the random crop (Sec 4.2: 4 pixels on 32x32)
    reads_data_dir: bool  # False: generated or shipped inside a library
    host_fed: bool  # decoded and augmented on the hosts (HostDataset), not device-resident
    eval_splits: tuple[str, ...]  # what config.data.eval_split may be
    official_counts: Mapping[str, int]  # images per split of the published set ({} if generated)
    num_val: int  # training images held out for eval_split="val" (the paper's 45k/5k: 5,000)
    loader: Callable[..., Any] | None  # loader(spec, eval_split=, data_dir=) -> ArrayDataset
    archive: Layout | None = None  # CIFAR: how the home page ships it (cifar_archives.py)
    tfds_name: str | None = None  # the tensorflow-datasets builder giving the same records
    label: str = "label"  # which label field of the records is the class


def split_off_validation(train_images, train_labels, num_val: int):
    """Hold out the last `num_val` training images (CIFAR's 45k/5k split for making choices)."""
    if not 0 < num_val < len(train_images):
        raise DatasetError(f"cannot hold out {num_val} of {len(train_images)} training images")
    cut = len(train_images) - num_val
    return (train_images[:cut], train_labels[:cut]), (train_images[cut:], train_labels[cut:])


@dataclasses.dataclass(frozen=True)
class HostDataset:
    """Records read lazily from disk (`train_images`/`eval_images` are random-access sources)."""

    name: str
    train_images: Sequence[dict]
    eval_images: Sequence[dict]
    num_classes: int
    image_shape: tuple[int, int, int]
    eval_split: str
    crop_padding: int = 0  # the engine crops nothing: host-fed crops come from the input pipeline


def tfds_order(split: str, keys: Sequence[str]) -> np.ndarray:
    """The order in which `tfds build` writes a split's examples, given the key each was generated
    with: ascending md5(split name + key) (tensorflow_datasets/core/shuffle.py and hashing.py). Readers
    of the original files apply it so that every route gives the same records at the same index."""
    salt = hashlib.md5(split.encode())

    def digest(key: str) -> bytes:
        md5 = salt.copy()
        md5.update(os.fsencode(key))
        return md5.digest()
    digests = [digest(k) for k in keys]
    return np.asarray(sorted(range(len(digests)), key=digests.__getitem__), np.int64)
