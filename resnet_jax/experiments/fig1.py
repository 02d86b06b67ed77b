"""Fig 1: plain-20 vs plain-56 on CIFAR-10 (training and test error against iterations).

`--experiment fig1:plain20`, `--experiment fig1:plain56`; `resnet-jax sweep --experiment fig1`.
"""

from resnet_jax.configs import cifar_config
from resnet_jax.experiment import TEST, TRAIN, Experiment, Figure, Panel, nets

NETS = ("plain20", "plain56")


def get_config(net: str = "plain20"):
    return cifar_config(f"cifar_{net}")  # any CIFAR net trains; a bad name fails validation in one line


EXPERIMENT = Experiment(
    "Fig 1: plain-20 vs plain-56, training and test error", get_config, nets=nets(*NETS),
    figures=(Figure("fig1", "Fig 1", (Panel("training error", NETS, curves=(TRAIN,)),
                                      Panel("test error", NETS, curves=(TEST,)))),),
    setting="CIFAR-10, 64k")
