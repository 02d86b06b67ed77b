"""The paper's ImageNet numbers (He et al. 2016, Tables 1-4), the one place scripts and tests read them.

Error rates are percentages on the ILSVRC2012 validation set; FLOPs are multiply-adds per 224x224
image, in units of 1e9, with the paper's precision (one decimal).
"""

from __future__ import annotations

# Table 1: the paper's FLOPs, and the values computed exactly for reference (paper_spec.md).
# ResNet-18/34 are counted with parameter-free shortcuts (option A): 34-B would be 3.664 -> 3.7.
TABLE1_GFLOPS = {18: 1.8, 34: 3.6, 50: 3.8, 101: 7.6, 152: 11.3}
TABLE1_GMACS_COMPUTED = {18: 1.795, 34: 3.644, 50: 3.858, 101: 7.570, 152: 11.282}
TABLE1_SHORTCUT = {18: "A", 34: "A", 50: "B", 101: "B", 152: "B"}
PARAMS = {  # exact parameter counts (projection shortcuts on dimension changes, option B)
    18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808,
}

# Table 2: top-1 error, 10-crop testing. Keys are run names used by the scripts.
TABLE2_TOP1 = {"plain18": 27.94, "plain34": 28.54, "resnet18": 27.88, "resnet34": 25.03}

# Table 3: 10-crop testing, (top-1, top-5).
TABLE3 = {
    "plain34": (28.54, 10.02),
    "resnet34_A": (25.03, 7.76),
    "resnet34_B": (24.52, 7.46),
    "resnet34_C": (24.19, 7.40),
    "resnet50": (22.85, 6.71),
    "resnet101": (21.75, 6.05),
    "resnet152": (21.43, 5.71),
}

# Table 4: single model, fully-convolutional multi-scale testing, (top-1, top-5).
TABLE4 = {
    "resnet34_B": (21.84, 5.71),
    "resnet34_C": (21.53, 5.60),
    "resnet50": (20.74, 5.25),
    "resnet101": (19.87, 4.60),
    "resnet152": (19.38, 4.49),
}

# Fig 4: the nets whose curves are drawn (training error thin, centre-crop validation error bold).
FIG4_NETS = ("plain18", "plain34", "resnet18", "resnet34")

# The released models' published validation errors, (top-1, top-5), by test protocol.
# The authors' Caffe models (their repository's model card, shorter side 256): 1-crop centre 224
# and 10-crop ("the same as those in the paper", Table 3 to rounding); their multi-scale numbers
# are the paper's Table 4.
RELEASED_CAFFE = {
    50: {"center": (24.7, 7.8), "ten_crop": (22.9, 6.7), "multi_scale": TABLE4["resnet50"]},
    101: {"center": (23.6, 7.1), "ten_crop": (21.8, 6.1), "multi_scale": TABLE4["resnet101"]},
    152: {"center": (23.0, 6.7), "ten_crop": (21.4, 5.7), "multi_scale": TABLE4["resnet152"]},
}
# torchvision's IMAGENET1K_V1 weights (its documentation's acc@1/acc@5 as errors; centre 224 crop
# of the image resized to 256). It publishes no 10-crop or multi-scale numbers.
RELEASED_TORCHVISION = {
    18: {"center": (30.242, 10.922)}, 34: {"center": (26.686, 8.58)},
    50: {"center": (23.87, 7.138)}, 101: {"center": (22.626, 6.454)},
    152: {"center": (21.688, 5.954)},
}


def published(input_convention: str, depth: int, mode: str) -> tuple[str, tuple[float, float]] | None:
    """(source, (top-1, top-5)) published for a released model under a test protocol, or the
    paper's own number for that net and protocol (Tables 3/4) for nets trained here; None if
    nothing was published."""
    if input_convention == "caffe":
        found = RELEASED_CAFFE.get(depth, {}).get(mode)
        return ("authors' model card" if mode != "multi_scale" else "paper Table 4", found) if found else None
    if input_convention == "torchvision":
        found = RELEASED_TORCHVISION.get(depth, {}).get(mode)
        return ("torchvision docs", found) if found else None
    net = f"resnet{depth}" + ("_B" if depth == 34 else "")
    table = {"ten_crop": ("paper Table 3", TABLE3), "multi_scale": ("paper Table 4", TABLE4)}.get(mode)
    if table and net in table[1]:
        return table[0], table[1][net]
    return None
