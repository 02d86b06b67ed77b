"""Fig 4: training curves of plain-18/34 and ResNet-18/34 (option A) on ImageNet.

Thin curves: training error (here on the augmented training crops); bold: centre-crop validation
error, evaluated every `eval_every` steps. `--experiment fig4:plain34`. The same runs as Table 2.
"""

from resnet_jax.configs import imagenet_experiment


def get_config(net: str = "resnet34"):
    return imagenet_experiment("fig4", net)
