"""Table 4: single-model multi-scale results (ResNet-34 B/C, 50, 101, 152); Table 3's training.

`--experiment table4:resnet101`; evaluate with `resnet-jax imagenet --table 4` (multi-scale test).
"""

from resnet_jax.configs import imagenet_experiment


def get_config(net: str = "resnet50"):
    return imagenet_experiment("table4", net)
