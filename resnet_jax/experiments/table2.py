"""Table 2: plain-18/34 vs ResNet-18/34 on ImageNet (option A shortcuts), 10-crop top-1 error.

`--experiment table2:resnet34`, `...:plain18`, `...:resnet18:fixed` (fixed 30/60/90 schedule).
The same four runs draw Fig 4 (`--experiment fig4`).
"""

from resnet_jax.experiments._imagenet import experiment

EXPERIMENT = experiment(
    "Table 2: top-1 error (%), 10-crop, ImageNet val", "2",
    ("plain18", "plain34", "resnet18", "resnet34"), "A", default="resnet34", source="Table 2",
    numbers={"plain18": (27.94,), "plain34": (28.54,), "resnet18": (27.88,), "resnet34": (25.03,)})
get_config = EXPERIMENT.get_config
