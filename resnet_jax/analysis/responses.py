"""Fig 7: standard deviation of each 3x3 conv layer's response over the test set.

"The responses are the outputs of each 3x3 layer, after BN and before other nonlinearity
(ReLU/addition)" (Sec 4.2). Which module's output that is depends on the unit (RESPONSE_OF_3X3):

- the paper's nets (plain and basic residual units): the BN right after each 3x3 conv, i.e. the
  stem's `bn1` and every block's `bn1`/`bn2`; option-B projection BNs follow 1x1 convs and are left
  out. Post-activation bottleneck units: the BN after their one 3x3 conv (`bn2`).
- pre-activation units (1603.05027, which draws no Fig 7): BN comes *before* each conv, so we
  define a 3x3 conv's response as its output through the BN that directly follows it where one does
  (the stem conv -> the first unit's `bn1`; a unit's first 3x3 conv -> its `bn2`), and as the conv's
  own output where it feeds the addition with no BN between (a basic unit's `conv2`: the residual
  function's output, before the addition). Such a curve mixes BN outputs with raw residual outputs;
  the JSON says so (`response_definition`).

Flax's `capture_intermediates` records them from the unmodified model, in inference mode (running
BN statistics), as the paper measures a trained net; in a scanned block stack they come stacked per
block and are named per block (models/layout.py). The count of responses is checked against the
3x3 kernels in the parameters, so a unit missing from RESPONSE_OF_3X3 is refused, never drawn wrong.

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

from resnet_jax.data.augment import normalize
from resnet_jax.models import BLOCKS, CifarResNet, layout
from resnet_jax.train.engine import DeviceData

# blocks.BLOCKS kind -> the submodule of a unit whose output is each 3x3 conv's response, in order.
RESPONSE_OF_3X3 = {
    "basic": ("bn1", "bn2"),
    "plain": ("bn1", "bn2"),
    "bottleneck": ("bn2",),
    "plain_bottleneck": ("bn2",),
    "preact_basic": ("bn2", "conv2"),
    "preact_bottleneck": ("bn3",),
}
POST_ACTIVATION = "BN output after each 3x3 conv (before ReLU/addition)"
PRE_ACTIVATION = ("pre-activation units: each 3x3 conv's output through the BN directly after it "
                  "(the stem conv: the first unit's bn1; a unit's first 3x3 conv: its next BN), and "
                  "the raw output of a conv that feeds the addition with no BN (the residual "
                  "function's output, before the addition)")


def response_definition(block: str) -> str:
    """What a response of a net of `block` units is (for the JSON)."""
    return PRE_ACTIVATION if BLOCKS[block].preact else POST_ACTIVATION


def response_layers(model: CifarResNet) -> list[str]:
    """Per-block paths of the modules whose outputs are the 3x3 layers' responses, in network
    order; ValueError for a net Fig 7 is not defined for here."""
    if not isinstance(model, CifarResNet):
        raise ValueError(f"Fig 7 responses are defined for the CIFAR nets, not {type(model).__name__}")
    if model.block not in RESPONSE_OF_3X3:
        raise ValueError(f"Fig 7 responses are not defined for {model.block!r} units")
    # the stem conv (3x3): its BN-ReLU, or in a pre-activation net the first unit's BN (its input
    # is the stem conv's output, before any addition)
    names = ["stage1_block1/bn1" if BLOCKS[model.block].preact else "bn1"]
    for stage, count in enumerate(model.stage_sizes):
        for block in range(count):
            unit = layout.block_name(f"stage{stage + 1}", block + 1)
            names += [f"{unit}/{m}" for m in RESPONSE_OF_3X3[model.block]]
    return names


def num_3x3_convs(params) -> int:
    """3x3 conv kernels in a parameter tree (either layout)."""
    per_block = layout.to_per_block(params)
    return sum(1 for p, k in jax.tree_util.tree_flatten_with_path(per_block)[0]
               if p[-1].key == "kernel" and k.ndim == 4 and k.shape[:2] == (3, 3))


def _apply_capturing(model: nn.Module, variables, images: jax.Array):
    """(logits, {layer path: response}) for one batch of normalized images, inference mode."""
    names = response_layers(model)
    leaves = {n.rsplit("/", 1)[-1] for n in names}
    logits, state = model.apply(variables, images, mutable=["intermediates"],
                                capture_intermediates=lambda m, method: method == "__call__"
                                and m.name in leaves)
    # Inside a scanned block stack the captures are stacked per block, like its parameters.
    flat = flax.traverse_util.flatten_dict(layout.to_per_block(state["intermediates"]), sep="/")
    flat = {k.removesuffix("/__call__"): v[0] for k, v in flat.items()}
    return logits, {n: flat[n] for n in names}


def capture_responses(model: nn.Module, variables, images: jax.Array) -> dict[str, jax.Array]:
    """{layer path: response} for one batch of normalized images, inference mode, network order."""
    return _apply_capturing(model, variables, images)[1]


@dataclasses.dataclass(frozen=True)
class LayerResponses:
    """Per-layer response statistics, in network order."""

    names: list[str]
    channel_mean: list[np.ndarray]
    channel_var: list[np.ndarray]
    count: int  # values per channel: test images x positions
    num_images: int = 0
    errors: int = 0  # of those images misclassified, by the same forward pass

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
    """Per-channel moments of every response over the eval split (padding masked out), and the
    net's errors on those images from the same forward pass. ValueError if the responses found are
    not one per 3x3 conv of the net."""
    names = response_layers(model)
    if len(names) != num_3x3_convs(variables["params"]):
        raise ValueError(f"found {len(names)} responses for {num_3x3_convs(variables['params'])} 3x3 "
                         f"convs in a net of {model.block!r} units")

    @jax.jit
    def batch_moments(variables, data, i):
        def sl(a):
            return jax.lax.dynamic_slice_in_dim(a, i * eval_batch_size, eval_batch_size)

        images = sl(data.eval_images)
        if batch_sharding is not None:
            images = jax.lax.with_sharding_constraint(images, batch_sharding)
        logits, responses = _apply_capturing(model, variables,
                                             normalize(images, data.pixel_mean, model.dtype))
        mask = sl(data.eval_mask)
        wrong = jnp.sum(mask * (jnp.argmax(logits, -1) != sl(data.eval_labels)))
        out = {}
        for name, y in responses.items():
            y = y.astype(jnp.float32)
            w = jnp.broadcast_to(mask[:, None, None, None], y.shape[:3] + (1,))
            count = jnp.sum(w, axis=(0, 1, 2))
            mean = jnp.sum(w * y, axis=(0, 1, 2)) / jnp.maximum(count, 1.0)
            m2 = jnp.sum(w * (y - mean) ** 2, axis=(0, 1, 2))  # centred per batch: no cancellation
            out[name] = (count, mean, m2)
        return out, jnp.sum(mask), wrong

    num_batches = data.eval_images.shape[0] // eval_batch_size
    totals, num_images, errors = None, 0, 0
    for i in range(num_batches):  # one compiled function, one call per batch
        batch, n, wrong = jax.device_get(batch_moments(variables, data, i))
        batch = {k: tuple(np.asarray(x, np.float64) for x in v) for k, v in batch.items()}
        totals = batch if totals is None else {k: _combine(totals[k], batch[k]) for k in totals}
        num_images, errors = num_images + int(n), errors + int(wrong)
    return LayerResponses(
        names=names,
        channel_mean=[totals[k][1] for k in names],
        channel_var=[totals[k][2] / totals[k][0] for k in names],
        count=int(totals[names[0]][0][0]), num_images=num_images, errors=errors)


def run_responses(run) -> LayerResponses:
    """Fig 7 statistics of a loaded run (`resnet_jax.analysis.load.load_run`) on its eval split."""
    return response_moments(run.engine.model, run.variables, run.data, run.config.run.eval_batch_size,
                            run.engine.batch_sharding)
