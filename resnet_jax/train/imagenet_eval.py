"""ImageNet test modes (Sec 3.4): centre crop, 10-crop, and the fully-convolutional multi-scale test.

Each mode turns an image into views, runs the net on every view with the running BN statistics,
and averages the views' softmax scores; top-1/top-5 errors are taken on the averaged scores.
"""

from __future__ import annotations

import collections
import functools
import os
from typing import Iterable, Iterator, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from resnet_jax import runs
from resnet_jax.configs import from_saved, resolve_image_backend
from resnet_jax.data import imagenet
from resnet_jax.data.imagenet_transforms import CenterCrop, MultiScale, TenCrop, check_backend
from resnet_jax.data.lighting import normalize
from resnet_jax.train import checkpoint
from resnet_jax.train.engine import create_engine, replicate_from_host

MODES = ("center", "ten_crop", "multi_scale")


@functools.partial(jax.jit, static_argnums=0)
def view_scores(model: nn.Module, variables, images: jax.Array, pixel_mean: jax.Array) -> jax.Array:
    """(B, V, H, W, 3) uint8 views -> (B, classes) softmax scores averaged over the V views.

    On a larger input than 224 the net is its own fully-convolutional form: global average pooling
    followed by the (linear) fc equals the fc applied at every position and the scores averaged.
    """
    b, v = images.shape[:2]
    x = normalize(images.reshape(b * v, *images.shape[2:]), pixel_mean, model.dtype)
    logits = model.apply(variables, x)
    return jax.nn.softmax(logits).reshape(b, v, -1).mean(1)


@jax.jit
def error_sums(scores: jax.Array, labels: jax.Array, mask: jax.Array) -> dict:
    """Sums over the masked batch: top-1 and top-5 mistakes and the loss -log(averaged score)."""
    top5 = jax.lax.top_k(scores, 5)[1] if scores.shape[-1] >= 5 else jnp.argsort(-scores)[:, :5]
    top1_wrong = top5[:, 0] != labels
    top5_wrong = ~jnp.any(top5 == labels[:, None], axis=-1)
    nll = -jnp.log(jnp.take_along_axis(scores, labels[:, None], -1)[:, 0] + 1e-12)
    return {"count": mask.sum(), "top1": (top1_wrong * mask).sum(), "top5": (top5_wrong * mask).sum(),
            "loss": (nll * mask).sum()}


def summarize(totals: dict) -> dict:
    n = max(float(totals["count"]), 1.0)
    return {"test_error": float(totals["top1"]) / n, "test_top5_error": float(totals["top5"]) / n,
            "test_loss": float(totals["loss"]) / n, "test_images": int(totals["count"])}


def batch_scores(model: nn.Module, variables, batches: Iterable[dict], pixel_mean: jax.Array,
                 mesh: Mesh) -> Iterator[tuple[jax.Array, jax.Array, jax.Array]]:
    """(view-averaged scores, labels, mask) on the mesh per host batch {'image': (b, [V,] H, W, 3),
    'label', 'mask'}."""
    sharding = NamedSharding(mesh, P("data"))
    for batch in batches:
        images = batch["image"] if batch["image"].ndim == 5 else batch["image"][:, None]
        put = lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x))  # noqa: E731
        yield (view_scores(model, variables, put(images), pixel_mean),
               put(batch["label"].astype(np.int32)), put(batch["mask"]))


def evaluate_batches(model: nn.Module, variables, batches: Iterable[dict], pixel_mean: jax.Array,
                     mesh: Mesh) -> dict:
    """Errors over host batches {'image': (b, [V,] H, W, 3), 'label', 'mask'} split over the mesh."""
    totals = None
    for scores, labels, mask in batch_scores(model, variables, batches, pixel_mean, mesh):
        sums = error_sums(scores, labels, mask)
        totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    return summarize(jax.device_get(totals))


def whole_image_batch(shape: tuple[int, int], batch_size: int, crop_size: int, num_devices: int) -> int:
    """Images per device call at whole-image shape (H, W), each with its flip: as many pixels as
    `batch_size` crops of `crop_size`^2 (the device memory a centre-crop batch takes), at least one
    image per device, and a multiple of the devices."""
    n = max(1, batch_size * crop_size ** 2 // (2 * shape[0] * shape[1]))
    return -(-n // num_devices) * num_devices


def multi_scale_scores(model: nn.Module, variables, source: Sequence, pixel_mean,
                       scales: Sequence[int], num_workers: int = 0, *, batch_size: int = 32,
                       crop_size: int = 224, in_flight: int = 4,
                       backend: str | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
    """(index in this host's shard, label, scores averaged over `scales` and flips) per image, in
    the order images complete.

    Each image is decoded once (`MultiScale`); its view at each scale joins the queue of its
    (scale, bucketed shape), and a queue runs on this host's devices as one batch when it holds
    `whole_image_batch` images (the last, partial ones padded). Up to `in_flight` batches are left
    running on the devices while the host prepares the next; an image's per-scale scores are summed
    in scale order once all have come back. `backend`: the transforms' (imagenet_transforms).
    """
    devices = jax.local_devices()
    mesh = Mesh(np.array(devices), ("data",))
    data, replicated = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
    variables = jax.device_put(jax.device_get(variables), replicated)
    pixel_mean = jax.device_put(np.asarray(jax.device_get(pixel_mean)), replicated)
    queues: dict[tuple[int, tuple[int, int]], list] = {}
    running: collections.deque = collections.deque()
    pending: dict[int, list] = {}  # index -> [label, one score row per scale (None until back)]

    def launch(key):
        entries = queues.pop(key)
        n = whole_image_batch(key[1], batch_size, crop_size, len(devices))
        images = np.zeros((n, *entries[0][1].shape), np.uint8)
        for i, (_, views) in enumerate(entries):
            images[i] = views
        scores = view_scores(model, variables, jax.device_put(images, data), pixel_mean)
        running.append((key[0], [index for index, _ in entries], scores))

    def collect():
        scale, indices, scores = running.popleft()
        for index, row in zip(indices, np.asarray(jax.device_get(scores))):
            pending[index][1][scale] = row
            rows = pending[index][1]
            if all(r is not None for r in rows):
                label = pending.pop(index)[0]
                yield index, label, sum(rows[1:], rows[0]) / len(rows)

    transform = MultiScale(tuple(scales), check_backend(backend))
    stream = imagenet._iterate(imagenet.host_shard(source).map(transform), num_workers)
    for index, record in enumerate(stream):
        pending[index] = [int(record["label"]), [None] * len(scales)]
        for scale, views in enumerate(record["images"]):
            key = (scale, views.shape[1:3])
            queues.setdefault(key, []).append((index, views))
            if len(queues[key]) == whole_image_batch(key[1], batch_size, crop_size, len(devices)):
                launch(key)
        while len(running) > in_flight:
            yield from collect()
    for key in list(queues):
        launch(key)
    while running:
        yield from collect()


def evaluate_multi_scale(model: nn.Module, variables, source: Sequence, pixel_mean: np.ndarray,
                         scales: Sequence[int], num_workers: int = 0, *, batch_size: int = 32,
                         crop_size: int = 224, backend: str | None = None) -> dict:
    """Average each image's scores over whole-image views at every scale (and their flips).

    Images keep their own aspect ratio, so shapes differ from image to image: each host batches
    its shard by bucketed shape (`multi_scale_scores`, `batch_size` is this host's) on its local
    devices, and the error counts are summed over hosts at the end.
    """
    totals = {"count": 0.0, "top1": 0.0, "top5": 0.0, "loss": 0.0}
    block = max(batch_size, 1)
    done: list[tuple[int, np.ndarray]] = []

    def count():  # error sums of the finished images, `block` at a time (one compile)
        labels = np.zeros(block, np.int32)
        scores = np.full((block, done[0][1].shape[-1]), 1.0 / done[0][1].shape[-1], np.float32)
        for i, (label, row) in enumerate(done):
            labels[i], scores[i] = label, row
        sums = error_sums(scores, labels, (np.arange(block) < len(done)).astype(np.float32))
        done.clear()
        return {k: totals[k] + float(sums[k]) for k in totals}

    for _, label, scores in multi_scale_scores(model, variables, source, pixel_mean, scales,
                                               num_workers, batch_size=batch_size,
                                               crop_size=crop_size, backend=backend):
        done.append((label, scores))
        if len(done) == block:
            totals = count()
    if done:
        totals = count()
    if jax.process_count() > 1:
        summed = multihost_utils.process_allgather(np.asarray([totals[k] for k in totals])).sum(0)
        totals = dict(zip(totals, summed))
    return summarize(totals)


def image_scores(mode: str, model: nn.Module, variables, source: Sequence, pixel_mean, mesh: Mesh, *,
                 batch_size: int, crop_size: int = 224, resize: int = 256,
                 scales: Sequence[int] = (224, 256, 384, 480, 640), num_workers: int = 0,
                 backend: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(labels (N,), scores (N, classes)) of every image of `source` in its order, each row the
    softmax averaged over the mode's views exactly as `evaluate` scores it (what an ensemble
    averages over its members). One process: the rows of all images come back to this host."""
    if jax.process_count() > 1:
        raise ValueError("per-image scores are gathered on one host: run them in one process")
    if mode == "multi_scale":
        found = {index: (label, row) for index, label, row in multi_scale_scores(
            model, variables, source, pixel_mean, scales, num_workers, batch_size=batch_size,
            crop_size=crop_size, backend=backend)}
        labels, rows = zip(*(found[i] for i in range(len(found))))
        return np.asarray(labels, np.int32), np.stack(rows)
    if mode not in MODES:
        raise ValueError(f"unknown evaluation mode {mode!r}: expected one of {MODES}")
    view = CenterCrop if mode == "center" else TenCrop
    batches = imagenet.eval_batches(source, view(crop_size, resize, check_backend(backend)), batch_size,
                                    num_workers=num_workers)
    labels, rows = [], []
    for scores, label, mask in batch_scores(model, variables, batches, pixel_mean, mesh):
        keep = np.asarray(jax.device_get(mask)) > 0  # padding of the last batch
        labels.append(np.asarray(jax.device_get(label))[keep])
        rows.append(np.asarray(jax.device_get(scores))[keep])
    return np.concatenate(labels), np.concatenate(rows)


def evaluate(mode: str, model: nn.Module, variables, source: Sequence, pixel_mean, mesh: Mesh, *,
             batch_size: int, crop_size: int = 224, resize: int = 256,
             scales: Sequence[int] = (224, 256, 384, 480, 640), num_workers: int = 0,
             backend: str | None = None) -> dict:
    """One of MODES over a split; `batch_size` is global (images, not views); `backend`: the
    transforms' (imagenet_transforms; a run's is its config's `image_backend`)."""
    if mode == "multi_scale":
        return evaluate_multi_scale(model, variables, source, pixel_mean, scales, num_workers,
                                    batch_size=batch_size // jax.process_count(), crop_size=crop_size,
                                    backend=backend)
    if mode not in MODES:
        raise ValueError(f"unknown evaluation mode {mode!r}: expected one of {MODES}")
    view = CenterCrop if mode == "center" else TenCrop
    transform = view(crop_size, resize, check_backend(backend))
    local = batch_size // jax.process_count()
    batches = imagenet.eval_batches(source, transform, local, num_workers=num_workers)
    return evaluate_batches(model, variables, batches, pixel_mean, mesh)


def mean_image(config, train_images: Sequence, workdir: str) -> np.ndarray:
    """The per-pixel training mean a run subtracts (cached next to the data, or in `workdir`),
    of crops made by the run's `image_backend`."""
    return imagenet.mean_image(train_images, crop_size=config.data.image_size, resize=config.data.eval_resize,
                               num_images=config.data.mean_images,
                               cache_dir=config.data.mean_cache_dir or config.data.data_dir or workdir,
                               num_workers=config.data.num_workers, backend=config.data.image_backend)


def recorded_image_backend(config, workdir: str) -> str:
    """The backend to test the run in `workdir` with: `config.data.image_backend` if named; for "auto",
    the one the run recorded in its config.json (train and test see the same resampling; a run
    written before the field: Pillow's), else this machine's. ConfigError if it cannot run here."""
    if config.data.image_backend == "auto" and os.path.exists(runs.config_path(workdir)):
        config = from_saved(runs.read_json(runs.config_path(workdir)))
    return resolve_image_backend(config)


def evaluate_checkpoint(config, workdir: str, mode: str) -> dict | None:
    """Test the newest checkpoint of the ImageNet run in `workdir` with `mode` (one of MODES) on
    `config.data.eval_split`, with the run's image backend (`recorded_image_backend`); its metrics and
    step, or None if there is no checkpoint."""
    if not runs.has_checkpoints(workdir):
        return None
    config = config.copy_and_resolve_references()
    config.data.image_backend = recorded_image_backend(config, workdir)
    engine = create_engine(config, 0, imagenet.NUM_CLASSES)
    mngr = checkpoint.manager(workdir, read_only=True)
    state = checkpoint.restore_latest(mngr, engine.init_state((config.data.image_size,) * 2 + (3,)))
    mngr.close()
    if state is None:
        return None
    mean = mean_image(config, imagenet.open_split("train", config.data.data_dir), workdir)
    metrics = evaluate(
        mode, engine.model, {"params": state.params, "batch_stats": state.batch_stats},
        imagenet.open_split(config.data.eval_split, config.data.data_dir),
        replicate_from_host(mean, engine.mesh), engine.mesh, batch_size=config.run.eval_batch_size,
        crop_size=config.data.image_size, resize=config.data.eval_resize,
        scales=tuple(config.data.test_scales), num_workers=config.data.num_workers,
        backend=config.data.image_backend)
    return {**metrics, "step": int(jax.device_get(state.step)), "image_backend": config.data.image_backend}
