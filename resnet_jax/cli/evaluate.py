"""`resnet-jax eval --workdir W [--mode M] [--json PATH]`: test error of a saved run.

Loads `W/config.json` and the newest checkpoint in `W/checkpoints`, and evaluates with running BN
statistics. CIFAR and digits are tested on the single original view (Sec 4.2); an imported CIFAR
net (`resnet-jax import`) on the test split of any CIFAR archive or folder given (a subset too:
the count is printed), beside its publisher's error. ImageNet runs,
trained here or imported from a released model (`resnet-jax import`), are tested with the paper's
protocols (Sec 3.4): `--mode center` (224 crop of the image resized to 256), `ten_crop`, or
`multi_scale` (fully convolutional, shorter side 224..640), top-1 and top-5, beside the numbers
published for that model and protocol; each net gets the input preprocessing it was trained with.

Several `--workdir`s are tested as an ensemble (Table 5): each member on its own inputs, their
softmax averaged per view, then the views combined as the mode does; the ensemble's top-1/top-5
beside each member's. `--scores` saves the per-image scores (members and ensemble, .npz), `--table`
Table 5 of the paper with the ensemble's rows.

A run of several seeds trained together (`train --seeds N`) is tested seed by seed, each from its
slice of the stacked checkpoint, as `--workdir W/seed{s}` tests one of them; --json then holds
{"workdir": W, "runs": [each seed's result]}.

Exit codes: 0 tested; 2 not a run, no checkpoint, no dataset, or members tested on different data;
3 --json, --scores or --table could not be written.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

from resnet_jax import runs
from resnet_jax.analysis.evaluate import IMAGENET_MODES, evaluate_run
from resnet_jax.analysis.load import RunError, read_config
from resnet_jax.data import load_dataset
from resnet_jax.experiments._imagenet import published_tables
from resnet_jax.train import orbax_quiet


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog=argv[0], description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True, action="append",
                        help="a run folder (resnet-jax train or import); several: their ensemble")
    parser.add_argument("--mode", default=None, choices=["single", *IMAGENET_MODES],
                        help="test-time views (default: single for CIFAR/digits, center for ImageNet)")
    parser.add_argument("--data_dir", default=None, help="override the run's dataset location")
    parser.add_argument("--max_images", type=int, default=0,
                        help="ImageNet: test the first N validation images only (a quick check)")
    parser.add_argument("--json", default=None, help="also write the result to this JSON file")
    parser.add_argument("--scores", default=None, help="also write the per-image scores (.npz)")
    parser.add_argument("--table", default=None,
                        help="also write Table 5 of the paper with this ensemble's rows (markdown)")
    args = parser.parse_args(argv[1:])
    orbax_quiet.silence_aborted_io()
    if len(args.workdir) > 1 or args.scores or args.table:
        ensemble(argv[0], parser, args)
        return
    args.workdir = args.workdir[0]
    results, paper = [], published_tables()
    dataset_loader = functools.cache(load_dataset)  # the seeds of a --seeds run share one dataset: read once
    try:
        for workdir in _seed_workdirs(args.workdir):
            results.append(evaluate_run(workdir, args.mode, args.data_dir, args.max_images, paper=paper,
                                        dataset_loader=dataset_loader))
            _print(results[-1], prefix=f"{os.path.basename(workdir)}: " if workdir != args.workdir else "")
    except RunError as e:
        parser.exit(2, f"{argv[0]}: error: {e}\n")
    if args.json:
        several = results[0]["workdir"] != args.workdir
        runs.write_json(args.json, {"workdir": args.workdir, "runs": results} if several else results[0])
    sys.stdout.flush()


def _seed_workdirs(workdir: str) -> list[str]:
    """[workdir], or each seed's folder of a run of several seeds (whose stacked checkpoint in
    `workdir` is not one net's)."""
    config = read_config(workdir)
    if config.run.num_seeds > 1 and runs.has_checkpoints(workdir):
        return [runs.seed_dir(workdir, config.run.seed + i) for i in range(config.run.num_seeds)]
    return [workdir]


def _print(result: dict, prefix: str) -> None:
    views = f"{result['mode']} view" + ("s" if result["mode"] != "single" else "")
    if "image_backend" in result:  # ImageNet: whose decoder and resampling made the views
        views += f" by {result['image_backend']}"
    source = f" from {result['source']}" if result.get("source") else ""
    line = (f"{prefix}{result['model']} on {result['dataset']}{source} ({result['eval_split']}, "
            f"{result['num_images']} images, {views}) at step {result['step']}: "
            f"test error {100 * result['test_error']:.2f}%")
    if "test_top5_error" in result:
        line += f", top-5 {100 * result['test_top5_error']:.2f}%"
    print(f"{line}, loss {result['test_loss']:.4f}")
    if (published := result.get("published")) and "test_error" in published:  # an imported CIFAR net
        print(f"published ({published['source']}, the whole test set): test error "
              f"{100 * published['test_error']:.2f}%")
    elif published:
        print(f"published ({published['source']}): top-1 {published['top1']:.2f}%, "
              f"top-5 {published['top5']:.2f}%")
    elif "published" in result:
        print("published: no number for this model and protocol")


def ensemble(prog: str, parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The members' softmax averaged per view (analysis/ensemble.py), each member beside it."""
    from resnet_jax import experiments  # noqa: PLC0415
    from resnet_jax.analysis import ensemble as E  # noqa: PLC0415

    try:
        result, scores = E.evaluate_ensemble(args.workdir, args.mode, args.data_dir, args.max_images)
    except RunError as e:
        parser.exit(2, f"{prog}: error: {e}\n")
    print("\n".join(E.lines(result)))
    if args.scores:
        E.write_scores(args.scores, scores, args.workdir)
    if args.table:
        runs.write_text(args.table, E.table_markdown(result, experiments.get("table5")))
    if args.json:
        runs.write_json(args.json, result)
    sys.stdout.flush()
