"""Datasets served as device-resident arrays: CIFAR-10 (tfds) and the offline default, digits."""

from resnet_jax.data.base import ArrayDataset, DatasetError, load_dataset, DATASETS

__all__ = ["ArrayDataset", "DatasetError", "load_dataset", "DATASETS"]
