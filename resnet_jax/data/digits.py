"""scikit-learn's `digits` (1,797 real 8x8 handwritten digits shipped inside the wheel).

The offline default: kept at its native 8x8 (the CIFAR nets take any size), grey levels 0..16
scaled to 0..255 and repeated over 3 channels, and a fixed stratified 1,437/360 train/test split.
`size` > 8 resizes them (bilinear), for nets whose stem downsamples 32x (fine-tuning an ImageNet
net: "digits64", or "digits32" for a quicker check).
"""

from __future__ import annotations

import numpy as np

from resnet_jax.data.base import ArrayDataset, split_off_validation

NUM_ALL = 1_797
NUM_TEST = 360
NUM_VAL = 180


def load(eval_split: str = "test", data_dir: str | None = None, size: int = 8) -> ArrayDataset:
    del data_dir  # shipped with scikit-learn
    from sklearn.datasets import load_digits  # noqa: PLC0415
    from sklearn.model_selection import train_test_split  # noqa: PLC0415

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    if size != 8:
        from PIL import Image  # noqa: PLC0415

        images = np.stack([np.asarray(Image.fromarray(x).resize((size, size), Image.BILINEAR))
                           for x in images])
    images = np.repeat(images[..., None], 3, axis=-1)
    labels = bunch.target.astype(np.int32)
    train_x, test_x, train_y, test_y = train_test_split(
        images, labels, test_size=NUM_TEST, random_state=0, stratify=labels)
    counts = {"train": len(train_x), "test": len(test_x)}
    if eval_split == "val":
        (train_x, train_y), (test_x, test_y) = split_off_validation(train_x, train_y, NUM_VAL)
    # A 1-pixel pad is to 8x8 what the paper's 4-pixel pad is to 32x32 CIFAR images.
    return ArrayDataset("digits" if size == 8 else f"digits{size}", train_x, train_y, test_x, test_y,
                        num_classes=10, crop_padding=size // 8, eval_split=eval_split,
                        source="scikit-learn digits", counts=counts)
