"""Fig 6: plain-20/32/44/56 (left), ResNet-20/32/44/56/110 (middle), ResNet-110 vs 1202 (right).

`--experiment fig6:plain44`, `--experiment fig6:resnet1202`; `resnet-jax sweep --experiment fig6`.
"""

from resnet_jax.configs import cifar_config
from resnet_jax.experiment import Experiment, Figure, Panel, nets

PLAIN = ("plain20", "plain32", "plain44", "plain56")
RESNET = ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110")


def get_config(net: str = "resnet20"):
    return cifar_config(f"cifar_{net}")  # any CIFAR net trains; a bad name fails validation in one line


EXPERIMENT = Experiment(
    "Fig 6: plain nets, ResNets, ResNet-110 vs 1202 on CIFAR-10", get_config,
    nets=nets(*PLAIN, *RESNET, "resnet1202"),
    figures=(Figure("fig6", "Fig 6", (Panel("plain", PLAIN), Panel("ResNet", RESNET),
                                      Panel("ResNet-110 vs 1202", ("resnet110", "resnet1202")))),),
    setting="CIFAR-10, 64k")
