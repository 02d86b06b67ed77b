"""Table 1's numbers (He et al. 2016) and the released models' published errors. The errors of
Tables 2-4 are declared by their experiments (resnet_jax/experiments/table2.py ...), which the
command line hands in where they are compared (`published`'s `paper`).

Error rates are percentages on the ILSVRC2012 validation set; FLOPs are multiply-adds per 224x224
image, in units of 1e9, with the paper's precision (one decimal).
"""

from __future__ import annotations

from collections.abc import Mapping

# Table 1: the paper's FLOPs, and the values computed exactly for reference (paper_spec.md).
# ResNet-18/34 are counted with parameter-free shortcuts (option A): 34-B would be 3.664 -> 3.7.
TABLE1_GFLOPS = {18: 1.8, 34: 3.6, 50: 3.8, 101: 7.6, 152: 11.3}
TABLE1_GMACS_COMPUTED = {18: 1.795, 34: 3.644, 50: 3.858, 101: 7.570, 152: 11.282}
TABLE1_SHORTCUT = {18: "A", 34: "A", 50: "B", 101: "B", 152: "B"}
PARAMS = {  # exact parameter counts (projection shortcuts on dimension changes, option B)
    18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808,
}

# The released models' published validation errors, (top-1, top-5), by test protocol.
# The authors' Caffe models (their repository's model card, shorter side 256): 1-crop centre 224
# and 10-crop ("the same as those in the paper", Table 3 to rounding); their multi-scale numbers
# are the paper's Table 4 (`published`'s `paper`).
RELEASED_CAFFE = {
    50: {"center": (24.7, 7.8), "ten_crop": (22.9, 6.7)},
    101: {"center": (23.6, 7.1), "ten_crop": (21.8, 6.1)},
    152: {"center": (23.0, 6.7), "ten_crop": (21.4, 5.7)},
}
# torchvision's IMAGENET1K_V1 weights (its documentation's acc@1/acc@5 as errors; centre 224 crop
# of the image resized to 256). It publishes no 10-crop or multi-scale numbers.
RELEASED_TORCHVISION = {
    18: {"center": (30.242, 10.922)}, 34: {"center": (26.686, 8.58)},
    50: {"center": (23.87, 7.138)}, 101: {"center": (22.626, 6.454)},
    152: {"center": (21.688, 5.954)},
}


def published(input_convention: str, depth: int, mode: str,
              paper: Mapping[str, tuple[str, Mapping]] | None = None
              ) -> tuple[str, tuple[float, float]] | None:
    """(source, (top-1, top-5)) published for a released model under a test protocol, or the
    paper's own number for that net and protocol for nets trained here; None if nothing was
    published. `paper` is {mode: (source, {net: (top-1, top-5)})} of the paper's tables (Table 3
    for ten_crop, Table 4 for multi_scale), as their experiments declare them."""
    paper = paper or {}
    net = f"resnet{depth}" + ("_B" if depth == 34 else "")
    source, table = paper.get(mode, ("", {}))
    if input_convention == "caffe":
        if mode == "multi_scale":  # the authors' multi-scale numbers are the paper's
            return (source, table[net]) if net in table else None
        found = RELEASED_CAFFE.get(depth, {}).get(mode)
        return ("authors' model card", found) if found else None
    if input_convention == "torchvision":
        found = RELEASED_TORCHVISION.get(depth, {}).get(mode)
        return ("torchvision docs", found) if found else None
    return (source, table[net]) if net in table else None
