"""Fig 7: std of every 3x3 layer's response (BN output, before ReLU/addition) of trained CIFAR nets.

The nets train with the CIFAR recipe (`--experiment fig7:resnet56`); `resnet-jax fig7 --runs DIR`
measures and draws them (scripts/fig7_responses.sh does both).
"""

from resnet_jax.configs import cifar_config
from resnet_jax.experiment import Experiment, nets


def get_config(net: str = "resnet20"):
    return cifar_config(f"cifar_{net}")


EXPERIMENT = Experiment(
    "Fig 7: layer response std, plain vs ResNet", get_config,
    nets=nets("plain20", "plain56", "resnet20", "resnet56", "resnet110"), setting="CIFAR-10, 64k")
