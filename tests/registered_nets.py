"""One small net per registered (variant, unit) pair, for tests that run every registered net."""

from resnet_jax.models import VARIANTS


def smallest_depths(variant: str, count: int = 2) -> list[int]:
    """Up to `count` of the smallest depths a variant accepts (its depth rule, tried)."""
    found = []
    for depth in range(1, 2000):
        try:
            VARIANTS[variant].stages(depth)
        except ValueError:
            continue
        found.append(depth)
        if len(found) == count:
            break
    return found


def registered_nets(min_blocks: int = 2) -> list[str]:
    """Per variant, and per unit where the unit depends on the depth (Table 1), the smallest net
    with at least `min_blocks` units in every stage (2: a stage has a scanned part)."""
    names = []
    for variant, v in VARIANTS.items():
        depths = [d for d in smallest_depths(variant, 200 if v.family == "imagenet" else 6)
                  if min(v.stages(d)) >= min_blocks]
        seen = set()
        for depth in depths:
            block = v.block if isinstance(v.block, (str, tuple)) else v.block[depth]
            if block not in seen:
                seen.add(block)
                names.append(f"{variant}{depth}")
    return names
