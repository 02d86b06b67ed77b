"""Fig 6: plain-20/32/44/56 (left), ResNet-20/32/44/56/110 (middle), ResNet-110 vs 1202 (right).

`experiments/fig6.py:plain44`, `experiments/fig6.py:resnet1202`.
"""

from resnet_jax.configs import cifar_config

PANELS = {
    "left": ("plain20", "plain32", "plain44", "plain56"),
    "middle": ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110"),
    "right": ("resnet110", "resnet1202"),
}


def get_config(net: str = "resnet20"):
    if not any(net in nets for nets in PANELS.values()):
        raise ValueError(f"Fig 6 has nets {sorted({n for v in PANELS.values() for n in v})}; got {net!r}")
    return cifar_config(f"cifar_{net}")
