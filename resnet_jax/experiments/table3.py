"""Table 3: shortcut options A/B/C on ResNet-34, and ResNet-50/101/152 (B); 10-crop top-1/top-5.

`--experiment table3:resnet34_A`, `...:resnet34_C`, `...:resnet152`, `...:resnet50:fixed`.
"""

from resnet_jax.experiments._imagenet import experiment

EXPERIMENT = experiment(
    "Table 3: error (%), 10-crop, ImageNet val", "3",
    ("plain34", "resnet34_A", "resnet34_B", "resnet34_C", "resnet50", "resnet101", "resnet152"), "B",
    default="resnet50", source="Table 3", numbers={
        "plain34": (28.54, 10.02), "resnet34_A": (25.03, 7.76), "resnet34_B": (24.52, 7.46),
        "resnet34_C": (24.19, 7.40), "resnet50": (22.85, 6.71), "resnet101": (21.75, 6.05),
        "resnet152": (21.43, 5.71)})
get_config = EXPERIMENT.get_config
