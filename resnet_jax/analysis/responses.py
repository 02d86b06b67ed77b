"""Fig 7: standard deviation of each 3x3 conv layer's response over the test set.

A layer's response is the output of the BN right after its 3x3 conv, before the ReLU or the
residual addition (Sec 4.2). In the CIFAR nets those BNs are the stem's `bn1` and every block's
`bn1`/`bn2`; option-B projection BNs (`shortcut/proj_bn`) follow 1x1 convs and are left out. Flax's
`capture_intermediates` records them from the unmodified model, in inference mode (running BN
statistics), as the paper measures a trained net; in a scanned block stack they come stacked per
block and are named per block (models/layout.py).

Definition used here: a layer's std is the population standard deviation of all its response
values pooled over test images, spatial positions and channels, i.e.
sqrt(mean_c var_c + var_c mean_c) from per-channel moments (every channel has the same count).
Per-channel means and variances are kept too, for other summaries.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import flax.traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from resnet_jax.analysis.inspection import module_call_order
from resnet_jax.data.augment import normalize
from resnet_jax.models import CifarResNet, layout
from resnet_jax.models.layers import BatchNorm
from resnet_jax.train.engine import DeviceData

# BNs that follow a 3x3 conv in CifarResNet (stem and BasicBlock); `proj_bn` follows a 1x1 conv.
RESPONSE_NORMS = ("bn1", "bn2")


def is_response_norm(module: nn.Module, method_name: str) -> bool:
    """`capture_intermediates` filter: the BN outputs that are Fig 7 responses."""
    return (method_name == "__call__" and isinstance(module, BatchNorm)
            and module.name in RESPONSE_NORMS)


def expected_num_layers(depth: int) -> int:
    """3x3 conv layers of a 6n+2 net: the stem plus 2 per block, n blocks in each of 3 stages."""
    return 2 * (depth - 2) // 6 * 3 + 1


def capture_responses(model: nn.Module, variables, images: jax.Array) -> dict[str, jax.Array]:
    """{layer path: BN output} for one batch of normalized images, inference mode."""
    if not isinstance(model, CifarResNet):
        raise ValueError(f"Fig 7 responses are defined for the CIFAR nets, not "
                         f"{type(model).__name__}")
    _, state = model.apply(variables, images, capture_intermediates=is_response_norm,
                           mutable=["intermediates"])
    # Inside a scanned block stack the captures are stacked per block, like its parameters.
    flat = flax.traverse_util.flatten_dict(layout.to_per_block(state["intermediates"]), sep="/")
    return {k.removesuffix("/__call__"): v[0] for k, v in flat.items()}


@dataclasses.dataclass(frozen=True)
class LayerResponses:
    """Per-layer response statistics, in network order."""

    names: list[str]
    channel_mean: list[np.ndarray]
    channel_var: list[np.ndarray]
    count: int  # values per channel: test images x positions

    @property
    def std(self) -> np.ndarray:
        """Pooled std per layer over images, positions and channels (the Fig 7 value)."""
        return np.array([np.sqrt(np.mean(v) + np.var(m))
                         for m, v in zip(self.channel_mean, self.channel_var)])

    @property
    def mean_channel_std(self) -> np.ndarray:
        """Alternative summary: mean over channels of each channel's std (~ mean |BN scale|)."""
        return np.array([np.mean(np.sqrt(v)) for v in self.channel_var])


def _combine(a, b):
    """Chan et al.'s parallel update of (count, mean, M2), in float64 on the host."""
    (na, ma, m2a), (nb, mb, m2b) = a, b
    n = na + nb
    delta = mb - ma
    return n, ma + delta * (nb / n), m2a + m2b + delta**2 * (na * nb / n)


def response_moments(model: nn.Module, variables, data: DeviceData, eval_batch_size: int,
                     batch_sharding=None) -> LayerResponses:
    """Per-channel moments of every response over the eval split (padding masked out)."""

    @jax.jit
    def batch_moments(variables, data, i):
        def sl(a):
            return jax.lax.dynamic_slice_in_dim(a, i * eval_batch_size, eval_batch_size)

        images = sl(data.eval_images)
        if batch_sharding is not None:
            images = jax.lax.with_sharding_constraint(images, batch_sharding)
        responses = capture_responses(model, variables,
                                      normalize(images, data.pixel_mean, model.dtype))
        mask = sl(data.eval_mask)
        out = {}
        for name, y in responses.items():
            y = y.astype(jnp.float32)
            w = jnp.broadcast_to(mask[:, None, None, None], y.shape[:3] + (1,))
            count = jnp.sum(w, axis=(0, 1, 2))
            mean = jnp.sum(w * y, axis=(0, 1, 2)) / jnp.maximum(count, 1.0)
            m2 = jnp.sum(w * (y - mean) ** 2, axis=(0, 1, 2))  # centred per batch: no cancellation
            out[name] = (count, mean, m2)
        return out

    num_batches = data.eval_images.shape[0] // eval_batch_size
    totals = None
    for i in range(num_batches):  # one compiled function, one call per batch
        batch = jax.device_get(batch_moments(variables, data, i))
        batch = {k: tuple(np.asarray(x, np.float64) for x in v) for k, v in batch.items()}
        totals = batch if totals is None else {k: _combine(totals[k], batch[k]) for k in totals}
    order = module_call_order(model, variables, data.eval_images.shape[1:])
    names = [name for name in order if name in totals]  # pytrees sort keys: restore network order
    return LayerResponses(
        names=names,
        channel_mean=[totals[k][1] for k in names],
        channel_var=[totals[k][2] / totals[k][0] for k in names],
        count=int(totals[names[0]][0][0]))


def run_responses(run) -> LayerResponses:
    """Fig 7 statistics of a loaded run (`resnet_jax.analysis.load.load_run`) on its eval split."""
    return response_moments(run.engine.model, run.variables, run.data, run.config.run.eval_batch_size,
                            run.engine.batch_sharding)
