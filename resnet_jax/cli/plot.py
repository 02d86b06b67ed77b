"""`resnet-jax plot fig1|fig6|curves`: training curves drawn like the paper's figures.

Thin lines: training error (mean over each log interval); bold lines: test error; x: iterations.
Runs are workdirs written by `resnet-jax train` (their metrics.jsonl).
"""

from __future__ import annotations

import argparse

from resnet_jax import runs as run_folder
from resnet_jax.analysis.plots import FIG1_NETS, FIG6_PANELS, existing, plot_fig1, plot_fig6, plot_runs

def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog=argv[0], description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("figure", choices=["fig1", "fig6", "curves"])
    parser.add_argument("--runs", required=True,
                        help="fig1/fig6: folder of runs named plain20, resnet56, ...; "
                             "curves: comma-separated LABEL=WORKDIR pairs")
    parser.add_argument("--out", required=True, help="PNG file to write")
    args = parser.parse_args(argv[1:])
    if args.figure == "curves":
        if bad := [pair for pair in args.runs.split(",") if "=" not in pair]:
            parser.exit(2, f"{argv[0]}: error: curves: --runs takes LABEL=WORKDIR pairs, got {bad[0]!r}\n")
        runs = dict(pair.split("=", 1) for pair in args.runs.split(","))
        missing = [w for w in runs.values() if not run_folder.has_metrics(w)]
    else:
        nets = FIG1_NETS if args.figure == "fig1" else sorted({n for v in FIG6_PANELS.values() for n in v})
        runs = existing(args.runs, nets)
        missing = [] if runs else [args.runs]
    if missing:
        parser.exit(2, f"{argv[0]}: error: no {run_folder.METRICS} in {', '.join(missing)}\n")
    {"fig1": plot_fig1, "fig6": plot_fig6}.get(args.figure, plot_runs)(
        *((args.runs, args.out) if args.figure != "curves" else (runs, args.out)))
    print(f"wrote {args.out}")
