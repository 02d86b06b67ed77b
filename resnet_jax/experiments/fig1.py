"""Fig 1: plain-20 vs plain-56 on CIFAR-10 (training and test error against iterations).

`--experiment fig1:plain20`, `--experiment fig1:plain56`.
"""

from resnet_jax.configs import cifar_config


def get_config(net: str = "plain20"):
    # Any CIFAR net trains (the figure draws plots.FIG1_NETS); a bad name fails validation with one line.
    return cifar_config(f"cifar_{net}")
