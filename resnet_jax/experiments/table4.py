"""Table 4: single-model multi-scale results (ResNet-34 B/C, 50, 101, 152); Table 3's training.

`--experiment table4:resnet101`; evaluate with `resnet-jax imagenet --table 4` (multi-scale test).
"""

from resnet_jax.experiments._imagenet import experiment

EXPERIMENT = experiment(
    "Table 4: single-model error (%), multi-scale, ImageNet val", "4",
    ("resnet34_B", "resnet34_C", "resnet50", "resnet101", "resnet152"), "B", default="resnet50",
    source="Table 4",
    numbers={"resnet34_B": (21.84, 5.71), "resnet34_C": (21.53, 5.60), "resnet50": (20.74, 5.25),
             "resnet101": (19.87, 4.60), "resnet152": (19.38, 4.49)})
get_config = EXPERIMENT.get_config
