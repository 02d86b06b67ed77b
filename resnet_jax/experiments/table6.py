"""Table 6: ResNet-20/32/44/56/110/1202 on CIFAR-10, option A, 64k steps (110/1202 with warm-up).

`--experiment table6:110`. The paper's numbers to compare with are in resnet_jax.analysis.paper.
"""

from resnet_jax.configs import cifar_config


def get_config(depth: str = "20"):
    return cifar_config(f"cifar_resnet{depth}")  # a bad depth fails validation with one line
