"""The paper's experiments, one module per table or figure. Each declares `EXPERIMENT`
(resnet_jax.experiment.Experiment: its nets, the paper's numbers, its tables and figures) and keeps
`get_config(ARG)`, the run's config (resnet_jax.configs), for `--config=experiments/NAME.py:ARG`.
Shipped with the package, so an installed `resnet-jax` names them without a checkout:
`resnet-jax train --experiment table6:110` runs `table6.get_config("110")`, `resnet-jax sweep
--experiment table6` trains its nets and writes its report, `resnet-jax train --help` lists them.

A module here is an experiment by being here: `names()` lists the package's modules (not `_*`),
`get(name)` imports one. Only the command line imports this package; it hands the records to the
analysis code.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import pkgutil

from resnet_jax.experiment import Experiment


def names() -> tuple[str, ...]:
    """The shipped experiments, by module name."""
    return tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")))


def unknown(name: str) -> str:
    """The one line for a name that is not an experiment: the closest one, and the list."""
    close = difflib.get_close_matches(name, names(), n=1)
    return (f"no experiment {name!r}" + (f"; did you mean {close[0]!r}?" if close else "")
            + f" (the experiments: {', '.join(names())})")


@functools.cache
def get(name: str) -> Experiment:
    """The experiment declared in resnet_jax/experiments/NAME.py; KeyError for another name."""
    if name not in names():
        raise KeyError(name)
    return importlib.import_module(f"{__name__}.{name}").EXPERIMENT


def module_file(name: str) -> str:
    """The file of a shipped experiment (for `--config=FILE:ARG`)."""
    return importlib.import_module(f"{__name__}.{name}").__file__
