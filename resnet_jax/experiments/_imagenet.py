"""What the ImageNet experiments (Tables 2-4, Fig 4) share: a net by short name, checked against
the experiment's nets (imagenet_net_config: `resnet34_C`, `resnet50:fixed`)."""

from resnet_jax.configs import imagenet_net_config
from resnet_jax.experiment import Experiment, Net, reported


def experiment(title: str, table_id: str, nets: tuple[str, ...], default_shortcut: str, *,
               default: str, source: str = "", numbers: dict | None = None) -> Experiment:
    """An ImageNet experiment trained and tested by `resnet-jax imagenet --table TABLE_ID`;
    `numbers` {net: (top-1,) or (top-1, top-5)} as the paper's `source` reports them."""

    def get_config(net: str = default):
        if net.partition(":")[0] not in nets:
            raise ValueError(f"{title.partition(':')[0]} trains {nets}; got {net!r}")
        return imagenet_net_config(net, default_shortcut)

    paper = {net: reported(source, **dict(zip(("top1", "top5"), values)))
             for net, values in (numbers or {}).items()}
    return Experiment(title, get_config, nets=tuple(Net(n) for n in nets), paper=paper,
                      runner="imagenet", table_id=table_id, setting="ImageNet, 60e4")


def published_tables() -> dict[str, tuple[str, dict[str, tuple[float, float]]]]:
    """{test mode: ("paper Table N", {net: (top-1, top-5)})} of the tables with both numbers: how
    `resnet-jax eval` puts the paper beside a net tested with that protocol."""
    from resnet_jax import experiments  # noqa: PLC0415 (the registry imports this module's users)

    found = {}
    for name, mode in (("table3", "ten_crop"), ("table4", "multi_scale")):
        paper = experiments.get(name).paper
        found[mode] = (f"paper {next(iter(paper.values()))['top1'].source}",
                       {net: (n["top1"].value, n["top5"].value) for net, n in paper.items()})
    return found
