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
