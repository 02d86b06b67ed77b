"""`resnet-jax imagenet --table 2|3|4|fig4`: train the table's nets, test them, write paper-vs-ours.

Every net trains through the shared loop into `<runs>/<run name>` (resuming if a checkpoint is
there), then is tested as the paper does for that table: 10-crop for Tables 2 and 3, the
fully-convolutional multi-scale test for Table 4, centre-crop curves for Fig 4. Tables sharing a
net share its run (Table 3's ResNet-34 A is Table 2's ResNet-34). `--eval_only RUNS` only tests
the checkpoints found there. Writes `<out>/<table>_imagenet.md` and `.json`. The nets and the
paper's numbers are the experiments' (resnet_jax/experiments/table2.py ...); `--dataset` and
`--config.FIELD=VALUE` (e.g. --config.batch_size=128 --config.num_workers=8) set every net's config.

Exit codes, as `resnet-jax train`'s: 0 done, or preempted after a checkpoint (rerun resumes);
1 a net's loss diverged; 2 bad flags, config or dataset; 3 a checkpoint or log write failed.
"""

from __future__ import annotations

import argparse
import os
import sys

from resnet_jax import experiments
from resnet_jax.analysis import imagenet_tables as tables
from resnet_jax.cli import overrides
from resnet_jax.experiment import Experiment


def _experiments() -> dict[str, Experiment]:
    """{table id: experiment} of the experiments this command trains and tests."""
    found = (experiments.get(name) for name in experiments.names())
    return {e.table_id: e for e in found if e.runner == "imagenet"}


def parse(argv: list[str]) -> tuple[argparse.Namespace, tuple[str, ...]]:
    """The flags (the --config.* ones as `args.config`) and the table's nets to run; exits 2 with one
    line on bad flags."""
    parser = argparse.ArgumentParser(prog=argv[0], description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", required=True, choices=sorted(_experiments()))
    parser.add_argument("--data_dir", default=None,
                        help="ILSVRC2012: a folder of train/ + val/, of the official tars, or a tfds "
                             "data_dir (docs/data.md)")
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps per net (default: the paper's 60e4); the lr schedule "
                             "and intervals shrink with it")
    parser.add_argument("--runs", default="runs/imagenet", help="one subdirectory per trained net")
    parser.add_argument("--eval_only", metavar="RUNS", default=None,
                        help="no training: test the checkpoints under RUNS")
    parser.add_argument("--nets", default=None, help="comma-separated subset of the table's nets")
    parser.add_argument("--schedule", choices=["plateau", "fixed"], default="plateau")
    parser.add_argument("--out", default="results", help="where the .md and .json go")
    parser.add_argument("--dataset", default="imagenet", help="every net's config.data.name")
    parser.epilog = ("--config.FIELD=VALUE  set a config field of every net (resnet-jax train --help "
                     "lists them)")
    rest, config_flags = overrides.split(argv[1:])
    args = parser.parse_args(rest)
    args.config = config_flags
    if args.steps is not None and args.steps <= 0:
        parser.exit(2, f"{argv[0]}: error: --steps must be positive\n")
    if args.eval_only and not os.path.isdir(args.eval_only):
        parser.exit(2, f"{argv[0]}: error: --eval_only {args.eval_only}: no such directory\n")
    nets = tuple(net.name for net in _experiments()[args.table].nets)
    if args.nets:
        unknown = set(args.nets.split(",")) - set(nets)
        if unknown:
            parser.exit(2, f"{argv[0]}: error: {sorted(unknown)} not in table {args.table}: {nets}\n")
        nets = tuple(n for n in nets if n in args.nets.split(","))
    return args, nets


def net_config(experiment: Experiment, net: str, *, schedule: str, dataset: str = "imagenet",
               data_dir: str | None = None, steps: int | None = None, config_flags=()):
    """The config `net` of `experiment` trains with, under this command's flags; ConfigError in one
    line for a bad --config flag."""
    from resnet_jax.configs import ConfigError  # noqa: PLC0415

    config = experiment.get_config(f"{net}:{schedule}")
    config.data.name, config.data.data_dir = dataset, data_dir
    try:
        return overrides.apply(config, list(config_flags), steps=steps)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def run_table(table: str, nets: tuple[str, ...], runs: str, *, train: bool, schedule: str,
              data_dir: str | None, steps: int | None, dataset: str = "imagenet",
              config_flags=()) -> list[dict]:
    """Train (if `train`) and test each net of `table` in `<runs>/<run name>`; the table's rows."""
    from resnet_jax.train.imagenet_eval import evaluate_checkpoint  # noqa: PLC0415 (keep --help fast)
    from resnet_jax.train.loop import train_and_evaluate  # noqa: PLC0415

    experiment = _experiments()[table]
    mode = tables.MODES[table]
    configs = [net_config(experiment, net, schedule=schedule, dataset=dataset, data_dir=data_dir,
                          steps=steps, config_flags=config_flags) for net in nets]  # all checked first
    rows = []
    for net, config in zip(nets, configs):
        workdir = os.path.join(runs, tables.run_name(config))
        if train:
            train_and_evaluate(config, workdir)
        ours = (tables.fig4_result(workdir) if mode == "center"
                else evaluate_checkpoint(config, workdir, mode))
        rows.append({"net": net, "run": tables.run_name(config),
                     "paper": experiment.paper_values(net), "ours": ours or None, "mode": mode})
    return rows


def main(argv: list[str]) -> None:
    args, nets = parse(argv)
    from resnet_jax.data import DatasetError  # noqa: PLC0415
    from resnet_jax.runs import RunIOError  # noqa: PLC0415
    from resnet_jax.train.loop import ConfigError, TrainingDiverged  # noqa: PLC0415
    from resnet_jax.train import orbax_quiet  # noqa: PLC0415
    from resnet_jax.train.preemption import Preempted  # noqa: PLC0415

    orbax_quiet.silence_aborted_io()  # a failed checkpoint read or write stays one line
    runs = args.eval_only or args.runs
    try:
        rows = run_table(args.table, nets, runs, train=not args.eval_only, schedule=args.schedule,
                         data_dir=args.data_dir, steps=args.steps, dataset=args.dataset,
                         config_flags=args.config)
    except Preempted as e:
        print(f"{argv[0]}: {e}", file=sys.stderr)
        sys.exit(0)
    except (ConfigError, DatasetError, TrainingDiverged, RunIOError) as e:
        print(f"{argv[0]}: error: {e}", file=sys.stderr)
        sys.exit(1 if isinstance(e, TrainingDiverged) else 3 if isinstance(e, RunIOError) else 2)
    text, *figures = tables.write(_experiments()[args.table], rows, runs, args.out)
    print(text)
    for path in figures:
        print(f"wrote {path}")
