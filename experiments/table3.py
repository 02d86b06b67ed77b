"""Table 3: shortcut options A/B/C on ResNet-34, and ResNet-50/101/152 (B); 10-crop top-1/top-5.

`experiments/table3.py:resnet34_A`, `...:resnet34_C`, `...:resnet152`, `...:resnet50:fixed`.
"""

from resnet_jax.configs import imagenet_net_config

NETS = ("plain34", "resnet34_A", "resnet34_B", "resnet34_C", "resnet50", "resnet101", "resnet152")


def get_config(net: str = "resnet50"):
    if net.partition(":")[0] not in NETS:
        raise ValueError(f"Table 3 compares {NETS}; got {net!r}")
    return imagenet_net_config(net)
