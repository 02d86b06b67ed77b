"""The dataset registry (registry.py: one `DatasetSpec` per dataset): device-resident arrays
(CIFAR-10 and CIFAR-100 from their archives or tfds, the offline default digits, synthetic) and the
host-fed ImageNet source (imagenet.py: the folder tree, the official tars or tfds)."""

from resnet_jax.data.base import ArrayDataset, DatasetError, DatasetSpec, HostDataset
from resnet_jax.data.registry import (DATASETS, HOST_FED, READS_DATA_DIR, SPECS, default_source_problem,
                                      load_dataset, open_dataset, read_test_split, spec)

__all__ = ["ArrayDataset", "DatasetError", "DatasetSpec", "HostDataset", "load_dataset", "open_dataset",
           "read_test_split", "spec", "SPECS", "DATASETS", "HOST_FED", "READS_DATA_DIR",
           "default_source_problem"]
