"""The dataset registry (registry.py): device-resident arrays (CIFAR-10 from its archives or tfds,
the offline default digits, synthetic) and the host-fed ImageNet source (imagenet.py: the folder
tree, the official tars or tfds)."""

from resnet_jax.data.base import ArrayDataset, DatasetError, HostDataset
from resnet_jax.data.registry import DATASETS, HOST_FED, load_dataset, open_dataset

__all__ = ["ArrayDataset", "DatasetError", "HostDataset", "load_dataset", "open_dataset", "DATASETS",
           "HOST_FED"]
