"""The dataset registry: every dataset the training loop can read, by name."""

from __future__ import annotations

import functools
from typing import Callable

from resnet_jax.data import cifar10, digits, synthetic
from resnet_jax.data.base import ArrayDataset, DatasetError, HostDataset


# Loaders of the device-resident datasets (each imports its heavy library, tfds or scikit-learn,
# only when it loads).
_LOADERS: dict[str, Callable[..., ArrayDataset]] = {
    "cifar10": cifar10.load, "digits": digits.load, "synthetic": synthetic.load,
    "digits32": functools.partial(digits.load, size=32), "digits64": functools.partial(digits.load, size=64)}
DATASETS = tuple(_LOADERS)
HOST_FED = ("imagenet",)  # decoded and augmented on the hosts, not device-resident


def load_dataset(name: str, eval_split: str = "test", data_dir: str | None = None) -> ArrayDataset:
    """Load a dataset by name; `eval_split='val'` trains on 45k and evaluates on 5k held-out images."""
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}")
    if eval_split not in ("test", "val"):
        raise DatasetError(f"unknown eval_split {eval_split!r}: expected 'test' or 'val'")
    return _LOADERS[name](eval_split=eval_split, data_dir=data_dir)


def open_dataset(name: str, eval_split: str, data_dir: str | None,
                 image_size: int = 0) -> ArrayDataset | HostDataset:
    """Any dataset by name: device-resident arrays (`load_dataset`), or, for ImageNet, the lazily
    read splits whose `image_size` crops the host pipeline makes."""
    if name not in HOST_FED:
        return load_dataset(name, eval_split, data_dir)
    from resnet_jax.data import imagenet  # noqa: PLC0415 (grain only for ImageNet)

    return HostDataset(imagenet.NAME, imagenet.open_split("train", data_dir),
                       imagenet.open_split(eval_split, data_dir), imagenet.NUM_CLASSES,
                       (image_size, image_size, 3), eval_split)
