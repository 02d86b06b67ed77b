"""Two layouts of the same parameters: per block (one entry per block, for people) and stacked.

Per block is the network as the paper draws it: `stage1_block1`, `stage1_block2`, ... in the CIFAR
nets (Sec 4.2), `conv3_1`, `conv3_2`, ... in the ImageNet nets (Table 1's conv3_x). Stacked is how
the scanned nets hold them (layers.repeated_blocks): a stage's first block stays as it is (it
changes the shape), and its blocks 2..n are one entry `<stage>_rest` (`stage1_rest`, `conv3_rest`)
whose leaves carry a leading block axis (block 2 at index 0).

`to_per_block` and `to_stacked` convert any pytree holding model-structured dicts: params,
batch_stats, the optimizer state's per-parameter trees, captured intermediates, and abstract trees
(jax.ShapeDtypeStruct, e.g. a checkpoint restore target). `axis` is where the block axis sits: 0,
or 1 under a leading seed axis (train/seeds.py). Both are exact (slicing and stacking).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

REST = "_rest"
_STACKED = re.compile(r"^(stage\d+|conv\d+)_rest$")
_PER_BLOCK = re.compile(r"^(?:(stage\d+)_block|(conv\d+)_)(\d+)$")

PER_BLOCK, STACKED = "per_block", "stacked"


def block_name(stage_key: str, block: int) -> str:
    """'stage1', 2 -> 'stage1_block2' (CIFAR); 'conv3', 2 -> 'conv3_2' (ImageNet, Table 1)."""
    return f"{stage_key}_block{block}" if stage_key.startswith("stage") else f"{stage_key}_{block}"


def stacked_name(stage_key: str) -> str:
    """The entry holding blocks 2..n of a stage: 'stage1_rest', 'conv3_rest'."""
    return stage_key + REST


def _is_model_dict(d: dict) -> bool:
    return any(isinstance(k, str) and (_STACKED.match(k) or _PER_BLOCK.match(k)) for k in d)


def _map_model_dicts(fn, tree):
    """`fn` on every outermost dict whose keys name blocks; the rest of `tree` unchanged."""
    if isinstance(tree, dict):
        if _is_model_dict(tree):
            return fn(tree)
        return type(tree)((k, _map_model_dicts(fn, v)) for k, v in tree.items())
    if isinstance(tree, (jax.Array, jax.ShapeDtypeStruct)) or tree is None:
        return tree
    return jax.tree.map(lambda d: _map_model_dicts(fn, d) if isinstance(d, dict) else d, tree,
                        is_leaf=lambda x: isinstance(x, dict))


def _unstack(x, count: int, axis: int) -> list:
    if isinstance(x, jax.ShapeDtypeStruct):
        shape = x.shape[:axis] + x.shape[axis + 1:]
        return [jax.ShapeDtypeStruct(shape, x.dtype, sharding=x.sharding)] * count
    if isinstance(x, jax.Array):
        return list(jnp.unstack(x, axis=axis))
    return [x[(slice(None),) * axis + (i,)] for i in range(count)]  # numpy (host) arrays


def _stack(xs: list, axis: int):
    x = xs[0]
    if isinstance(x, jax.ShapeDtypeStruct):
        shape = x.shape[:axis] + (len(xs),) + x.shape[axis:]
        return jax.ShapeDtypeStruct(shape, x.dtype, sharding=x.sharding)
    return jnp.stack(xs, axis=axis) if isinstance(x, jax.Array) else np.stack(xs, axis=axis)


def to_per_block(tree: Any, axis: int = 0) -> Any:
    """Stacked -> per block: every `<stage>_rest` entry becomes blocks 2..n (a per-block tree is
    returned as it is)."""

    def split_stacks(model: dict) -> dict:
        out = {}
        for key, value in model.items():
            m = _STACKED.match(key) if isinstance(key, str) else None
            if not m:
                out[key] = value
                continue
            leaves, treedef = jax.tree.flatten(value)
            count = leaves[0].shape[axis]
            sliced = [_unstack(x, count, axis) for x in leaves]
            for i in range(count):
                out[block_name(m.group(1), i + 2)] = jax.tree.unflatten(treedef, [s[i] for s in sliced])
        return out

    return _map_model_dicts(split_stacks, tree)


def to_stacked(tree: Any, axis: int = 0) -> Any:
    """Per block -> stacked: blocks 2..n of every stage become its `<stage>_rest` entry (a stacked
    tree is returned as it is). A stage with a missing block is an error."""

    def stack_blocks(model: dict) -> dict:
        out, stages = {}, {}
        for key, value in model.items():
            m = _PER_BLOCK.match(key) if isinstance(key, str) else None
            if m and int(m.group(3)) >= 2:
                stages.setdefault(m.group(1) or m.group(2), {})[int(m.group(3))] = value
            else:
                out[key] = value
        for stage, blocks in stages.items():
            if sorted(blocks) != list(range(2, len(blocks) + 2)):
                raise ValueError(f"{stage} has blocks {sorted(blocks)}: expected 2..{len(blocks) + 1}")
            trees = [blocks[b] for b in sorted(blocks)]
            out[stacked_name(stage)] = jax.tree.map(lambda *xs: _stack(list(xs), axis), *trees)
        return out

    return _map_model_dicts(stack_blocks, tree)


def layout_of(tree: Any) -> str | None:
    """PER_BLOCK or STACKED by the names in `tree` (dict keys at any depth, e.g. a checkpoint's
    metadata tree); None when it has no repeated blocks to tell (n = 1 nets)."""
    found = None

    def visit(node):
        nonlocal found
        if isinstance(node, Mapping):
            for k, v in node.items():
                if isinstance(k, str) and _STACKED.match(k):
                    found = STACKED
                elif isinstance(k, str) and (m := _PER_BLOCK.match(k)) and int(m.group(3)) >= 2:
                    found = found or PER_BLOCK
                visit(v)
        elif isinstance(node, (list, tuple)):
            for v in node:
                visit(v)
        elif hasattr(node, "__dataclass_fields__"):
            for name in node.__dataclass_fields__:
                visit(getattr(node, name, None))

    visit(tree)
    return found


def convert(tree: Any, layout: str, axis: int = 0) -> Any:
    """`tree` in `layout` (PER_BLOCK or STACKED)."""
    return to_per_block(tree, axis) if layout == PER_BLOCK else to_stacked(tree, axis)


def stack_length(params: dict, key: str) -> int:
    """Blocks held by the top-level entry `key` of a model's params: n-1 for a `<stage>_rest`
    entry, else 1."""
    if not _STACKED.match(key):
        return 1
    return jax.tree.leaves(params[key])[0].shape[0]


def expand_call_order(order: list[str], params: dict) -> list[str]:
    """Module paths in network order with each `<stage>_rest/...` run (traced once inside the
    scan) repeated for blocks 2..n under their per-block names. `params`: the stacked params."""
    out: list[str] = []
    i = 0
    while i < len(order):
        top = order[i].split("/", 1)[0]
        m = _STACKED.match(top)
        if not m:
            out.append(order[i])
            i += 1
            continue
        j = i
        while j < len(order) and order[j].split("/", 1)[0] == top:
            j += 1
        for b in range(2, stack_length(params, top) + 2):
            name = block_name(m.group(1), b)
            out += [name + path[len(top):] for path in order[i:j]]
        i = j
    return out
