"""`resnet-jax train --experiment table6:20 --workdir=runs/r20 [--config.FIELD=VALUE ...]`.

The experiments ship with the package (resnet_jax/experiments/, one file per table or figure), so
`--experiment NAME[:ARG]` works wherever the package is installed; `--config=FILE.py[:ARG]` loads any
experiment file instead (in a checkout, `--config=experiments/table6.py:20` is `--experiment table6:20`).
`resnet-jax train --help` lists the experiments, the flags and every config field with its default
and meaning. Exit codes: 0 finished (or preempted after saving a checkpoint: rerun to resume), 1 the
loss diverged, 2 bad configuration, flags, experiment file, workdir (or another run is using it) or
dataset, 3 a write failed (disk full, I/O error, permissions: the last good checkpoint is named;
rerun to resume), 4 a multi-process run lost a process (restart all to resume). Multi-host: run
the same command on every host with --coordinator/--num_processes/--process_id, or --distributed
where JAX detects them (TPU pods, Slurm, Open MPI); see docs/scaling.md.
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import os
import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from resnet_jax import experiments
from resnet_jax.config_schema import FIELDS, PATHS, SECTIONS, get, lookup, parse_value, suggest
from resnet_jax.data import READS_DATA_DIR, DatasetError, default_source_problem
from resnet_jax.data import spec as dataset_spec

_EXPERIMENT = flags.DEFINE_string(
    "experiment", None, "NAME[:ARG] of an experiment shipped with the package, e.g. table6:110 "
    "(listed above).")
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Instead of --experiment: an experiment file FILE.py[:ARG], e.g. "
    "experiments/table6.py:110 in a checkout, or your own.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: metrics, checkpoints, results.")
_STEPS = flags.DEFINE_integer(
    "steps", None, "Shorter run with the paper schedule's shape (lr milestones at the same fractions); "
    "log/eval/checkpoint intervals scale with it, except one typed as --config.log_every/eval_every/"
    "checkpoint_every (the typed value wins). Unlike --config.steps, which changes only the length.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator", None, "Multi-process: host:port of process 0 (or env JAX_COORDINATOR_ADDRESS).")
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "Multi-process: number of processes (or env JAX_NUM_PROCESSES).")
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "Multi-process: this process's index, 0..num_processes-1 (or env JAX_PROCESS_ID).")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Multi-process with the settings detected by JAX (TPU pods, Slurm, Open MPI).")
_SEEDS = flags.DEFINE_integer(
    "seeds", None, "Train seeds --config.seed..seed+N-1 together in one program, each logged in "
    "WORKDIR/seed{s}/ (same as --config.num_seeds=N; --config.seeds_mode=loop|vmap|devices).")
_OWN_FLAGS = (_EXPERIMENT, _CONFIG, _WORKDIR, _STEPS, _SEEDS, _COORDINATOR, _NUM_PROCESSES, _PROCESS_ID,
              _DISTRIBUTED)


_HELP_ARGS = ("-h", "-help", "--help", "--helpshort", "-?")


def _fail(message: str, code: int) -> None:
    print(f"resnet-jax train: error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(code)


def _load_module(path: str):
    """An experiment file, run as a module (a shipped one, or the user's own)."""
    module_spec = importlib.util.spec_from_file_location("resnet_jax_experiment", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def _first_param(get_config) -> inspect.Parameter | None:
    """The argument of an experiment's get_config (its ARG in NAME:ARG), if it takes one."""
    params = list(inspect.signature(get_config).parameters.values())
    return params[0] if params else None


def _experiments() -> list[tuple[str, str, str]]:
    """(NAME:ARG, the argument's default, the experiment's title and nets) of each shipped one."""
    found = []
    for name in experiments.names():
        experiment = experiments.get(name)
        param = _first_param(experiment.get_config)
        empty = param is None or param.default is inspect.Parameter.empty
        default = None if empty else param.default
        nets = ", ".join(net.config_arg for net in experiment.nets)
        found.append((f"{name}:{experiment.arg}", f"default {default}" if default is not None else "",
                      experiment.title + (f" [sweep: {nets}]" if nets else "")))
    return found


def _help() -> str:
    from resnet_jax.configs import cifar_config, imagenet_config  # noqa: PLC0415

    lines = ["usage: resnet-jax train --experiment NAME[:ARG] --workdir=DIR [--config.FIELD=VALUE ...] "
             "[flags]", "       (or --config=FILE.py[:ARG] for an experiment file: in a checkout, "
             "experiments/NAME.py[:ARG] is --experiment NAME[:ARG])", "",
             "experiments (--experiment NAME:ARG):"]
    lines += [f"  {usage:<16} {default:<17} {doc}" for usage, default, doc in _experiments()]
    lines += ["", "flags:"]
    for holder in _OWN_FLAGS:
        lines.append(f"  --{holder.name:<14} {flags.FLAGS[holder.name].help}")
    lines += ["", "config fields (--config.FIELD=VALUE, or --config.SECTION.FIELD; default of the CIFAR "
              "experiments, [ImageNet's where it differs]):"]
    cifar, imagenet = cifar_config(), imagenet_config()
    for section in SECTIONS:
        lines.append(f" {section}: --config.{section}.FIELD")
        for field in [f for f, spec in FIELDS.items() if spec.section == section]:
            ours, theirs = get(cifar, field), get(imagenet, field)
            default = repr(ours) + (f" [{theirs!r}]" if theirs != ours else "")
            path = PATHS[field].partition(".")[2]
            doc = (f"(--config.{PATHS[field]}) " if path != field else "") + FIELDS[field].doc
            lines.append(f"  {field:<19} {default:<26} {doc}")
    lines += ["", "exit codes: 0 finished or preempted after a checkpoint, 1 diverged, 2 bad input, "
              "3 I/O failure, 4 a lost process (multi-process)",
              "--helpfull lists absl's and JAX's flags too."]
    return "\n".join(lines)


def _flag_spec(argv: list[str], name: str) -> str | None:
    """The value of flag `name` (`--name=X`, `--name X`, one dash too), as absl reads it."""
    for i, arg in enumerate(argv):
        if match := re.match(rf"^--?{name}(=|$)", arg):
            return arg[match.end():] if match.group(1) else (argv[i + 1] if i + 1 < len(argv) else None)
    return None


def _experiment_config_spec(argv: list[str]) -> tuple[list[str], str | None, str | None]:
    """argv with `--experiment NAME[:ARG]` given as the --config of the shipped file, the --config
    spec, and how the user named the experiment (for messages)."""
    experiment, config = _flag_spec(argv, "experiment"), _flag_spec(argv, "config")
    if experiment is None:
        return argv, config, config
    if config is not None:
        _fail("--experiment and --config both name an experiment: give one", 2)
    name, sep, arg = experiment.partition(":")
    if name not in experiments.names():
        _fail(experiments.unknown(name), 2)
    spec = f"{experiments.module_file(name)}{sep}{arg}"
    return [argv[0], f"--config={spec}", *argv[1:]], spec, experiment


def _load_experiment(spec: str, shown: str):
    """get_config(ARG) of `FILE.py[:ARG]`, or one line (naming the experiment as `shown`) saying
    what is wrong."""
    path, _, arg = spec.partition(":")
    if not os.path.isfile(path):
        names = ", ".join(usage for usage, _, _ in _experiments())
        _fail(f"no experiment file {path!r} (the experiments, by --experiment: {names})", 2)
    try:
        return _load_module(path).get_config(*([arg] if arg else []))
    except Exception as e:  # noqa: BLE001 (the user's file: any failure is reported in one line)
        _fail(f"{shown}: {type(e).__name__}: {e}", 2)


# --config.FIELD (flat name) or --config.SECTION.FIELD, =VALUE or VALUE next; --noconfig.FIELD for False.
_OVERRIDE = re.compile(r"^(-{1,2})(no)?config\.([\w.]+)(?:=(.*))?$", re.S)
_TYPED: set[str] = set()  # the fields given on the command line (flat names), for --steps


def _unknown_field(name: str, spec: str, shown: str) -> None:
    path = spec.partition(":")[0]
    param = _first_param(_load_module(path).get_config)  # loaded before: it ran already
    if param is not None and name.lower() == param.name.lower():
        named = f"--experiment {shown.partition(':')[0]}" if shown != spec else f"--config={path}"
        hint = f"; the {name} is the experiment's argument: {named}:VALUE"
    elif close := suggest(name):
        hint = f"; did you mean {close!r}?"
    else:
        hint = " (resnet-jax train --help lists them)"
    _fail(f"unknown config field {name!r}{hint}", 2)


def _config_overrides(argv: list[str], spec: str, shown: str) -> list[str]:
    """argv with each --config override named by its section path (absl's config flags know the
    nested names), after checking it against the schema: an unknown field or a value its field
    cannot take is one line, exit 2, before absl parses anything. Records the fields typed."""
    out = list(argv)
    for i, arg in enumerate(argv):
        if not (match := _OVERRIDE.match(arg)):
            continue
        dashes, negated, name, value = match.groups()
        field = lookup(name)
        if field is None:
            _unknown_field(name, spec, shown)
        is_bool = FIELDS[field].value_type is bool
        if value is None and is_bool:
            value = "false" if negated else "true"
        elif value is None:  # --config.FIELD VALUE
            value = argv[i + 1] if i + 1 < len(argv) else ""
        shown_arg = f"--config.{name}={value}"
        if negated and not is_bool:
            _fail(f"--noconfig.{name}: {field} is not True or False", 2)
        try:
            parse_value(field, value)
        except ValueError as e:
            _fail(f"{shown_arg}: {e}", 2)
        given = "" if match.group(4) is None else f"={value}"
        out[i] = f"{dashes}{negated or ''}config.{PATHS[field]}{given}"
        _TYPED.add(field)
    return out


def _flag_error(error: flags.Error) -> str:
    """absl's flag error as one line; an unknown flag with "did you mean"."""
    if isinstance(error, flags.UnrecognizedFlagError):
        close = difflib.get_close_matches(error.flagname, [h.name for h in _OWN_FLAGS], n=1)
        return (f"unknown flag --{error.flagname}"
                + (f"; did you mean --{close[0]}?" if close else " (resnet-jax train --help lists them)"))
    return str(error).strip().splitlines()[0]


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with every mistake reported in one line (exit 2) before any work, and
    `--help` listing the experiments and config fields (exit 0)."""
    _TYPED.clear()
    if any(arg in _HELP_ARGS for arg in argv[1:]):
        print(_help())
        sys.exit(0)
    argv, spec, shown = _experiment_config_spec(argv)
    if spec is None:
        _fail("missing --experiment NAME[:ARG] (resnet-jax train --help lists the experiments)", 2)
    _load_experiment(spec, shown)  # a broken experiment file is one line, not absl's traceback
    argv = _config_overrides(argv, spec, shown)
    sys.argv = argv  # config_flags reads its --config.* overrides from sys.argv
    try:
        rest = flags.FLAGS(argv)
    except flags.Error as e:
        _fail(_flag_error(e), 2)
    if len(rest) > 1:
        _fail(f"unexpected arguments: {' '.join(rest[1:])}", 2)
    if _WORKDIR.value is None:
        _fail("missing --workdir (resnet-jax train --help lists the flags)", 2)
    return rest


def _data_dir_problem(config) -> str | None:
    """A data_dir that does not exist, or one given to a dataset that reads none."""
    data_dir = config.data.data_dir
    if data_dir is None:
        return None  # tfds's default folder: checked after the net (`_main`)
    if config.data.name not in READS_DATA_DIR:
        return (f"dataset {config.data.name!r} does not read a data_dir: drop --config.data_dir "
                f"(datasets read from one: {', '.join(READS_DATA_DIR)})")
    if not os.path.exists(data_dir):  # a file is fine: cifar10 reads cifar-10-*.tar.gz as it is
        hint = dataset_spec(config.data.name).get_it
        return f"data_dir {data_dir!r}: no such file or directory" + (f" ({hint})" if hint else "")
    return None


def _configured():
    """The experiment's config with --steps and --seeds applied, checked as far as needs no JAX
    (configs.check_fields), so a mistake answers before JAX loads; ConfigError if not valid."""
    from resnet_jax.configs import ConfigError, check_fields, scaled_steps  # noqa: PLC0415

    config = _CONFIG.value.copy_and_resolve_references()
    if _STEPS.value is not None:
        if _STEPS.value <= 0:
            raise ConfigError(f"--steps must be positive, got {_STEPS.value}")
        config = scaled_steps(config, _STEPS.value, keep=tuple(_TYPED))
    if _SEEDS.value is not None:
        if _SEEDS.value <= 0:
            raise ConfigError(f"--seeds must be positive, got {_SEEDS.value}")
        config.run.num_seeds = _SEEDS.value
    check_fields(config)
    if problem := _data_dir_problem(config):
        raise ConfigError(problem)
    return config


def _main(argv):
    del argv  # checked by _parse_flags
    from resnet_jax.configs import ConfigError  # noqa: PLC0415

    try:
        config = _configured()
    except ConfigError as e:
        _fail(str(e), 2)
    # Imported here so `--help` and config mistakes stay fast. The distributed system must be
    # joined before anything touches a JAX backend, and importing the loop may (module-level constants).
    from resnet_jax.train import distributed  # noqa: PLC0415

    try:
        distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                               auto=_DISTRIBUTED.value)
    except distributed.DistributedConfigError as e:
        _fail(str(e), 2)

    from resnet_jax.configs import validate  # noqa: PLC0415
    from resnet_jax.train.loop import (  # noqa: PLC0415
        Preempted, RunIOError, TrainingDiverged, train_and_evaluate)
    from resnet_jax.train.workdir import check_workdir  # noqa: PLC0415

    logging.set_verbosity(logging.INFO)
    # Our progress at INFO; other libraries (orbax narrates every save, jax lists absent backends)
    # only from WARNING up.
    logging.get_absl_handler().addFilter(
        lambda r: r.levelno >= logging.converter.STANDARD_WARNING or "resnet_jax" in r.pathname)
    try:
        validate(config)  # the net's options and the devices: before anything is written
        if config.data.data_dir is None and (problem := default_source_problem(config.data.name)):
            raise ConfigError(problem)
        check_workdir(_WORKDIR.value)
    except ConfigError as e:
        _fail(str(e), 2)

    try:
        train_and_evaluate(config, _WORKDIR.value)
    except (ConfigError, DatasetError) as e:
        _fail(str(e), 2)
    except TrainingDiverged as e:
        _fail(str(e), 1)
    except RunIOError as e:
        _fail(str(e), 3)
    except Preempted as e:
        print(f"resnet-jax train: {e}", file=sys.stderr)
        distributed.leave()
        sys.exit(0)
    distributed.leave()  # every process finished: process 0, which hosts the job, leaves last


def main(argv: list[str]) -> None:
    app.run(_main, argv=argv, flags_parser=_parse_flags)
