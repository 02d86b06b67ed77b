"""Parameter-pytree inspection for notebooks: a table of paths/shapes/counts, and filter norms."""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from resnet_jax.models import layout


@dataclasses.dataclass(frozen=True)
class ParamRow:
    path: str
    shape: tuple[int, ...]
    dtype: str
    count: int


def path_str(path) -> str:
    """jax.tree_util key path -> 'stage1_block1/conv1/kernel'."""
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def param_table(params) -> list[ParamRow]:
    """One row per leaf of the per-block layout (models/layout.py), in the pytree's (sorted-key)
    order."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(layout.to_per_block(params))
    return [ParamRow(path_str(p), tuple(x.shape), str(x.dtype), int(np.prod(x.shape)))
            for p, x in leaves]


def format_param_table(rows: list[ParamRow]) -> str:
    width = max(len(r.path) for r in rows) + 2
    lines = [f"{'path':<{width}}{'shape':>18}{'dtype':>10}{'count':>12}", "-" * (width + 40)]
    lines += [f"{r.path:<{width}}{str(r.shape):>18}{r.dtype:>10}{r.count:>12,}" for r in rows]
    lines.append(f"{'total':<{width}}{'':>28}{sum(r.count for r in rows):>12,}")
    return "\n".join(lines)


def module_call_order(model: nn.Module, variables, image_shape) -> list[str]:
    """Paths of the model's submodules in the order their __call__ runs (traced abstractly).

    Pytrees sort dict keys ('block10' < 'block2', 'fc' < 'stage1'), so network order comes from
    the model itself. Paths are per block (models/layout.py): a scanned block stack, traced once,
    is listed once for each of its blocks.
    """
    order: list[str] = []

    def record(next_fun, args, kwargs, context):
        path = "/".join(context.module.path)
        if context.method_name == "__call__" and path and path not in order:
            order.append(path)
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        jax.eval_shape(model.apply, variables, jax.ShapeDtypeStruct((1, *image_shape), jnp.float32))
    return layout.expand_call_order(order, variables["params"])


def filter_norms(params) -> dict[str, np.ndarray]:
    """{conv/fc module path (per block): L2 norm of each output filter} (kernels are (..., in, out))."""
    norms = {}
    for path, x in jax.tree_util.tree_flatten_with_path(layout.to_per_block(params))[0]:
        name = path_str(path)
        if name.endswith("/kernel"):
            kernel = np.asarray(x, np.float64)
            norms[name.removesuffix("/kernel")] = np.sqrt(
                (kernel**2).reshape(-1, kernel.shape[-1]).sum(0))
    return norms


def plot_filter_norms(norms: dict[str, np.ndarray], ax, order: list[str] | None = None) -> None:
    """Box plot of each layer's per-filter norms, in `order` (e.g. `module_call_order`) if given."""
    names = [n for n in order if n in norms] if order else list(norms)
    ax.boxplot([norms[n] for n in names], showfliers=False)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=90, fontsize=6)
    ax.set_ylabel("filter L2 norm")
    ax.grid(alpha=0.3)
