"""`resnet-jax report --experiment NAME --runs DIR --out DIR`: an experiment's tables and figures
from its runs (RUNS/NET, as `resnet-jax sweep` trains them).

Tables (OUT/TABLE.md and .json): one row per net with finished runs (results.json), ours beside the
paper's numbers, in the columns the experiment declares; runs of one net trained with several seeds
are averaged (mean ± std, as the paper reports for ResNet-110). Figures (OUT/FIGURE.png): the nets'
training and test error curves, panels as the experiment declares, the runs' data and schedule
named on the figure beside the paper's. `resnet-jax report table6 --runs DIR --out DIR` is
`--experiment table6`. ImageNet experiments are tested and tabulated by `resnet-jax imagenet
--table N --eval_only RUNS`, which this calls for them.

Exit codes: 0 written; 2 unknown experiment, or no run to report; 3 a file could not be written.
"""

from __future__ import annotations

import argparse
import os
import sys

from resnet_jax import experiments
from resnet_jax import runs as run_folder
from resnet_jax.experiment import Experiment


def experiment_named(name: str, prog: str) -> Experiment:
    """The registered experiment `name`, or one line (with the closest name) and exit 2."""
    try:
        return experiments.get(name)
    except KeyError:
        print(f"{prog}: error: {experiments.unknown(name)}", file=sys.stderr)
        sys.exit(2)


def write_report(experiment: Experiment, runs_dir: str, out: str) -> list[str]:
    """OUT/TABLE.md + .json for each declared table with rows, OUT/FIGURE.png for each figure with
    runs; the markdown texts and the figures' paths written."""
    from resnet_jax.analysis import plots, report  # noqa: PLC0415 (matplotlib only when reporting)

    results = run_folder.load_results(runs_dir) if os.path.isdir(runs_dir) else []
    written = []
    for table in experiment.tables:
        rows = report.rows(results, table, experiment)
        if rows:
            os.makedirs(out, exist_ok=True)
            text = report.markdown(rows, table, experiment)
            run_folder.write_text(os.path.join(out, f"{table.name}.md"), text)
            run_folder.write_json(os.path.join(out, f"{table.name}.json"), rows)
            written.append(text)
    for figure in experiment.figures:
        path = os.path.join(out, f"{figure.name}.png")
        if plots.plot_figure(figure, runs_dir, path, experiment.setting):
            written.append(f"wrote {path}")
    return written


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog=argv[0], description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", metavar="EXPERIMENT", help="same as --experiment")
    parser.add_argument("--experiment", help=f"one of {', '.join(experiments.names())}")
    parser.add_argument("--runs", required=True, help="folder holding one workdir per net (RUNS/NET)")
    parser.add_argument("--out", required=True, help="folder for the tables (.md, .json) and figures (.png)")
    args = parser.parse_args(argv[1:])
    if (args.name is None) == (args.experiment is None):
        parser.exit(2, f"{argv[0]}: error: name one experiment (--experiment NAME)\n")
    name = args.name or args.experiment
    experiment = experiment_named(name, argv[0])
    if experiment.runner == "imagenet":
        from resnet_jax.cli import imagenet  # noqa: PLC0415
        imagenet.main([argv[0], "--table", experiment.table_id, "--eval_only", args.runs, "--out", args.out])
        return
    written = write_report(experiment, args.runs, args.out)
    if not written:
        parser.exit(2, f"{argv[0]}: error: no runs of {name} (results.json, metrics.jsonl) under "
                       f"{args.runs}\n")
    print("\n".join(written))
