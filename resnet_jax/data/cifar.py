"""CIFAR-10 and CIFAR-100 from their home page's archives or from a prepared tensorflow-datasets
directory, read without TensorFlow; which dataset is a `DatasetSpec` of the registry.

`data_dir` may be the binary or python `.tar.gz`, its extracted folder, or a folder holding one of
those (cifar_archives.py, same arrays in the same order as tfds). Otherwise it is a tfds data_dir
read with `tfds.data_source` (ArrayRecord files + numpy decoding); preparing one needs the `prepare`
extra (TensorFlow) and internet:
    uv run --extra prepare tfds build cifar10 --file_format=array_record [--data_dir DIR]

CIFAR-100's label is the fine label (100 classes, as in the paper's follow-up, He et al. 2016b);
the dataset `cifar100_coarse` is the same images with the 20 coarse labels. A set with other image
counts than the official one (a subset, a partial extraction) loads with one warning naming them,
and every loaded set records the form read and its counts (`ArrayDataset.source`, `.counts`).
"""

from __future__ import annotations


import numpy as np
from absl import logging

from resnet_jax.data import cifar_archives
from resnet_jax.data.base import ArrayDataset, DatasetError, DatasetSpec, split_off_validation


def prepare_hint(spec: DatasetSpec) -> str:
    return (f"pass --config.data_dir=PATH/{spec.archive.archives['bin']} (or "
            f"{spec.archive.archives['py']}, or its extracted folder) from "
            f"https://www.cs.toronto.edu/~kriz/cifar.html, or prepare it once with `uv run --extra "
            f"prepare tfds build {spec.tfds_name} --file_format=array_record --data_dir DIR` (needs "
            "internet) and pass --config.data_dir=DIR, or run offline with --config.dataset=digits")


def read_split(spec: DatasetSpec, split: str, data_dir: str | None) -> cifar_archives.Split:
    """All records of a tfds split: images and {label name: labels} (the layout's label fields)."""
    name = spec.tfds_name
    where = data_dir or "the default tfds data_dir (~/tensorflow_datasets)"
    import tensorflow_datasets as tfds  # noqa: PLC0415 (slow import; keep it off the digits path)

    try:
        source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except Exception as e:  # noqa: BLE001 (tfds raises AssertionError, DatasetNotFoundError, ...)
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DatasetError(f"{name} {split} split not found in {where} ({reason}); "
                           f"{prepare_hint(spec)}") from None
    records = [source[i] for i in range(len(source))]
    if not records:
        raise DatasetError(f"{name} {split} split in {data_dir} is empty; {prepare_hint(spec)}")
    images = np.stack([np.asarray(r["image"], np.uint8) for r in records])
    return images, {f.name: np.asarray([r[f.tfds_key] for r in records], np.int32)
                    for f in spec.archive.labels}


def _read(spec: DatasetSpec, data_dir: str | None, splits: tuple[str, ...]
          ) -> tuple[str, dict[str, cifar_archives.Split]]:
    """(the form read, {split: records}) from an archive or folder, else from a tfds data_dir."""
    found = cifar_archives.find(spec.archive, data_dir) if data_dir else None
    if found:
        return (cifar_archives.describe(spec.archive, found),
                cifar_archives.read(spec.archive, found, splits))
    return f"tfds {spec.tfds_name}", {split: read_split(spec, split, data_dir) for split in splits}


def _warn_if_not_official(spec: DatasetSpec, source: str, counts: dict[str, int]) -> None:
    """One warning line where a split holds other than the official number of images, so that a
    subset is never taken for the whole set."""
    off = {s: n for s, n in counts.items() if n != spec.official_counts.get(s, n)}
    if off:
        logging.warning("%s from %s: %s; the official set has %s (a subset or a partial extraction: "
                        "errors on it are not comparable with the paper's)", spec.name, source,
                        ", ".join(f"{n:,} {s} images" for s, n in off.items()),
                        ", ".join(f"{spec.official_counts[s]:,} {s}" for s in off))


def load(spec: DatasetSpec, *, eval_split: str = "test", data_dir: str | None = None) -> ArrayDataset:
    """Train and evaluation splits; `eval_split='val'` holds out the last `spec.num_val` training
    images (in tfds's order), the paper's 45k/5k split (Sec 4.2)."""
    # The test split is read only if it is evaluated on.
    source, splits = _read(spec, data_dir, ("train", "test") if eval_split == "test" else ("train",))
    counts = {split: len(images) for split, (images, _) in splits.items()}
    _warn_if_not_official(spec, source, counts)
    train_x, train_y = splits["train"][0], splits["train"][1][spec.label]
    if eval_split == "val":
        (train_x, train_y), (test_x, test_y) = split_off_validation(train_x, train_y, spec.num_val)
    else:
        test_x, test_y = splits["test"][0], splits["test"][1][spec.label]
    return ArrayDataset(spec.name, train_x, train_y, test_x, test_y, num_classes=spec.num_classes,
                        crop_padding=spec.crop_padding, eval_split=eval_split, source=source,
                        counts=counts, official_counts=dict(spec.official_counts))


def load_test_split(spec: DatasetSpec, data_dir: str | None) -> ArrayDataset:
    """The test split alone (an archive or folder may lack the training batches: a subset given
    for evaluation); its training split is empty, so its input mean must come from the run."""
    source, splits = _read(spec, data_dir, ("test",))
    images, labels = splits["test"]
    counts = {"test": len(images)}
    _warn_if_not_official(spec, source, counts)
    empty = np.zeros((0, *images.shape[1:]), np.uint8)
    return ArrayDataset(spec.name, empty, np.zeros(0, np.int32), images, labels[spec.label],
                        num_classes=spec.num_classes, crop_padding=spec.crop_padding, eval_split="test",
                        source=source, counts=counts, official_counts=dict(spec.official_counts))
