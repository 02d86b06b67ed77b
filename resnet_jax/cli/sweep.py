"""`resnet-jax sweep --experiment NAME [--nets a,b] [--steps N] [--seeds K] [--dataset D]
[--data_dir P] [--out DIR] [--config.FIELD=VALUE ...]`: train every net of an experiment, then
write its report (`resnet-jax report`: tables and figures in OUT).

Each net trains as `resnet-jax train --experiment NAME:ARG --workdir RUNS/NET` (RUNS is OUT/runs
unless --runs names another folder), one child process after the other. A run folder already
there is used only for the same request: a finished run is kept, an interrupted one resumes from
its last checkpoint, and one trained with another config (steps, lr, dataset, seeds, ...; speed
and logging fields aside) is refused with one line naming the field, before anything trains (exit
2): give another --out, or remove that folder to retrain it. SIGTERM or SIGINT is passed on to the
training child as SIGTERM (it saves a checkpoint and exits 0); the sweep then stops with the
child's exit code, so a scheduler that restarts it never overlaps the old trainer. Relative paths
are the caller's. ImageNet experiments (Tables 2-4, Fig 4) are `resnet-jax imagenet --table N`.

Exit codes: those of `resnet-jax train` (0 done, or preempted after a checkpoint; 1 diverged;
2 bad input; 3 a write failed), from the first net that did not finish.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from resnet_jax import config_checks, experiments
from resnet_jax import runs as run_folder
from resnet_jax.cli import overrides
from resnet_jax.cli.report import experiment_named, write_report
from resnet_jax.config_schema import RESUME_FREE
from resnet_jax.experiment import Experiment, flat, select

# A kept run may differ in the fields a resume may change (config_schema's resume="free": how fast it
# runs, what it logs, where its data is), except `steps`: a resume may lengthen a run, but a finished
# run of another length is another result. `image_backend` is skipped although a resume must keep
# it: a run records what "auto" resolved to, which "auto" asked would never equal (a resumed run is
# still held to it by its checkpoint's identity).
NOT_COMPARED = frozenset(RESUME_FREE) - {"steps"} | {"image_backend"}


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="--config.FIELD=VALUE  passed to every `resnet-jax train` "
                                            "(resnet-jax train --help lists the fields)")
    parser.add_argument("--experiment", required=True, help=f"one of {', '.join(experiments.names())}")
    parser.add_argument("--nets", default=None, help="comma-separated nets (default: the experiment's)")
    parser.add_argument("--steps", type=int, default=None,
                        help="shorter schedule with the paper's shape (as `resnet-jax train --steps`)")
    parser.add_argument("--seeds", type=int, default=1, help="K seeds per net trained together (one run)")
    parser.add_argument("--dataset", default=None, help="every net's config.data.name (default the recipe's)")
    parser.add_argument("--data_dir", default=None, help="every net's config.data.data_dir")
    parser.add_argument("--out", default=None, help="report folder (default out/NAME_DATASET)")
    parser.add_argument("--runs", default=None, help="run folders, one per net (default OUT/runs)")
    parser.add_argument("--no_report", action="store_true", help="train only")
    return parser


def _nets(experiment: Experiment, asked: str | None, fail) -> list[tuple[str, str]]:
    """[(net, get_config's argument)] to train: the experiment's, or those asked that it accepts
    (any net where it declares none; else its nets and those its tables and figures draw)."""
    if asked is None:
        if not experiment.nets:
            fail("this experiment names no nets of its own: give --nets")
        return [(n.name, n.config_arg) for n in experiment.nets]
    names = [n for n in asked.split(",") if n]
    patterns = tuple(n.name for n in experiment.nets) + tuple(
        p for item in (*experiment.tables, *(p for f in experiment.figures for p in f.panels))
        for p in item.nets)
    if experiment.nets and (other := [n for n in names if not select(patterns, [n])]):
        fail(f"{other[0]!r} is not a net of this experiment (its nets: "
             f"{', '.join(n.name for n in experiment.nets)})")
    return [(n, experiment.net(n).config_arg if experiment.net(n) else n) for n in names]


def requested_config(experiment: Experiment, arg: str, args, config_flags: list[str]):
    """The config `resnet-jax train` will run for this net, built the same way."""
    config = overrides.apply(experiment.get_config(arg), _train_config_flags(args, config_flags),
                             steps=args.steps)
    if args.seeds > 1:
        config.run.num_seeds = args.seeds
    return config


def _train_config_flags(args, config_flags: list[str]) -> list[str]:
    own = [f"--config.dataset={args.dataset}"] if args.dataset else []
    own += [f"--config.data_dir={os.path.abspath(args.data_dir)}"] if args.data_dir else []
    return own + config_flags


def mismatch(requested, workdir: str) -> str | None:
    """How the run in `workdir` differs from the requested config ("steps: 300 there, 600 asked"),
    None if it does not (or has no config yet)."""
    try:
        saved = flat(run_folder.read_json(run_folder.config_path(workdir)))
    except (OSError, ValueError):
        return None
    asked = flat(requested.to_dict())
    for field in sorted(set(saved) & set(asked) - NOT_COMPARED):
        there, wanted = saved[field], asked[field]
        if isinstance(there, list) or isinstance(wanted, tuple):
            there, wanted = list(there or []), list(wanted or [])
        if there != wanted:
            return f"{field}: {there!r} there, {wanted!r} asked"
    return None


def run_child(argv: list[str]) -> int:
    """Run `argv`, passing SIGTERM/SIGINT on to it as SIGTERM; its exit code, and exit with it if a
    signal came (the sweep stops when its trainer was told to)."""
    child = subprocess.Popen(argv, process_group=0)  # Ctrl-C reaches us, and we pass it on once
    signals = []

    def forward(signum, _frame):
        signals.append(signum)
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if signals:
        sys.exit(code)
    return code


def main(argv: list[str]) -> None:
    rest, config_flags = overrides.split(argv[1:])
    parser = _parser(argv[0])
    args = parser.parse_args(rest)

    def fail(message: str) -> None:
        parser.exit(2, f"{argv[0]}: error: {message}\n")

    experiment = experiment_named(args.experiment, argv[0])
    for flag, value in (("--steps", args.steps), ("--seeds", args.seeds)):
        if value is not None and value <= 0:
            fail(f"{flag} must be a positive integer, got {value}")
    if args.data_dir and not os.path.exists(args.data_dir):
        fail(f"--data_dir {args.data_dir}: no such file or directory")
    out = args.out or os.path.join("out", f"{args.experiment}_{args.dataset or 'default'}")
    runs = args.runs or os.path.join(out, "runs")
    nets = _nets(experiment, args.nets, fail)
    if experiment.runner == "imagenet":
        if args.seeds > 1:
            fail("ImageNet experiments train one seed per net")
        from resnet_jax.cli import imagenet  # noqa: PLC0415
        imagenet.main([argv[0], "--table", experiment.table_id, "--nets", ",".join(n for n, _ in nets),
                       "--runs", runs, "--out", out, *(["--steps", str(args.steps)] if args.steps else []),
                       *(["--dataset", args.dataset] if args.dataset else []),
                       *(["--data_dir", args.data_dir] if args.data_dir else []), *config_flags])
        return

    todo = []
    for net, arg in nets:  # every request checked before anything trains
        workdir = os.path.abspath(os.path.join(runs, net))
        try:
            requested = requested_config(experiment, arg, args, config_flags)
            config_checks.check_fields(requested)  # what `train` would refuse on any machine
            config_checks.validate_model(requested)
        except (ValueError, TypeError) as e:
            fail(f"{net}: {e}")
        if differs := mismatch(requested, workdir):
            fail(f"{os.path.join(runs, net)} holds a run of another config ({differs}): give another "
                 "--out, or remove that folder to retrain it")
        todo.append((net, arg, workdir))
    for net, arg, workdir in todo:
        if os.path.exists(run_folder.results_path(workdir)) or os.path.exists(run_folder.seeds_path(workdir)):
            print(f"== {net}: finished run in {os.path.join(runs, net)}, same config: kept", flush=True)
            continue
        print(f"== {net} -> {os.path.join(runs, net)}", flush=True)
        code = run_child([sys.executable, "-m", "resnet_jax.cli", "train",
                          f"--experiment={args.experiment}:{arg}", f"--workdir={workdir}",
                          *_train_config_flags(args, config_flags),
                          *([f"--steps={args.steps}"] if args.steps else []),
                          *([f"--seeds={args.seeds}"] if args.seeds > 1 else [])])
        if code:
            sys.exit(code)
    if not args.no_report:
        written = write_report(experiment, runs, out)
        print("\n".join(written) if written else f"(no table or figure declared by {args.experiment})")
