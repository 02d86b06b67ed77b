"""ImageNet test modes (Sec 3.4): centre crop, 10-crop, and the fully-convolutional multi-scale test.

Each mode turns an image into views, runs the net on every view with the running BN statistics,
and averages the views' softmax scores; top-1/top-5 errors are taken on the averaged scores.
"""

from __future__ import annotations

import functools
from typing import Iterable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from resnet_jax import runs
from resnet_jax.data import imagenet
from resnet_jax.data.imagenet_transforms import CenterCrop, FullImage, TenCrop
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


def evaluate_batches(model: nn.Module, variables, batches: Iterable[dict], pixel_mean: jax.Array,
                     mesh: Mesh) -> dict:
    """Errors over host batches {'image': (b, [V,] H, W, 3), 'label', 'mask'} split over the mesh."""
    sharding = NamedSharding(mesh, P("data"))
    totals = None
    for batch in batches:
        images = batch["image"] if batch["image"].ndim == 5 else batch["image"][:, None]
        put = lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x))  # noqa: E731
        scores = view_scores(model, variables, put(images), pixel_mean)
        sums = error_sums(scores, put(batch["label"].astype(np.int32)), put(batch["mask"]))
        totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    return summarize(jax.device_get(totals))


def evaluate_multi_scale(model: nn.Module, variables, source: Sequence, pixel_mean: np.ndarray,
                         scales: Sequence[int], num_workers: int = 0) -> dict:
    """Average each image's scores over whole-image views at every scale (and their flips).

    Images keep their own aspect ratio, so shapes differ from image to image: each host evaluates
    its shard one image at a time on its first local device, and the error counts are summed over
    hosts at the end.
    """
    device = jax.local_devices()[0]
    variables = jax.device_put(jax.device_get(variables), device)
    pixel_mean = jax.device_put(np.asarray(jax.device_get(pixel_mean)), device)
    streams = [imagenet._iterate(imagenet.host_shard(source).map(FullImage(s)), num_workers)
               for s in scales]
    totals = {"count": 0.0, "top1": 0.0, "top5": 0.0, "loss": 0.0}
    for views in zip(*streams):
        label = views[0]["label"]
        scores = sum(view_scores(model, variables, jax.device_put(v["image"][None], device),
                                 pixel_mean) for v in views) / len(views)
        sums = error_sums(scores, jnp.asarray([label], jnp.int32), jnp.ones(1, jnp.float32))
        totals = {k: totals[k] + float(sums[k]) for k in totals}
    if jax.process_count() > 1:
        summed = multihost_utils.process_allgather(np.asarray([totals[k] for k in totals])).sum(0)
        totals = dict(zip(totals, summed))
    return summarize(totals)


def evaluate(mode: str, model: nn.Module, variables, source: Sequence, pixel_mean, mesh: Mesh, *,
             batch_size: int, crop_size: int = 224, resize: int = 256,
             scales: Sequence[int] = (224, 256, 384, 480, 640), num_workers: int = 0) -> dict:
    """One of MODES over a split; `batch_size` is global (images, not views)."""
    if mode == "multi_scale":
        return evaluate_multi_scale(model, variables, source, pixel_mean, scales, num_workers)
    if mode not in MODES:
        raise ValueError(f"unknown evaluation mode {mode!r}: expected one of {MODES}")
    transform = CenterCrop(crop_size, resize) if mode == "center" else TenCrop(crop_size, resize)
    local = batch_size // jax.process_count()
    batches = imagenet.eval_batches(source, transform, local, num_workers=num_workers)
    return evaluate_batches(model, variables, batches, pixel_mean, mesh)


def mean_image(config, train_images: Sequence, workdir: str) -> np.ndarray:
    """The per-pixel training mean a run subtracts (cached next to the data, or in `workdir`)."""
    return imagenet.mean_image(train_images, crop_size=config.image_size, resize=config.eval_resize,
                               num_images=config.mean_images,
                               cache_dir=config.mean_cache_dir or config.data_dir or workdir,
                               num_workers=config.num_workers)


def evaluate_checkpoint(config, workdir: str, mode: str) -> dict | None:
    """Test the newest checkpoint of the ImageNet run in `workdir` with `mode` (one of MODES) on
    `config.eval_split`; its metrics and step, or None if there is no checkpoint."""
    if not runs.has_checkpoints(workdir):
        return None
    engine = create_engine(config, 0, imagenet.NUM_CLASSES)
    mngr = checkpoint.manager(workdir, read_only=True)
    state = checkpoint.restore_latest(mngr, engine.init_state((config.image_size,) * 2 + (3,)))
    mngr.close()
    if state is None:
        return None
    mean = mean_image(config, imagenet.open_split("train", config.data_dir), workdir)
    metrics = evaluate(
        mode, engine.model, {"params": state.params, "batch_stats": state.batch_stats},
        imagenet.open_split(config.eval_split, config.data_dir), replicate_from_host(mean, engine.mesh),
        engine.mesh, batch_size=config.eval_batch_size, crop_size=config.image_size,
        resize=config.eval_resize, scales=tuple(config.test_scales), num_workers=config.num_workers)
    return {**metrics, "step": int(jax.device_get(state.step))}
