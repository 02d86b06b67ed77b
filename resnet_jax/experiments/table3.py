"""Table 3: shortcut options A/B/C on ResNet-34, and ResNet-50/101/152 (B); 10-crop top-1/top-5.

`--experiment table3:resnet34_A`, `...:resnet34_C`, `...:resnet152`, `...:resnet50:fixed`.
"""

from resnet_jax.configs import imagenet_experiment


def get_config(net: str = "resnet50"):
    return imagenet_experiment("table3", net)
