"""Table 4: single-model multi-scale results (ResNet-34 B/C, 50, 101, 152); same training as Table 3.

`experiments/table4.py:resnet101`; evaluate with `resnet-jax imagenet --table 4` (multi-scale test).
"""

from resnet_jax.configs import imagenet_net_config

NETS = ("resnet34_B", "resnet34_C", "resnet50", "resnet101", "resnet152")


def get_config(net: str = "resnet50"):
    if net.partition(":")[0] not in NETS:
        raise ValueError(f"Table 4 reports {NETS}; got {net!r}")
    return imagenet_net_config(net)
