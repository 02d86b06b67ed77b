"""What an experiment declares: its nets (the sweep), the paper's numbers with their sources, and
what its tables and figures show. Each shipped experiment (resnet_jax/experiments/NAME.py) is one
`EXPERIMENT = Experiment(...)` beside its `get_config(ARG)`; `resnet-jax sweep`, `report` and
`train --help` read these records, so a new table is one file.

Plain records, importing nothing from the package: analysis code receives an Experiment from the
command line (the experiments themselves sit above everything but the command line).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections.abc import Callable, Mapping
from typing import Any

TRAIN, TEST = "train", "test"


@dataclasses.dataclass(frozen=True)
class Reported:
    """One number the paper reports, and where: "Table 6", "Sec 4.2 text", ..."""

    value: Any
    source: str


def reported(source: str, **values) -> dict[str, Reported]:
    """{key: Reported(value, source)} of numbers read from one place of the paper."""
    return {key: Reported(value, source) for key, value in values.items()}


@dataclasses.dataclass(frozen=True)
class Net:
    """One net of the sweep: trained into RUNS/`name` by `get_config(arg)` (arg defaults to name)."""

    name: str
    arg: str | None = None

    @property
    def config_arg(self) -> str:
        return self.name if self.arg is None else self.arg


_UNIT_NAMED = re.compile(r"(preact_?)?(bottleneck)?(\d+)(.*)")  # the follow-up's nets


def label(net: str) -> str:
    """The paper's name of a net: plain20 -> plain-20, resnet34_B -> ResNet-34 B; the follow-up's
    units by depth and unit: preact110 -> ResNet-110 pre-act, bottleneck164 -> ResNet-164 bottleneck,
    preact_bottleneck1001 -> ResNet-1001 bottleneck pre-act."""
    if m := _UNIT_NAMED.fullmatch(net):
        preact, bottleneck, depth, rest = m.groups()
        net = f"resnet{depth}" + " bottleneck" * bool(bottleneck) + " pre-act" * bool(preact) + rest
    return net.replace("plain", "plain-").replace("resnet", "ResNet-").replace("_", " ")


def natural_key(name: str) -> tuple:
    """resnet8 before resnet20: digits compare as numbers."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def select(patterns: tuple[str, ...], names) -> list[str]:
    """The names matching any of `patterns` (fnmatch: "resnet*"), declared names in their order,
    then the others in natural order."""
    found = {n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)}
    declared = [p for p in patterns if p in found]
    return declared + sorted(found - set(declared), key=natural_key)


@dataclasses.dataclass(frozen=True)
class Column:
    """A table column: `key` of the row (ours), or of the paper's numbers when `paper`; `fmt` formats
    a value ("{:.2f}"); "{:.2f}±" appends the row's `KEY_std` when there is one. A paper key may name
    the row's dataset, "error_{dataset}": the paper's number for the data the row's runs used."""

    title: str
    key: str
    paper: bool = False
    fmt: str = "{}"


@dataclasses.dataclass(frozen=True)
class Table:
    """A table of one row per net matching `nets` (patterns over the runs' net names)."""

    name: str  # file stem: NAME.md, NAME.json
    title: str
    columns: tuple[Column, ...]
    nets: tuple[str, ...] = ("*",)
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Panel:
    """One axes of a figure: the runs of `nets` (patterns), their training and/or test curves."""

    title: str
    nets: tuple[str, ...]
    curves: tuple[str, ...] = (TRAIN, TEST)


@dataclasses.dataclass(frozen=True)
class Figure:
    """Error curves against iterations, drawn like the paper's (thin training, bold test)."""

    name: str  # file stem: NAME.png
    title: str  # "Fig 6"
    panels: tuple[Panel, ...]


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A paper experiment: `get_config(ARG)` gives one net's run config; `nets` is its sweep (`arg`
    names get_config's argument in `--help`); `paper` maps a net to the numbers the paper reports
    for it; `setting` is the paper's data and schedule, named on every figure beside ours. `runner`
    "imagenet": the nets are trained and tested by `resnet-jax imagenet --table TABLE_ID`."""

    title: str
    get_config: Callable[..., Any]
    nets: tuple[Net, ...]
    arg: str = "NET"
    paper: Mapping[str, Mapping[str, Reported]] = dataclasses.field(default_factory=dict)
    tables: tuple[Table, ...] = ()
    figures: tuple[Figure, ...] = ()
    setting: str = ""
    runner: str = "train"
    table_id: str = ""

    def net(self, name: str) -> Net | None:
        return next((n for n in self.nets if n.name == name), None)

    def paper_values(self, net: str) -> dict[str, Any]:
        return {key: r.value for key, r in self.paper.get(net, {}).items()}


def nets(*names: str) -> tuple[Net, ...]:
    """Nets trained by `get_config(name)`."""
    return tuple(Net(n) for n in names)


def flat(config: Mapping) -> dict[str, Any]:
    """A run's config (config.json, flat or in sections) as {flat field name: value}: field names
    are unique across sections (config_schema; a section's `name` is `model` or `dataset`)."""
    from resnet_jax.config_schema import FLAT, SECTIONS  # noqa: PLC0415 (light: no JAX)

    leaves = {}
    for key, value in config.items():
        if key in SECTIONS and isinstance(value, Mapping):
            leaves.update({FLAT.get(f"{key}.{name}", name): v for name, v in value.items()})
        else:
            leaves[key] = value
    return leaves
