"""Where the training loop's batches come from: device-resident arrays or host-fed ImageNet batches.

Small datasets (CIFAR-10, digits) live on the devices and are gathered and augmented there
(`DeviceFeed`, the engine's `train_chunk`; `seeds.SeedsFeed` for several seeds at once). ImageNet is
decoded and augmented by grain workers on each host (`HostFeed`): a chunk of batches is stacked,
placed on the mesh's data axis with `jax.make_array_from_process_local_data`, and scanned through the
same `Engine.train_step`. All are a `Feed`, so one loop serves every experiment.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Protocol

import jax
import numpy as np
from absl import logging

from resnet_jax.data import HostDataset, imagenet
from resnet_jax.data.lighting import normalize
from resnet_jax.train import imagenet_eval
from resnet_jax.train.distributed import global_batch_from_process_local
from resnet_jax.train.engine import (Engine, EpochOrders, TrainState, put_dataset, replicate_from_host,
                                    run_steps)
from resnet_jax.train.schedule import PlateauRule


class Feed(Protocol):
    """What the training loop trains and evaluates through."""

    def train_chunk(self, state: TrainState, num_steps: int) -> tuple[TrainState, dict]:
        """`num_steps` training steps from `state`; their metrics stacked per step."""

    def evaluate(self, state: TrainState) -> dict:
        """Metrics (test_error, test_loss, ...) of `state` on the eval split; changes nothing."""


def feed(dataset, engine: Engine, eval_batch: int, workdir: str,
         plateau: PlateauRule | None = None) -> Feed:
    """The feed of a single-seed run; host-fed runs read their lr scale from `plateau` if given."""
    if isinstance(dataset, HostDataset):
        return HostFeed(engine, dataset, workdir, plateau)
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
                                      max(num_steps, self.engine.config.run.steps_per_call))
        return self.engine.train_chunk(state, self.data, num_steps, self.orders.next_chunk(num_steps))

    def evaluate(self, state: TrainState) -> dict:
        return self.engine.evaluate(state, self.data)


@functools.partial(jax.jit, static_argnums=0, donate_argnums=1)
def train_on_batches(engine: Engine, state: TrainState, images: jax.Array, labels: jax.Array,
                     pixel_mean: jax.Array, lr_scale: jax.Array):
    """Scan `Engine.train_step` over stacked host batches (n, B, H, W, 3) uint8 / (n, B)."""

    def body(state, batch):
        key = jax.random.fold_in(engine.key(state.seed, 3), state.step)  # lighting: (seed, step)
        x = normalize(batch[0], pixel_mean, engine.model.dtype, key, engine.config.data.pca_lighting)
        return engine.train_step(state, x, batch[1], lr_scale)

    return run_steps(body, state, (images, labels), images.shape[0])


@dataclasses.dataclass
class InputMonitor:
    """Says once (a log warning) when the host's batches arrive slower than the devices use them.

    Per chunk the feed reports its images and whether the devices had already finished the
    previous chunk when its batches came (then they had idled, waiting for input). When most chunks
    of a window find the devices idle, the run is input bound: the devices' own rate is measured on
    one chunk (waited for, at no cost: nothing else is queued), and the warning names the grain
    workers that would feed that rate at the workers' present rate each."""

    num_workers: int
    window: int = 20  # chunks per verdict, after the first `skip` (compiling)
    skip: int = 2
    idle_fraction: float = 0.5
    warned: bool = False
    chunks: int = 0
    in_window: int = 0
    idle: int = 0
    images: int = 0
    started: float = 0.0

    def arrived(self, images: int, devices_idle: bool) -> bool:
        """Count a chunk whose batches came now; True when this chunk's device time should be
        measured (`measured`) because the window says input bound."""
        self.chunks += 1
        if self.warned or self.chunks <= self.skip:
            self.started = time.perf_counter()
            return False
        self.in_window += 1
        self.idle += devices_idle
        self.images += images
        if self.in_window < self.window:
            return False
        if self.idle >= self.idle_fraction * self.window:
            return True
        self.in_window = self.idle = self.images = 0  # fed in time: a new window
        self.started = time.perf_counter()
        return False

    def measured(self, images: int, device_s: float) -> str:
        """The warning for a window found input bound, with one chunk's device time."""
        self.warned = True
        feed = self.images / max(time.perf_counter() - self.started - device_s, 1e-9)
        device = images / max(device_s, 1e-9)
        workers = max(self.num_workers, 1)
        needed = math.ceil(workers * device / feed)
        message = (f"input bound: the host feeds {feed:,.0f} images/s and the devices take "
                   f"{device:,.0f}; about {needed} grain workers (num_workers, now {self.num_workers})"
                   f" would keep up, if the host has the cores (resnet-jax bench --parts pipeline)")
        logging.warning(message)
        return message


class HostFeed:
    """Grain batches from this host's shard; the iterator starts lazily at the state's step. The
    mean, training crops and validation crops are all made by the config's `image_backend`.

    The lr scale comes from `plateau` (the loop's PlateauRule), read at every chunk; 1 without."""

    def __init__(self, engine: Engine, dataset: HostDataset, workdir: str,
                 plateau: PlateauRule | None = None):
        cfg = engine.config
        self.engine, self.dataset, self.plateau = engine, dataset, plateau
        self.pixel_mean = replicate_from_host(
            imagenet_eval.mean_image(cfg, dataset.train_images, workdir), engine.mesh)
        self.local_batch = cfg.run.batch_size // jax.process_count()
        self.batches = None
        self.monitor = InputMonitor(imagenet.worker_count(cfg.data.num_workers))
        self.last = None  # the previous chunk's metrics: ready once the devices finished it

    def lr_scale(self) -> float:
        return 1.0 if self.plateau is None else self.plateau.scale

    def train_chunk(self, state: TrainState, num_steps: int):
        if self.batches is None:
            step, seed = jax.device_get((state.step, state.seed))
            cfg = self.engine.config
            self.batches = imagenet.train_batches(
                self.dataset.train_images, self.local_batch, seed=int(seed), start_step=int(step),
                crop_size=cfg.data.image_size, scale_range=tuple(cfg.data.scale_range),
                num_workers=cfg.data.num_workers, backend=cfg.data.image_backend)
        chunk = [next(self.batches) for _ in range(num_steps)]
        idle = self.last is not None and all(x.is_ready() for x in jax.tree.leaves(self.last))
        measure = self.monitor.arrived(num_steps * self.local_batch, idle)
        put = lambda x: global_batch_from_process_local(x, self.engine.mesh, batch_axis=1)  # noqa: E731
        images = put(np.stack([b["image"] for b in chunk]))
        labels = put(np.stack([b["label"] for b in chunk]).astype(np.int32))
        t = time.perf_counter()
        state, metrics = train_on_batches(self.engine, state, images, labels, self.pixel_mean,
                                          np.float32(self.lr_scale()))
        if measure:
            jax.block_until_ready(metrics)
            self.monitor.measured(num_steps * self.local_batch, time.perf_counter() - t)
        self.last = metrics
        return state, metrics

    def evaluate(self, state: TrainState) -> dict:
        """Centre-crop validation error (the curves of Fig 4)."""
        cfg = self.engine.config
        source = self.dataset.eval_images
        if cfg.data.max_eval_images:
            source = imagenet.Head(source, cfg.data.max_eval_images)
        return imagenet_eval.evaluate(
            "center", self.engine.model, {"params": state.params, "batch_stats": state.batch_stats},
            source, self.pixel_mean, self.engine.mesh, batch_size=cfg.run.eval_batch_size,
            crop_size=cfg.data.image_size, resize=cfg.data.eval_resize, num_workers=cfg.data.num_workers,
            backend=cfg.data.image_backend)
