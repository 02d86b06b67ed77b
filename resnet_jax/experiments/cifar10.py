"""CIFAR-10 recipe of Sec 4.2 for any CIFAR net: `--experiment cifar10:resnet56`, `:plain20`, ..."""

from resnet_jax.configs import cifar_config


def get_config(arg: str = "resnet20"):
    return cifar_config(f"cifar_{arg}")
