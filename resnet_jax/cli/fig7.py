"""Fig 7: std of the 3x3 layers' responses of trained plain and residual nets, as PNG and JSON.

`resnet-jax fig7 --runs DIR [--nets plain20 ...] [--out DIR/fig7.png]` reads
the runs DIR/plain20, DIR/plain56, DIR/resnet20, ... (workdirs of `resnet-jax train`), and draws the
paper's two panels: stds in the layers' original order (top) and sorted descending (bottom).
The folders of --out and --json are made if needed.

Exit codes: 0 written; 2 a run that cannot be read; 3 an output that cannot be written (checked
before the work).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from resnet_jax import runs
from resnet_jax.analysis.fig7 import NETS, run_record, save_fig7, write_json
from resnet_jax.analysis.load import RunError
from resnet_jax.train import orbax_quiet


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    parser = argparse.ArgumentParser(prog=os.path.basename(argv[0]),
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, help="directory holding one workdir per net")
    parser.add_argument("--nets", nargs="+", default=list(NETS), help=f"default: {' '.join(NETS)}")
    parser.add_argument("--out", default=None, help="PNG path (default: RUNS/fig7.png)")
    parser.add_argument("--json", default=None, help="JSON path (default: the PNG's, .json)")
    parser.add_argument("--data_dir", default=None, help="override the runs' dataset location")
    args = parser.parse_args(argv[1:])
    out = args.out or os.path.join(args.runs, "fig7.png")
    json_path = args.json or os.path.splitext(out)[0] + ".json"
    for path in (out, json_path):  # before the work: an output that cannot be written is exit 3
        runs.output_folder(path)
    orbax_quiet.silence_aborted_io()
    records = []
    try:  # load everything before writing anything
        for net in args.nets:
            records.append(run_record(os.path.join(args.runs, net), args.data_dir))
            r = records[-1]
            error = "n/a" if r["test_error"] is None else f"{100 * r['test_error']:.2f}%"
            print(f"{r['label']:>11}: {len(r['std'])} layers, mean std {np.mean(r['std']):.3f}, "
                  f"test error {error} ({r['dataset']}, step {r['step']})")
    except (RunError, ValueError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    datasets = sorted({r["dataset"] for r in records})
    try:
        save_fig7({r["label"]: np.asarray(r["std"]) for r in records}, out,
                  title=f"Fig 7: std of layer responses on {', '.join(datasets)}")
    except OSError as e:
        raise runs.RunIOError(f"cannot write {out} ({runs.os_cause(e)})") from None
    write_json(records, json_path)
    print(f"wrote {out} and {json_path}")

