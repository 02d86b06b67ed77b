"""Where the training loop's batches come from: device-resident arrays or host-fed ImageNet batches.

Small datasets (CIFAR-10, digits) live on the devices and are gathered and augmented there
(`DeviceFeed`, the engine's `train_chunk`). ImageNet is decoded and augmented by grain workers on
each host (`HostFeed`): a chunk of batches is stacked, placed on the mesh's data axis with
`jax.make_array_from_process_local_data`, and scanned through the same `Engine.train_step`.
Both expose `train_chunk(state, n)` and `evaluate(state)`, so one loop serves every experiment.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Sequence

import jax
import ml_collections
import numpy as np

from resnet_jax import runs
from resnet_jax.configs import HOST_FED
from resnet_jax.data import imagenet, load_dataset
from resnet_jax.data.base import ArrayDataset
from resnet_jax.data.lighting import normalize
from resnet_jax.train import imagenet_eval
from resnet_jax.train.distributed import global_batch_from_process_local
from resnet_jax.train.engine import Engine, EpochOrders, TrainState, put_dataset, replicate_from_host


@dataclasses.dataclass(frozen=True)
class HostDataset:
    """Records read lazily from disk (`train_images`/`eval_images` are random-access sources)."""

    name: str
    train_images: Sequence[dict]
    eval_images: Sequence[dict]
    num_classes: int
    image_shape: tuple[int, int, int]
    eval_split: str
    crop_padding: int = 0  # the engine crops nothing: host-fed crops come from the input pipeline


def load(config: ml_collections.ConfigDict) -> ArrayDataset | HostDataset:
    if config.dataset not in HOST_FED:
        return load_dataset(config.dataset, config.eval_split, config.data_dir)
    size = config.image_size
    return HostDataset(imagenet.NAME, imagenet.open_split("train", config.data_dir),
                       imagenet.open_split(config.eval_split, config.data_dir),
                       imagenet.NUM_CLASSES, (size, size, 3), config.eval_split)


def feed(dataset, engine: Engine, eval_batch: int, workdir: str):
    if isinstance(dataset, HostDataset):
        return HostFeed(engine, dataset, workdir)
    return DeviceFeed(engine, put_dataset(dataset, engine.mesh, eval_batch))


@dataclasses.dataclass
class DeviceFeed:
    engine: Engine
    data: object
    orders: EpochOrders | None = None  # epoch shuffles, cached on the host (from the first chunk)

    def train_chunk(self, state: TrainState, num_steps: int):
        if self.orders is None:
            seed, step = jax.device_get((state.seed, state.step))  # replicated: readable anywhere
            self.orders = EpochOrders(self.engine, seed, step, self.data.train_images.shape[0],
                                      max(num_steps, self.engine.config.steps_per_call))
        return self.engine.train_chunk(state, self.data, num_steps, self.orders.next_chunk(num_steps))

    def evaluate(self, state: TrainState) -> dict:
        return self.engine.evaluate(state, self.data)


@dataclasses.dataclass
class PlateauRule:
    """lr /10 when the validation error has not improved by `min_delta` for `patience` evaluations."""

    patience: int
    min_delta: float
    factor: float
    max_drops: int
    best: float = math.inf
    waited: int = 0
    drops: int = 0

    @property
    def scale(self) -> float:
        return self.factor ** self.drops

    def update(self, error: float) -> None:
        if error < self.best - self.min_delta:
            self.best, self.waited = error, 0
            return
        self.waited += 1
        if self.waited >= self.patience and self.drops < self.max_drops:
            self.drops, self.waited = self.drops + 1, 0


@functools.partial(jax.jit, static_argnums=0, donate_argnums=1)
def train_on_batches(engine: Engine, state: TrainState, images: jax.Array, labels: jax.Array,
                     pixel_mean: jax.Array, lr_scale: jax.Array):
    """Scan `Engine.train_step` over stacked host batches (n, B, H, W, 3) uint8 / (n, B)."""

    def body(state, batch):
        key = jax.random.fold_in(engine.key(state.seed, 3), state.step)  # lighting: (seed, step)
        x = normalize(batch[0], pixel_mean, engine.model.dtype, key, engine.config.pca_lighting)
        return engine.train_step(state, x, batch[1], lr_scale)

    if images.shape[0] == 1:  # no loop: XLA:CPU runs convs inside a while loop several times slower
        state, metrics = body(state, (images[0], labels[0]))
        return state, jax.tree.map(lambda m: m[None], metrics)
    return jax.lax.scan(body, state, (images, labels))


class HostFeed:
    """Grain batches from this host's shard; the iterator starts lazily at the state's step."""

    def __init__(self, engine: Engine, dataset: HostDataset, workdir: str):
        cfg = engine.config
        self.engine, self.dataset, self.workdir = engine, dataset, workdir
        mean = imagenet.mean_image(dataset.train_images, crop_size=cfg.image_size,
                                   resize=cfg.eval_resize, num_images=cfg.mean_images,
                                   cache_dir=cfg.mean_cache_dir or cfg.data_dir or workdir,
                                   num_workers=cfg.num_workers)
        self.pixel_mean = replicate_from_host(mean, engine.mesh)
        self.local_batch = cfg.batch_size // jax.process_count()
        self.plateau = PlateauRule(cfg.plateau_patience, cfg.plateau_min_delta, cfg.lr_decay,
                                   cfg.plateau_max_drops)
        self.batches = None

    def _start(self, step: int, seed: int) -> None:
        cfg = self.engine.config
        self.batches = imagenet.train_batches(
            self.dataset.train_images, self.local_batch, seed=seed, start_step=step,
            crop_size=cfg.image_size, scale_range=tuple(cfg.scale_range),
            num_workers=cfg.num_workers)
        if cfg.lr_schedule == "plateau":  # replay the validation errors logged before a restart
            for record in self._logged_records(step):
                self.plateau.update(record["test_error"])

    def _logged_records(self, up_to_step: int) -> list[dict]:
        return [r for r in runs.read_metrics(self.workdir)
                if "test_error" in r and r["step"] <= up_to_step]

    def lr_scale(self) -> float:
        return self.plateau.scale if self.engine.config.lr_schedule == "plateau" else 1.0

    def train_chunk(self, state: TrainState, num_steps: int):
        if self.batches is None:
            step, seed = jax.device_get((state.step, state.seed))
            self._start(int(step), int(seed))
        chunk = [next(self.batches) for _ in range(num_steps)]
        put = lambda x: global_batch_from_process_local(x, self.engine.mesh, batch_axis=1)  # noqa: E731
        images = put(np.stack([b["image"] for b in chunk]))
        labels = put(np.stack([b["label"] for b in chunk]).astype(np.int32))
        return train_on_batches(self.engine, state, images, labels, self.pixel_mean,
                                np.float32(self.lr_scale()))

    def evaluate(self, state: TrainState) -> dict:
        """Centre-crop validation error (the curves of Fig 4); feeds the plateau rule."""
        cfg = self.engine.config
        source = self.dataset.eval_images
        if cfg.max_eval_images:
            source = imagenet.Head(source, cfg.max_eval_images)
        metrics = imagenet_eval.evaluate(
            "center", self.engine.model, {"params": state.params, "batch_stats": state.batch_stats},
            source, self.pixel_mean, self.engine.mesh, batch_size=cfg.eval_batch_size,
            crop_size=cfg.image_size, resize=cfg.eval_resize, num_workers=cfg.num_workers)
        self.plateau.update(metrics["test_error"])
        return metrics

