"""Table 2: plain-18/34 vs ResNet-18/34 on ImageNet (option A shortcuts), 10-crop top-1 error.

`--experiment table2:resnet34`, `...:plain18`, `...:resnet18:fixed` (fixed 30/60/90 schedule).
The same four runs draw Fig 4 (`--experiment fig4`).
"""

from resnet_jax.configs import imagenet_experiment


def get_config(net: str = "resnet34"):
    return imagenet_experiment("table2", net)
