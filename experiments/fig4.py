"""Fig 4: training curves of plain-18/34 and ResNet-18/34 (option A) on ImageNet.

Thin curves: training error (here on the augmented training crops); bold: centre-crop validation
error, evaluated every `eval_every` steps. `experiments/fig4.py:plain34`.
"""

from resnet_jax.configs import imagenet_net_config

NETS = ("plain18", "plain34", "resnet18", "resnet34")


def get_config(net: str = "resnet34"):
    if net.partition(":")[0] not in NETS:
        raise ValueError(f"Fig 4 draws {NETS}; got {net!r}")
    return imagenet_net_config(net, default_shortcut="A")
