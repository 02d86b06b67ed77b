"""The dataset registry: one `DatasetSpec` per dataset the training loop can read, by name.

A spec holds every fact the rest of the package needs about a dataset (classes, image shape, crop
padding, whether it reads a data_dir, how it is fed, the official image counts, the paper's
validation hold-out, where to get it, its loader). The command line, config validation, `--help`
and docs read the specs rather than lists of names. Adding a dataset that tfds or the CIFAR home
page already ships is one record here.
"""

from __future__ import annotations

import functools
import os

from resnet_jax.data import cifar, digits, synthetic
from resnet_jax.data.base import ArrayDataset, DatasetError, DatasetSpec, HostDataset
from resnet_jax.data.cifar_archives import LabelField, Layout

_KRIZ = "https://www.cs.toronto.edu/~kriz/cifar.html"
_CIFAR_SPLITS = ("test", "val")

CIFAR10_LAYOUT = Layout(
    title="CIFAR-10",
    folders={"bin": "cifar-10-batches-bin", "py": "cifar-10-batches-py"},
    archives={"bin": "cifar-10-binary.tar.gz", "py": "cifar-10-python.tar.gz"},
    split_files={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
    labels=(LabelField("label", b"labels", "label", 10),))
# A CIFAR-100 binary record holds the coarse label byte, then the fine one (the home page).
CIFAR100_LAYOUT = Layout(
    title="CIFAR-100",
    folders={"bin": "cifar-100-binary", "py": "cifar-100-python"},
    archives={"bin": "cifar-100-binary.tar.gz", "py": "cifar-100-python.tar.gz"},
    split_files={"train": ("train",), "test": ("test",)},
    labels=(LabelField("coarse", b"coarse_labels", "coarse_label", 20),
            LabelField("fine", b"fine_labels", "label", 100)))
_CIFAR_COUNTS = {"train": 50_000, "test": 10_000}


def _cifar(name: str, layout: Layout, tfds_name: str, label: str, description: str) -> DatasetSpec:
    """A CIFAR set: 32x32 images padded by 4 before the crop, a 45k/5k hold-out (Sec 4.2)."""
    classes = next(f.num_classes for f in layout.labels if f.name == label)
    return DatasetSpec(
        name, description, get_it=(f"{layout.archives['bin']} or {layout.archives['py']} from {_KRIZ} "
                                   f"(or its extracted folder), or a tfds `{tfds_name}` data_dir"),
        num_classes=classes, image_shape=(32, 32, 3), crop_padding=4, reads_data_dir=True,
        host_fed=False, eval_splits=_CIFAR_SPLITS, official_counts=_CIFAR_COUNTS, num_val=5_000,
        loader=cifar.load, archive=layout, tfds_name=tfds_name, label=label)


def _digits(size: int) -> DatasetSpec:
    """scikit-learn's digits, 8x8 or resized; a 1-pixel pad is to 8x8 what 4 is to 32x32."""
    name = "digits" if size == 8 else f"digits{size}"
    return DatasetSpec(
        name, ("offline default: scikit-learn's 1,797 real 8x8 handwritten digits" if size == 8 else
               f"digits resized to {size}x{size} (for nets whose stem downsamples 32x)"),
        get_it="shipped inside scikit-learn", num_classes=10,
        image_shape=(size, size, 3), crop_padding=size // 8, reads_data_dir=False, host_fed=False,
        eval_splits=_CIFAR_SPLITS, official_counts={"train": digits.NUM_ALL - digits.NUM_TEST,
                                                    "test": digits.NUM_TEST},
        num_val=digits.NUM_VAL, loader=functools.partial(_ignoring_spec, digits.load, size=size))


def _ignoring_spec(load, spec: DatasetSpec, **kwargs) -> ArrayDataset:
    del spec  # these loaders carry their few facts as module constants
    return load(**kwargs)


SPECS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    _cifar("cifar10", CIFAR10_LAYOUT, "cifar10", "label",
           "CIFAR-10: 50k/10k 32x32 colour images, 10 classes (the paper's Sec 4.2)"),
    _cifar("cifar100", CIFAR100_LAYOUT, "cifar100", "fine",
           "CIFAR-100: 50k/10k 32x32 colour images, 100 (fine) classes"),
    _cifar("cifar100_coarse", CIFAR100_LAYOUT, "cifar100", "coarse",
           "CIFAR-100's images with its 20 coarse (superclass) labels"),
    _digits(8), _digits(32), _digits(64),
    DatasetSpec("synthetic", "random CIFAR-shaped images and labels (benchmarks; learning means nothing)",
                get_it="generated", num_classes=10, image_shape=(32, 32, 3),
                crop_padding=4, reads_data_dir=False, host_fed=False, eval_splits=_CIFAR_SPLITS,
                official_counts={}, num_val=0, loader=functools.partial(_ignoring_spec, synthetic.load)),
    DatasetSpec("imagenet", "ILSVRC2012: 1.28M training and 50k validation images, 1000 classes (Sec 3.4)",
                get_it=("ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from image-net.org, their "
                        "train/ and val/ folder trees, or a tfds `imagenet2012` data_dir"),
                num_classes=1000, image_shape=None, crop_padding=0, reads_data_dir=True, host_fed=True,
                eval_splits=("validation",), official_counts={"train": 1_281_167, "validation": 50_000},
                num_val=0, loader=None, tfds_name="imagenet2012"),
)}

# Derived views, for the callers that predate the specs.
DATASETS = tuple(name for name, s in SPECS.items() if not s.host_fed)  # device-resident arrays
HOST_FED = tuple(name for name, s in SPECS.items() if s.host_fed)  # decoded on the hosts
READS_DATA_DIR = tuple(name for name, s in SPECS.items() if s.reads_data_dir)


def spec(name: str) -> DatasetSpec:
    """The spec of a dataset; an unknown name is a DatasetError listing the known ones."""
    if name not in SPECS:
        raise DatasetError(f"unknown dataset {name!r}: expected one of {', '.join(SPECS)}")
    return SPECS[name]


def default_source_problem(name: str) -> str | None:
    """Why a dataset read from tfds's default data_dir ($TFDS_DATA_DIR, else ~/tensorflow_datasets)
    cannot be there: no folder of it (the common mistake, no CIFAR yet), said before tfds loads and
    warns. None where there is one, or for datasets read otherwise (ImageNet names its own)."""
    s = spec(name)
    if s.archive is None or not s.tfds_name:
        return None
    root = os.environ.get("TFDS_DATA_DIR") or os.path.expanduser(os.path.join("~", "tensorflow_datasets"))
    if "://" in root or os.path.isdir(os.path.join(root, s.tfds_name)):
        return None
    return f"no {name} in {root} (no {s.tfds_name}/ folder there); {cifar.prepare_hint(s)}"


def help_lines() -> list[str]:
    """'name: description; where to get it' per dataset, for --help and docs."""
    return [f"{s.name}: {s.description}; {s.get_it}" for s in SPECS.values()]


def _array_spec(name: str, eval_split: str) -> DatasetSpec:
    s = spec(name)
    if s.host_fed:
        raise DatasetError(f"{name} is read lazily on the hosts (open_dataset), not loaded as arrays")
    if eval_split not in s.eval_splits:
        raise DatasetError(f"unknown eval_split {eval_split!r}: expected "
                           f"{' or '.join(repr(x) for x in s.eval_splits)}")
    return s


def load_dataset(name: str, eval_split: str = "test", data_dir: str | None = None) -> ArrayDataset:
    """Load a dataset by name; `eval_split='val'` trains on 45k and evaluates on 5k held-out images."""
    s = _array_spec(name, eval_split)
    return s.loader(s, eval_split=eval_split, data_dir=data_dir)


def read_test_split(data_dir: str | None, name: str = "cifar10") -> ArrayDataset:
    """Only the test split of a CIFAR archive, folder or tfds data_dir, e.g. a subset that lacks
    the training batches, for evaluating a trained run (whose input mean comes from the run: the
    returned training split is empty). Counts other than the official ones are logged once."""
    s = _array_spec(name, "test")
    if s.archive is None:
        raise DatasetError(f"{name} has no test split to read from a data_dir")
    return cifar.load_test_split(s, data_dir)


def open_dataset(name: str, eval_split: str, data_dir: str | None,
                 image_size: int = 0) -> ArrayDataset | HostDataset:
    """Any dataset by name: device-resident arrays (`load_dataset`), or, for ImageNet, the lazily
    read splits whose `image_size` crops the host pipeline makes."""
    if not spec(name).host_fed:
        return load_dataset(name, eval_split, data_dir)
    from resnet_jax.data import imagenet  # noqa: PLC0415 (grain only for ImageNet)

    return HostDataset(imagenet.NAME, imagenet.open_split("train", data_dir),
                       imagenet.open_split(eval_split, data_dir), imagenet.NUM_CLASSES,
                       (image_size, image_size, 3), eval_split)
