"""CIFAR-10 from its home page's archives or from a prepared tensorflow-datasets directory, read
without TensorFlow.

`data_dir` may be `cifar-10-binary.tar.gz` / `cifar-10-python.tar.gz`, their extracted folders, or a
folder holding one of those (cifar_archives.py, same arrays in the same order as tfds). Otherwise it
is a tfds data_dir read with `tfds.data_source` (ArrayRecord files + numpy decoding); preparing one
needs the `prepare` extra (TensorFlow) and internet:
    uv run --extra prepare tfds build cifar10 --file_format=array_record [--data_dir DIR]
"""

from __future__ import annotations

import numpy as np

from resnet_jax.data import cifar_archives
from resnet_jax.data.base import ArrayDataset, DatasetError, split_off_validation

NUM_VAL = 5_000  # the paper's 45k/5k train/val split (Sec 4.2)
PREPARE_HINT = ("pass --config.data_dir=PATH/cifar-10-binary.tar.gz (or cifar-10-python.tar.gz, or "
                "its extracted folder) from https://www.cs.toronto.edu/~kriz/cifar.html, or "
                "prepare it once with `uv run --extra prepare tfds build cifar10 "
                "--file_format=array_record --data_dir DIR` (needs internet) and pass "
                "--config.data_dir=DIR, or run offline with --config.dataset=digits")


def read_split(name: str, split: str, data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """All (image, label) records of a tfds split as numpy arrays."""
    import tensorflow_datasets as tfds  # noqa: PLC0415 (slow import; keep it off the digits path)

    try:
        source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except Exception as e:  # noqa: BLE001 (tfds raises AssertionError, DatasetNotFoundError, ...)
        where = data_dir or "the default tfds data_dir (~/tensorflow_datasets)"
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DatasetError(f"{name} {split} split not found in {where} ({reason}); "
                           f"{PREPARE_HINT}") from None
    records = [source[i] for i in range(len(source))]
    if not records:
        raise DatasetError(f"{name} {split} split in {data_dir} is empty; {PREPARE_HINT}")
    images = np.stack([np.asarray(r["image"], np.uint8) for r in records])
    labels = np.asarray([r["label"] for r in records], np.int32)
    return images, labels


def load(eval_split: str = "test", data_dir: str | None = None) -> ArrayDataset:
    archive = cifar_archives.find(data_dir) if data_dir else None
    # From a tfds data_dir, the test split is read only if it is evaluated on.
    splits = (cifar_archives.read(archive) if archive else
              {"train": read_split("cifar10", "train", data_dir)})
    train_x, train_y = splits["train"]
    if eval_split == "val":
        (train_x, train_y), (test_x, test_y) = split_off_validation(train_x, train_y, NUM_VAL)
    else:
        test_x, test_y = splits["test"] if archive else read_split("cifar10", "test", data_dir)
    return ArrayDataset("cifar10", train_x, train_y, test_x, test_y, num_classes=10,
                        crop_padding=4, eval_split=eval_split)
