"""`resnet-jax plot fig1|fig6|curves`: training curves drawn like the paper's figures.

Thin lines: training error (mean over each log interval); bold lines: test error; x: iterations.
Runs are workdirs written by `resnet-jax train` (their metrics.jsonl). fig1 and fig6 draw the
panels their experiments declare (resnet_jax/experiments/); every figure names the runs' dataset
and schedule on its face.
"""

from __future__ import annotations

import argparse

from resnet_jax import experiments
from resnet_jax import runs as run_folder


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog=argv[0], description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("figure", choices=["fig1", "fig6", "curves"])
    parser.add_argument("--runs", required=True,
                        help="fig1/fig6: folder of runs named plain20, resnet56, ...; "
                             "curves: comma-separated LABEL=WORKDIR pairs")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--title", default="training curves", help="curves: the figure's title")
    args = parser.parse_args(argv[1:])
    from resnet_jax.analysis import plots  # noqa: PLC0415 (matplotlib after the flags are checked)

    if args.figure == "curves":
        if bad := [pair for pair in args.runs.split(",") if "=" not in pair]:
            parser.exit(2, f"{argv[0]}: error: curves: --runs takes LABEL=WORKDIR pairs, got {bad[0]!r}\n")
        runs = dict(pair.split("=", 1) for pair in args.runs.split(","))
        if missing := [w for w in runs.values() if not run_folder.has_metrics(w)]:
            parser.exit(2, f"{argv[0]}: error: no {run_folder.METRICS} in {', '.join(missing)}\n")
        plots.plot_runs(runs, args.out, args.title)
    else:
        experiment = experiments.get(args.figure)
        (figure,) = experiment.figures
        if not plots.plot_figure(figure, args.runs, args.out, experiment.setting):
            parser.exit(2, f"{argv[0]}: error: no {run_folder.METRICS} in {args.runs}/NET for any of "
                           f"{', '.join(n.name for n in experiment.nets)}\n")
    print(f"wrote {args.out}")
