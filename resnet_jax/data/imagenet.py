"""ILSVRC2012 read without TensorFlow, fed by grain.

Records come from the folder tree or the official tars (imagenet_files.py), or from a prepared
tensorflow-datasets directory through `tfds.data_source("imagenet2012")` (ArrayRecord files); JPEG
bytes are left encoded either way, in the same order with the same labels. grain decodes and
augments them in worker processes. Each host reads its own shard
(`jax.process_index()::jax.process_count()`) and produces its slice of every global batch. The
training order and augmentation are a pure function of (seed, example index), so resuming at a step
replays exactly the batches a run without interruption would have seen.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import jax
import numpy as np

from resnet_jax.data import imagenet_files, imagenet_pack
from resnet_jax.data.base import DatasetError
from resnet_jax.data.imagenet_transforms import CenterCrop, TrainTransform, check_backend

if TYPE_CHECKING:
    import grain

NAME = "imagenet2012"
NUM_CLASSES = 1000
DEFAULT_DATA_DIR = os.path.join("~", "tensorflow_datasets")
PREPARE_HINT = ("pass --config.data_dir=DIR (scripts and `resnet-jax imagenet`: --data_dir DIR) where "
                "DIR holds ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar, or the folders "
                "train/<wnid>/*.JPEG and val/<wnid>/*.JPEG; or put the two tars in a manual_dir and "
                "prepare once with `python3 -m uv run --extra prepare tfds build imagenet2012 "
                "--manual_dir MANUAL_DIR --file_format=array_record --data_dir DATA_DIR`, then pass "
                "that DATA_DIR")


def open_split(split: str, data_dir: str | None) -> Sequence[dict]:
    """Random-access records {'image': JPEG bytes, 'label': int} of a split ('train', 'validation')
    of the folder tree or tars in `data_dir`, or of a tfds directory."""
    where = data_dir or DEFAULT_DATA_DIR
    root = os.path.expanduser(where)
    if (data_dir and split in imagenet_files.FOLDERS and not os.path.isdir(os.path.join(root, NAME))
            and imagenet_files.layout(root, split)):
        return imagenet_files.open_split(split, root, NUM_CLASSES)
    import tensorflow_datasets as tfds  # noqa: PLC0415 (slow import; keep it off other paths)

    if not os.path.isdir(os.path.join(root, NAME)):
        raise DatasetError(f"no ImageNet ({NAME}) in {where}; {PREPARE_HINT}")
    if unfinished := imagenet_pack.unfinished(root):
        raise DatasetError(f"{where}: `resnet-jax prepare imagenet {unfinished} {where}` has not "
                           "finished; run it again to finish (it resumes)")
    try:
        source = tfds.data_source(NAME, split=split, data_dir=data_dir, download=False,
                                  decoders={"image": tfds.decode.SkipDecoding()})
    except Exception as e:  # noqa: BLE001 (tfds raises AssertionError, DatasetNotFoundError, ...)
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DatasetError(f"{NAME} {split} split not readable in {where} ({reason}); "
                           f"{PREPARE_HINT}") from None
    if len(source) == 0:
        raise DatasetError(f"{NAME} {split} split in {data_dir or DEFAULT_DATA_DIR} is empty; "
                           f"{PREPARE_HINT}")
    return source


class Head(Sequence):
    """The first `n` records of a source (quicker validation curves), still read lazily."""

    def __init__(self, source: Sequence, n: int):
        self.source, self.n = source, min(n, len(source))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        if not -self.n <= i < self.n:
            raise IndexError(i)
        return self.source[i % self.n]


def host_shard(source: Sequence) -> grain.MapDataset:
    """This host's disjoint share of the records."""
    import grain  # noqa: PLC0415 (grain only where ImageNet batches are made: CIFAR/digits runs lack it)

    return grain.MapDataset.source(source)[jax.process_index()::jax.process_count()]


AUTO_WORKERS = -1  # num_workers: one grain process per core (see worker_count)


def worker_count(num_workers: int) -> int:
    """`num_workers`, or for AUTO_WORKERS one grain process per core this process may run on, less
    one for the training process itself (it stacks the batches and dispatches the steps)."""
    if num_workers != AUTO_WORKERS:
        return num_workers
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores - 1)


def _iterate(ds: grain.MapDataset, num_workers: int) -> Iterator:
    import grain  # noqa: PLC0415 (see host_shard)

    num_workers = worker_count(num_workers)
    if num_workers == 0:  # in this process (tests, debugging): two reader threads, two batches
        # ahead, where grain's default (16 threads, 500 elements = batches here) would go on
        # decoding hundreds of batches nobody asked for
        return iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=2)))
    from absl import flags  # noqa: PLC0415

    if not flags.FLAGS.is_parsed():  # grain reads its absl flags; outside an absl app, defaults
        flags.FLAGS.mark_as_parsed()
    # Decoding in worker processes (JPEG decode + resize is the bottleneck), one thread each: the
    # decoders release the GIL, so grain's default of 16 reader threads per process would run up to
    # 16 workers' transforms on every core. Each worker keeps 2 batches ready beyond the one it is
    # making, so a slow image does not stall the step.
    it = ds.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=1))
    return iter(it.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers,
                                                            per_worker_buffer_size=2)))


def train_batches(source: Sequence, local_batch: int, *, seed: int, start_step: int = 0,
                  crop_size: int = 224, scale_range: tuple[int, int] = (256, 480),
                  num_workers: int = 0, backend: str | None = None) -> Iterator[dict]:
    """Endless augmented batches {'image': (b, crop, crop, 3) uint8, 'label': (b,)}, from `start_step`.

    Each epoch is reshuffled (grain folds the epoch into the shuffle seed); the last partial batch
    of an epoch runs on into the next epoch rather than being dropped. `backend`: the transforms'
    (imagenet_transforms; None: "fast" where it imports, else "pil").
    """
    if scale_range[0] < crop_size:
        raise ValueError(f"scale range {scale_range} must start at or above the crop size {crop_size}")
    ds = host_shard(source).shuffle(seed=seed).repeat()
    ds = ds.random_map(TrainTransform(crop_size, tuple(scale_range), check_backend(backend)),
                       seed=seed + 1)
    ds = ds.batch(local_batch, drop_remainder=True)[start_step:]
    return _iterate(ds, num_workers)


def eval_batches(source: Sequence, transform: Callable[[dict], dict], local_batch: int, *,
                 num_workers: int = 0) -> Iterator[dict]:
    """Transformed batches with a 0/1 'mask', padded so that every host yields the same count."""
    per_host = math.ceil(len(source) / jax.process_count())
    num_batches = math.ceil(per_host / local_batch)
    ds = host_shard(source).map(transform).batch(local_batch, drop_remainder=False)
    template = None
    for batch in _iterate(ds, num_workers):
        n = len(batch["label"])
        template = template or jax.tree.map(lambda x: np.zeros((local_batch, *x.shape[1:]), x.dtype),
                                            batch)
        batch["mask"] = np.ones(n, np.float32)
        if n < local_batch:
            batch = jax.tree.map(lambda x, t: np.concatenate([x, t[n:]]),  # noqa: B023 (called here)
                                 batch, {**template, "mask": np.zeros(local_batch, np.float32)})
        num_batches -= 1
        yield batch
    for _ in range(num_batches):  # hosts with a shorter shard pad with empty batches
        yield {**template, "mask": np.zeros(local_batch, np.float32)}


def mean_image(source: Sequence, *, crop_size: int = 224, resize: int = 256,
               num_images: int = 10_000, cache_dir: str | None = None,
               num_workers: int = 0, backend: str | None = None) -> np.ndarray:
    """Per-pixel mean (crop, crop, 3) in [0, 1] of centre crops of training images, cached as .npy.

    A fixed random subset of `num_images` (all, if fewer) is averaged: the per-pixel mean of
    1.28M images is settled long before that many. The crops are `backend`'s (as in
    `train_batches`); the cache file of a "fast" mean says so, one of "pil" has the name the
    Pillow-only releases gave it.
    """
    path = None
    if backend in (None, "auto"):
        backend = check_backend(backend)
    if cache_dir:
        name = f"{NAME}_mean_{crop_size}_{resize}_{num_images}_{len(source)}"
        path = os.path.join(os.path.expanduser(cache_dir),
                            f"{name}{'' if backend == 'pil' else f'_{backend}'}.npy")
        if os.path.exists(path):  # (read even where `backend` could not recompute it)
            return np.load(path)
    backend = check_backend(backend)
    import grain  # noqa: PLC0415 (see host_shard)

    ds = grain.MapDataset.source(source).shuffle(seed=0)[:min(num_images, len(source))]
    total, count = np.zeros((crop_size, crop_size, 3), np.float64), 0
    for batch in _iterate(ds.map(CenterCrop(crop_size, resize, backend)).batch(256), num_workers):
        total += batch["image"].astype(np.float64).sum(0)
        count += len(batch["image"])
    mean = (total / count / 255.0).astype(np.float32)
    if path and jax.process_index() == 0:
        try:  # write-then-rename: a concurrent or killed run never sees half a file
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp{os.getpid()}.npy"
            np.save(tmp, mean)
            os.replace(tmp, path)
        except OSError:
            pass  # read-only data dir: recompute next time
    return mean
