"""Random CIFAR-shaped data for benchmarks and tests (learning on it means nothing)."""

from __future__ import annotations

import numpy as np

from resnet_jax.data.base import ArrayDataset


def load(eval_split: str = "test", data_dir: str | None = None, num_train: int = 50_000,
         num_eval: int = 10_000, image_size: int = 32) -> ArrayDataset:
    del data_dir
    rng = np.random.default_rng(0)
    shape = (image_size, image_size, 3)
    return ArrayDataset(
        "synthetic",
        rng.integers(0, 256, (num_train, *shape), dtype=np.uint8),
        rng.integers(0, 10, num_train, dtype=np.int32),
        rng.integers(0, 256, (num_eval, *shape), dtype=np.uint8),
        rng.integers(0, 10, num_eval, dtype=np.int32),
        num_classes=10, crop_padding=4, eval_split=eval_split, source="generated",
        counts={"train": num_train, "test": num_eval})
