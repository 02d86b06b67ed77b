"""Fig 6: plain-20/32/44/56 (left), ResNet-20/32/44/56/110 (middle), ResNet-110 vs 1202 (right).

`--experiment fig6:plain44`, `--experiment fig6:resnet1202`.
"""

from resnet_jax.configs import cifar_config


def get_config(net: str = "resnet20"):
    # The panels are resnet_jax.analysis.plots.FIG6_PANELS; a bad name fails validation in one line.
    return cifar_config(f"cifar_{net}")
