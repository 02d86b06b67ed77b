"""Fig 1: plain-20 vs plain-56 on CIFAR-10 (training and test error against iterations).

`experiments/fig1.py:plain20`, `experiments/fig1.py:plain56`.
"""

from resnet_jax.analysis.plots import FIG1_NETS
from resnet_jax.configs import cifar_config


def get_config(net: str = "plain20"):
    if net not in FIG1_NETS:
        raise ValueError(f"Fig 1 compares {FIG1_NETS}; got {net!r}")
    return cifar_config(f"cifar_{net}")
