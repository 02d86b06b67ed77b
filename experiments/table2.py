"""Table 2: plain-18/34 vs ResNet-18/34 on ImageNet (option A shortcuts), 10-crop top-1 error.

`experiments/table2.py:resnet34`, `...:plain18`, `...:resnet18:fixed` (fixed 30/60/90 schedule).
"""

from resnet_jax.configs import imagenet_net_config

NETS = ("plain18", "plain34", "resnet18", "resnet34")


def get_config(net: str = "resnet34"):
    if net.partition(":")[0] not in NETS:
        raise ValueError(f"Table 2 compares {NETS}; got {net!r}")
    return imagenet_net_config(net, default_shortcut="A")
