"""Looking inside an imported released model (or any ImageNet run) without its dataset: conv1's
filters as images, filter norms per stage, and layer responses on a few images
(notebooks/released_model.ipynb)."""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import flax.traverse_util
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image

from resnet_jax.analysis.inspection import filter_norms, module_call_order
from resnet_jax.analysis.load import RunError, read_config, restore_state
from resnet_jax.data.lighting import normalize
from resnet_jax.models import layout
from resnet_jax.models.imagenet import INPUT_CONVENTIONS
from resnet_jax.models.layers import BatchNorm


@dataclasses.dataclass(frozen=True)
class Weights:
    workdir: str
    config: ml_collections.ConfigDict
    model: nn.Module
    variables: dict
    input_mean: np.ndarray  # (H, W, 3) RGB in [0, 1], subtracted from image/255


def load_weights(workdir: str) -> Weights:
    """An ImageNet run folder's net, newest weights and input mean; no dataset needed for an
    imported model (a run trained here needs its training mean: cached, or computed)."""
    from resnet_jax.train import released, run_weights  # noqa: PLC0415
    from resnet_jax.train.engine import create_engine  # noqa: PLC0415

    config = read_config(workdir)
    try:
        _, _, num_classes = run_weights.read_run_shapes(workdir)
        mean = run_weights.run_input_mean(config, workdir)
    except released.WeightsError as e:
        raise RunError(str(e)) from None
    engine = create_engine(config, 0, num_classes)
    state = restore_state(workdir, engine, (64, 64, 3))
    variables = jax.device_get({"params": state.params, "batch_stats": state.batch_stats})
    return Weights(workdir, config, engine.model, variables, np.asarray(mean))


def conv1_grid(weights: Weights, columns: int = 8, pad: int = 1) -> np.ndarray:
    """conv1's filters as RGB images in a grid (each filter scaled to [0, 1] on its own), in
    the input's RGB order whatever the net's channel order (the Caffe models' is BGR)."""
    kernel = np.asarray(layout.to_per_block(weights.variables["params"])["conv1"]["kernel"])
    if INPUT_CONVENTIONS[weights.config.model.input_convention][0] == "bgr":
        kernel = kernel[:, :, ::-1]
    k, _, _, n = kernel.shape
    rows = -(-n // columns)
    grid = np.ones((rows * (k + pad) + pad, columns * (k + pad) + pad, 3), np.float32)
    for i in range(n):
        f = kernel[..., i]
        f = (f - f.min()) / max(float(f.max() - f.min()), 1e-12)
        r, c = divmod(i, columns)
        grid[pad + r * (k + pad):pad + r * (k + pad) + k, pad + c * (k + pad):pad + c * (k + pad) + k] = f
    return grid


def stage_of(layer: str) -> str:
    """'conv3_2/conv1' -> 'conv3_x'; 'conv1' -> 'conv1'; 'fc' -> 'fc' (Table 1's rows)."""
    top = layer.split("/")[0]
    return top.split("_")[0] + "_x" if "_" in top else top


def stage_filter_norms(weights: Weights) -> dict[str, np.ndarray]:
    """{Table 1 stage: the L2 norms of all its conv filters}, in network order."""
    out: dict[str, list] = {}
    for name, norms in filter_norms(weights.variables["params"]).items():
        out.setdefault(stage_of(name), []).append(norms)
    order = ["conv1", "conv2_x", "conv3_x", "conv4_x", "conv5_x", "fc"]
    return {s: np.concatenate(out[s]) for s in order if s in out}


def test_images(size: int = 224, resize: int = 256) -> np.ndarray:
    """scikit-learn's two sample photographs (offline), shorter side `resize`, centre `size` crop,
    as uint8 (2, size, size, 3)."""
    from sklearn.datasets import load_sample_images  # noqa: PLC0415

    crops = []
    for image in load_sample_images().images:
        img = Image.fromarray(image)
        w, h = img.size
        scale = resize / min(w, h)
        img = img.resize((round(w * scale), round(h * scale)), Image.BILINEAR)
        a = np.asarray(img)
        top, left = (a.shape[0] - size) // 2, (a.shape[1] - size) // 2
        crops.append(a[top:top + size, left:left + size])
    return np.stack(crops)


def bn_responses(weights: Weights, images: np.ndarray) -> tuple[list[str], np.ndarray]:
    """(layer names, std of each BN's output) over `images` (uint8), network order: every conv
    layer's response after BN, before the ReLU or addition (Fig 7's measure, here for every conv,
    3x3 or 1x1)."""
    def is_bn(module, method):
        return method == "__call__" and isinstance(module, BatchNorm)

    x = normalize(jnp.asarray(images), jnp.asarray(weights.input_mean))
    _, state = jax.jit(lambda v, x: weights.model.apply(
        v, x, capture_intermediates=is_bn, mutable=["intermediates"]))(weights.variables, x)
    flat = flax.traverse_util.flatten_dict(layout.to_per_block(state["intermediates"]), sep="/")
    stds = {k.removesuffix("/__call__"): float(np.std(np.asarray(v[0]))) for k, v in flat.items()}
    order = module_call_order(weights.model, weights.variables, images.shape[1:])
    names = [n for n in order if n in stds]
    return names, np.array([stds[n] for n in names])
