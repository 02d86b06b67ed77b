"""Fig 6: plain-20/32/44/56 (left), ResNet-20/32/44/56/110 (middle), ResNet-110 vs 1202 (right).

`experiments/fig6.py:plain44`, `experiments/fig6.py:resnet1202`.
"""

from resnet_jax.analysis.plots import FIG6_PANELS
from resnet_jax.configs import cifar_config


def get_config(net: str = "resnet20"):
    nets = sorted({n for panel in FIG6_PANELS.values() for n in panel})
    if net not in nets:
        raise ValueError(f"Fig 6 has nets {nets}; got {net!r}")
    return cifar_config(f"cifar_{net}")
