"""What the first conv of a net expects, given the pipeline's normalized input.

The pipeline feeds x = image/255 - mean (RGB, data/augment.normalize), where the mean is data: the
training set's per-pixel mean (the paper, Sec 3.4 and 4.2) or the mean colour a released model came
with. A convention says how a net's first conv wants that input: (channel order, factor, per-channel
std) with input = x * factor / std, then reordered. "paper": this project's nets, [0, 1] minus the
mean. "caffe": the authors' released Caffe ImageNet models, BGR in 0-255 minus their mean image.
"torchvision": RGB in [0, 1] minus a mean colour, divided by a per-channel std; torchvision's
ImageNet std unless the net names another (`input_std`: CIFAR models trained in PyTorch divide by
their own dataset's std, which differs by source).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

INPUT_CONVENTIONS = {
    "paper": ("rgb", 1.0, (1.0, 1.0, 1.0)),
    "caffe": ("bgr", 255.0, (1.0, 1.0, 1.0)),
    "torchvision": ("rgb", 1.0, (0.229, 0.224, 0.225)),
}
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
# Conventions whose std a net may replace with its own (`input_std`).
STD_CONVENTIONS = ("torchvision",)


def check_input(convention: str, std: Sequence[float] | None) -> None:
    """ValueError unless `convention` names INPUT_CONVENTIONS and `std` (if given) is 3 positive
    numbers for a convention that divides by a std."""
    if convention not in INPUT_CONVENTIONS:
        raise ValueError(f"unknown input_convention {convention!r}: expected one of "
                         f"{', '.join(INPUT_CONVENTIONS)}")
    if std is None:
        return
    if convention not in STD_CONVENTIONS:
        raise ValueError(f"input_std applies to input_convention {' or '.join(STD_CONVENTIONS)}, "
                         f"not {convention!r}")
    if len(std) != 3 or not all(isinstance(s, (int, float)) and s > 0 for s in std):
        raise ValueError(f"input_std must be 3 positive numbers (R, G, B), got {tuple(std)!r}")


def adapt_input(x: jax.Array, convention: str, std: Sequence[float] | None = None) -> jax.Array:
    """The normalized RGB input `x` in the form a net of `convention` (and `std`) was trained on;
    ValueError (check_input) for a convention or std that is not one."""
    check_input(convention, std)
    order, factor, default_std = INPUT_CONVENTIONS[convention]
    std = tuple(std) if std is not None else default_std
    if factor != 1.0:
        x = x * factor
    if std != (1.0, 1.0, 1.0):
        x = x / jnp.asarray(std, x.dtype)
    return x[..., ::-1] if order == "bgr" else x
