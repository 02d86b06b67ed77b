"""CIFAR-10 recipe of Sec 4.2 for any CIFAR net: `--experiment cifar10:resnet56`, `:plain20`, ...

`resnet-jax sweep --experiment cifar10 --nets plain20,resnet20` trains the nets named and tabulates
them beside Table 6's numbers where the paper has them.
"""

from resnet_jax.configs import cifar_config
from resnet_jax.experiment import Column, Experiment, Figure, Panel, Table
from resnet_jax.experiments import table6


def get_config(arg: str = "resnet20"):
    return cifar_config(f"cifar_{arg}")


EXPERIMENT = Experiment(
    "CIFAR-10 recipe (Sec 4.2), any CIFAR net", get_config, nets=(), arg="NET",
    paper=table6.EXPERIMENT.paper,
    tables=(Table("cifar10", "CIFAR-10 test error (%)", columns=(
        Column("net", "label"), Column("params", "params", fmt="{:,}"),
        Column("error % (ours)", "test_error", fmt="{:.2f}±"),
        Column("error % (paper)", "error", paper=True, fmt="{:.2f}"), Column("dataset", "data"),
        Column("steps", "steps", fmt="{:,}"), Column("runs", "runs"),
        Column("wall time", "wall_time", fmt="{:.0f} s"))),),
    figures=(Figure("curves", "CIFAR-10 recipe", (Panel("all nets", ("*",)),)),),
    setting="CIFAR-10, 64k")
