"""The nets by name: `{variant}{depth}`, e.g. `cifar_resnet110`, `cifar_preact_bottleneck1001`.

A variant is one VARIANTS entry: its family (stem, head and input size), its unit (blocks.BLOCKS;
or one kind per stage), the rule from depth to blocks per stage, the stage widths (each stage's 3x3
conv width; a bottleneck stage outputs 4x that) and its default shortcut option. A new net is one entry.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from typing import Callable, Mapping

from resnet_jax.models.blocks import BLOCKS

# Table 1 of the paper: depth -> (unit, blocks in conv2_x..conv5_x).
STAGES = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
WIDTHS = (64, 128, 256, 512)
FAMILIES = ("cifar", "imagenet", "explainer")


def cifar_stages(layers_per_unit: int) -> Callable[[int], tuple[int, int, int]]:
    """Depth -> (n, n, n) for a CIFAR net of 3 stages: depth = 3 * layers_per_unit * n + 2 (6n+2
    with two 3x3 convs per unit, Sec 4.2; 9n+2 with bottleneck units, 1603.05027 Sec. 5)."""
    per_n = 3 * layers_per_unit

    def stages(depth: int) -> tuple[int, int, int]:
        if depth < per_n + 2 or (depth - 2) % per_n:
            examples = "20, 32, 44, 56, 110, 1202" if per_n == 6 else "11, 164, 1001"
            raise ValueError(f"these CIFAR nets have depth {per_n}n+2 ({examples}, ...); got {depth}")
        n = (depth - 2) // per_n
        return n, n, n

    return stages


def table1_stages(depth: int) -> tuple[int, ...]:
    if depth not in STAGES:
        raise ValueError(f"ImageNet depths are {sorted(STAGES)}; got {depth}")
    return STAGES[depth][1]


def explainer_stages(depth: int) -> tuple[int, int]:
    """Conv1, a basic unit (2), a bottleneck unit (3) and the fc: 7 layers, one unit per stage."""
    if depth != 7:
        raise ValueError(f"the explainer net has 7 layers; got {depth}")
    return 1, 1


@dataclasses.dataclass(frozen=True)
class Variant:
    family: str  # FAMILIES: the stem, the head and the paper's input size
    block: str | Mapping[int, str] | tuple[str, ...]  # BLOCKS kind, one per depth (Table 1) or stage
    stages: Callable[[int], tuple[int, ...]]  # depth -> blocks per stage; ValueError otherwise
    widths: tuple[int, ...]  # each stage's 3x3 conv width
    shortcut: str  # default shortcut option
    rule: str  # the depths, for messages


CIFAR_WIDTHS = (16, 32, 64)
TABLE1_UNITS = {depth: kind for depth, (kind, _) in STAGES.items()}

VARIANTS = {
    # Sec 4.2, Table 6 and Fig 6: conv1 16 + BN-ReLU, 2n units per stage at 32/16/8, option A.
    "cifar_resnet": Variant("cifar", "basic", cifar_stages(2), CIFAR_WIDTHS, "A", "6n+2"),
    "cifar_plain": Variant("cifar", "plain", cifar_stages(2), CIFAR_WIDTHS, "A", "6n+2"),
    # 1603.05027: ResNet-110 with pre-activation units (Table 3), conv1 alone, BN-ReLU before pooling.
    "cifar_preact": Variant("cifar", "preact_basic", cifar_stages(2), CIFAR_WIDTHS, "A", "6n+2"),
    # 1603.05027 Sec. 5, Table 3: ResNet-164/1001, stage outputs 64/128/256, projections (appendix).
    "cifar_bottleneck": Variant("cifar", "bottleneck", cifar_stages(3), CIFAR_WIDTHS, "B", "9n+2"),
    "cifar_preact_bottleneck": Variant("cifar", "preact_bottleneck", cifar_stages(3), CIFAR_WIDTHS, "B",
                                       "9n+2"),
    # Table 1: 7x7/2 conv + max pool, basic units up to 34 layers, bottlenecks from 50, option B.
    "imagenet_resnet": Variant("imagenet", TABLE1_UNITS, table1_stages, WIDTHS, "B", "18/34/50/101/152"),
    "imagenet_plain": Variant("imagenet", {d: "plain" if k == "basic" else "plain_bottleneck"
                                           for d, k in TABLE1_UNITS.items()},
                              table1_stages, WIDTHS, "B", "18/34/50/101/152"),
    # The explainer article's small net (models/explainer.py), not the paper's: one basic unit of 64
    # and one bottleneck unit 64-64-256 (projection shortcut, option B): 7 weighted layers.
    "explainer_resnet": Variant("explainer", ("basic", "bottleneck"), explainer_stages, (64, 64), "B", "7"),
}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What a model name says: `parse_model_name("cifar_preact110")`."""

    name: str
    family: str
    variant: str  # VARIANTS key
    block: str | tuple[str, ...]  # blocks.BLOCKS key, or one per stage
    depth: int
    stage_sizes: tuple[int, ...]
    widths: tuple[int, ...]
    shortcut: str  # the variant's default shortcut option

    @property
    def kinds(self) -> tuple[str, ...]:
        """The unit kind of each stage."""
        return (self.block,) * len(self.stage_sizes) if isinstance(self.block, str) else self.block

    @property
    def residual(self) -> bool:
        """Whether the net has shortcuts (False: the paper's plain nets)."""
        return all(BLOCKS[kind].residual for kind in self.kinds)

    @property
    def preact(self) -> bool:
        return any(BLOCKS[kind].preact for kind in self.kinds)


_NAME = re.compile(r"^([a-z_]+?)(\d+)$")


def _close_names(prefix: str, depth: int) -> list[str]:
    """Registered names at this depth whose variant ends with, or is spelled like, `prefix`
    ('resnet20' -> 'cifar_resnet20'; 'cifar_resnt20' -> 'cifar_resnet20')."""
    close = set(difflib.get_close_matches(prefix, VARIANTS, n=3, cutoff=0.8))
    names = []
    for key, variant in VARIANTS.items():
        if key.endswith("_" + prefix) or key in close:
            try:
                variant.stages(depth)
            except ValueError:
                continue
            names.append(f"{key}{depth}")
    return names


def parse_model_name(name: str) -> ModelSpec:
    """'cifar_resnet110' -> ModelSpec(family='cifar', block='basic', depth=110, ...); ValueError
    naming the valid forms."""
    m = _NAME.match(name) if isinstance(name, str) else None
    if not m or m.group(1) not in VARIANTS:
        forms = ", ".join(f"{k}N ({v.rule})" for k, v in VARIANTS.items())
        close = _close_names(m.group(1), int(m.group(2))) if m else []
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        raise ValueError(f"unknown model {name!r}: {hint}expected one of {forms}")
    variant, depth = VARIANTS[m.group(1)], int(m.group(2))
    try:
        stage_sizes = variant.stages(depth)
    except ValueError as e:
        raise ValueError(f"unknown model {name!r}: {e}") from None
    block = variant.block if isinstance(variant.block, (str, tuple)) else variant.block[depth]
    return ModelSpec(name, variant.family, m.group(1), block, depth, tuple(stage_sizes),
                     variant.widths, variant.shortcut)
