"""The experiment registry: every shipped experiment declares itself (nets, paper numbers with
their sources, tables and figures over its nets) and builds each of its nets' configs."""

import inspect

import pytest

from resnet_jax import experiments
from resnet_jax.experiment import select

SHIPPED = ("cifar10", "explainer", "fig1", "fig4", "fig6", "fig7", "finetune_digits", "followup", "table2",
           "table3", "table4", "table5", "table6")


def test_every_shipped_experiment_is_registered():
    assert experiments.names() == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_an_experiment_builds_its_nets_and_cites_its_numbers(name):
    experiment = experiments.get(name)
    assert experiment.get_config is not None
    for net in experiment.nets:
        model = experiment.get_config(net.config_arg).model.name  # resnet34_B: resnet34 and option B
        assert model == f"cifar_{net.name}" or model.endswith(net.name.partition("_")[0])
    for net, numbers in experiment.paper.items():
        assert numbers and all(r.source for r in numbers.values()), net
        if experiment.nets and name != "cifar10":
            assert experiment.net(net), f"{name}: paper numbers for {net}, which it does not train"
    for figure in experiment.figures:
        for panel in figure.panels:  # a panel of the declared nets draws some of them
            assert not experiment.nets or select(panel.nets, [n.name for n in experiment.nets]), panel


@pytest.mark.parametrize("name", [n for n in SHIPPED if experiments.get(n).runner == "imagenet"])
def test_imagenet_experiments_name_their_nets(name):
    experiment = experiments.get(name)
    title = experiment.title.partition(":")[0]
    for net in experiment.nets:
        shortcut = experiment.get_config(net.name).model.shortcut
        assert shortcut == (net.name.partition("_")[2] or {"table2": "A", "fig4": "A"}.get(name, "B"))
    assert experiment.get_config(f"{experiment.nets[-1].name}:fixed").optim.lr_schedule == "fixed"
    with pytest.raises(ValueError, match=f"{title} trains"):
        experiment.get_config("resnet35")
    default = inspect.signature(experiment.get_config).parameters["net"].default
    assert experiment.net(default)


def test_table6_numbers_are_the_papers():
    paper = experiments.get("table6").paper  # the paper's Table 6
    assert [paper[f"resnet{d}"]["error"].value for d in (20, 32, 44, 56, 110, 1202)] == [
        8.75, 7.51, 7.17, 6.97, 6.43, 7.93]
    assert paper["resnet110"]["error_mean"].value == 6.61 and paper["resnet110"]["error"].source == "Table 6"


def test_select_keeps_declared_order_then_natural_order():
    assert select(("resnet110", "resnet*"), ["resnet20", "resnet8", "resnet110", "plain20"]) == [
        "resnet110", "resnet8", "resnet20"]
