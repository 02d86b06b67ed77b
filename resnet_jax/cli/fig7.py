"""Fig 7: std of the 3x3 layers' responses of trained plain and residual nets, as PNG and JSON.

`resnet-jax fig7 --runs DIR [--nets plain20 ...] [--out DIR/fig7.png]` reads
the runs DIR/plain20, DIR/plain56, DIR/resnet20, ... (workdirs of `resnet-jax train`), and draws the
paper's two panels: stds in the layers' original order (top) and sorted descending (bottom).
`resnet-jax fig7 --workdir RUN [--workdir RUN2 ...] --data_dir CIFAR --out DIR` draws any run
folders instead: runs trained here and runs of `resnet-jax import` (e.g. akamaster's trained
ResNet-20), each fed its own input mean and convention as `eval` does, on the test split of the
CIFAR archive or folder given (a subset of the test batch will do for an imported net).
`--out` is the PNG's path (ending .png) or a folder that gets fig7.png and fig7.json; the folders
of --out and --json are made if needed.

Exit codes: 0 written; 2 a run that cannot be read or measured; 3 an output that cannot be written
(checked before the work).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from resnet_jax import runs
from resnet_jax.analysis.fig7 import NETS, figure_title, run_record, save_fig7, unique_labels, write_json
from resnet_jax.analysis.load import RunError
from resnet_jax.train import orbax_quiet


def output_paths(out: str | None, json_path: str | None, runs_dir: str | None) -> tuple[str, str]:
    """(PNG path, JSON path): `out` a .png path or a folder (default RUNS/fig7.png)."""
    if out is None:
        out = os.path.join(runs_dir, "fig7.png")
    elif not out.lower().endswith(".png"):
        out = os.path.join(out, "fig7.png")
    return out, json_path or os.path.splitext(out)[0] + ".json"


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    parser = argparse.ArgumentParser(prog=os.path.basename(argv[0]),
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=None, help="directory holding one workdir per net")
    parser.add_argument("--nets", nargs="+", default=None, help=f"with --runs; default: {' '.join(NETS)}")
    parser.add_argument("--workdir", action="append", default=None,
                        help="a run folder (resnet-jax train or import); repeat for several")
    parser.add_argument("--out", default=None,
                        help="PNG path (.png) or a folder for fig7.png and fig7.json "
                             "(default: RUNS/fig7.png)")
    parser.add_argument("--json", default=None, help="JSON path (default: the PNG's, .json)")
    parser.add_argument("--data_dir", default=None, help="override the runs' dataset location")
    args = parser.parse_args(argv[1:])
    if (args.runs is None) == (args.workdir is None):
        parser.error("give --runs DIR (with --nets) or one or more --workdir RUN")
    if args.workdir is not None and args.nets is not None:
        parser.error("--nets names folders of --runs DIR; with --workdir, give each run's folder")
    if args.workdir is not None and args.out is None:
        parser.error("--out is required with --workdir (a .png path or a folder)")
    workdirs = args.workdir or [os.path.join(args.runs, net) for net in args.nets or NETS]
    out, json_path = output_paths(args.out, args.json, args.runs)
    for path in (out, json_path):  # before the work: an output that cannot be written is exit 3
        runs.output_folder(path)
    orbax_quiet.silence_aborted_io()
    records = []
    try:  # load everything before writing anything
        for workdir in workdirs:
            records.append(run_record(workdir, args.data_dir))
            r = records[-1]
            if r["published_test_error"] is not None:
                beside = f"published test error {100 * r['published_test_error']:.2f}% on the whole set"
            elif r["test_error"] is not None:
                beside = f"the run's final test error {100 * r['test_error']:.2f}%, step {r['step']}"
            else:
                beside = f"unfinished run, step {r['step']}"
            print(f"{r['label']:>11}: {len(r['std'])} layers, mean std {np.mean(r['std']):.3f}, "
                  f"error {100 * r['error_on_these_images']:.2f}% on {r['num_images']:,} {r['dataset']} "
                  f"{r['eval_split']} images ({beside})")
    except (RunError, ValueError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    for r, label in zip(records, unique_labels(records)):
        r["label"] = label
    try:
        save_fig7({r["label"]: np.asarray(r["std"]) for r in records}, out, title=figure_title(records))
    except OSError as e:
        raise runs.RunIOError(f"cannot write {out} ({runs.os_cause(e)})") from None
    write_json(records, json_path)
    print(f"wrote {out} and {json_path}")
