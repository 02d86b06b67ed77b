"""Fig 4: training curves of plain-18/34 and ResNet-18/34 (option A) on ImageNet.

Thin curves: training error (here on the augmented training crops); bold: centre-crop validation
error, evaluated every `eval_every` steps. `--experiment fig4:plain34`. The same runs as Table 2.
"""

from resnet_jax.experiments import table2
from resnet_jax.experiments._imagenet import experiment

EXPERIMENT = experiment("Fig 4: final errors (%), centre crop (curves in the JSON)", "fig4",
                        tuple(n.name for n in table2.EXPERIMENT.nets), "A", default="resnet34")
get_config = EXPERIMENT.get_config
