"""Parameter counts and multiply-adds per image, measured on the model itself (no duplicate spec).

Multiply-adds count convolutions and the fc layer (as the paper's FLOPs); BN, ReLU, additions and
pooling are not counted.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from resnet_jax.models import create_model, input_shape, layout
from resnet_jax.models.layers import PatchConv


@dataclasses.dataclass(frozen=True)
class Complexity:
    name: str
    params: int
    mult_adds: int
    input_shape: tuple[int, int, int]


def count_params(tree) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def complexity(model: nn.Module, shape: tuple[int, int, int], name: str = "") -> Complexity:
    """Abstractly run `model` on one image of `shape`, recording each conv/dense call's cost.

    Every layer is one module path, called once per image; a path inside a scanned block stack
    (`<stage>_rest/...`, models/layout.py) is traced once (or more) for all its blocks, so its
    cost counts once per block of the stack."""
    macs: dict[tuple[str, ...], int] = {}

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        mod = context.module
        if context.method_name == "__call__" and isinstance(mod, (nn.Conv, PatchConv, nn.Dense)):
            kernel = mod.variables["params"]["kernel"]
            # every output element costs prod(kernel.shape[:-1]) multiply-adds
            macs[tuple(mod.path)] = int(np.prod(out.shape[:-1])) * int(np.prod(kernel.shape))
        return out

    x = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    with nn.intercept_methods(record):
        jax.eval_shape(model.apply, variables, x)
    blocks = {top: layout.stack_length(variables["params"], top) for top in {p[0] for p in macs}}
    total = sum(cost * blocks[path[0]] for path, cost in macs.items())
    return Complexity(name, count_params(variables["params"]), total, shape)


def model_complexity(name: str, **model_kwargs) -> Complexity:
    return complexity(create_model(name, **model_kwargs), input_shape(name), name)
