"""`resnet-jax eval --workdir W [--mode M] [--json PATH]`: test error of a saved run.

Loads `W/config.json` and the newest checkpoint in `W/checkpoints`, and evaluates with running BN
statistics. CIFAR-10 and digits are tested on the single original view (Sec 4.2). ImageNet runs,
trained here or imported from a released model (`resnet-jax import`), are tested with the paper's
protocols (Sec 3.4): `--mode center` (224 crop of the image resized to 256), `ten_crop`, or
`multi_scale` (fully convolutional, shorter side 224..640), top-1 and top-5, beside the numbers
published for that model and protocol; each net gets the input preprocessing it was trained with.

Exit codes: 0 tested; 2 not a run, no checkpoint, or no dataset; 3 --json could not be written.
"""

from __future__ import annotations

import argparse
import sys

from resnet_jax import runs
from resnet_jax.analysis.evaluate import IMAGENET_MODES, evaluate_run
from resnet_jax.analysis.load import RunError
from resnet_jax.experiments._imagenet import published_tables
from resnet_jax.train import orbax_quiet


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog=argv[0], description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True, help="a run folder (resnet-jax train or import)")
    parser.add_argument("--mode", default=None, choices=["single", *IMAGENET_MODES],
                        help="test-time views (default: single for CIFAR/digits, center for ImageNet)")
    parser.add_argument("--data_dir", default=None, help="override the run's dataset location")
    parser.add_argument("--max_images", type=int, default=0,
                        help="ImageNet: test the first N validation images only (a quick check)")
    parser.add_argument("--json", default=None, help="also write the result to this JSON file")
    args = parser.parse_args(argv[1:])
    orbax_quiet.silence_aborted_io()
    try:
        result = evaluate_run(args.workdir, args.mode, args.data_dir, args.max_images,
                              paper=published_tables())
    except RunError as e:
        parser.exit(2, f"{argv[0]}: error: {e}\n")
    views = f"{result['mode']} view" + ("s" if result["mode"] != "single" else "")
    if "image_backend" in result:  # ImageNet: whose decoder and resampling made the views
        views += f" by {result['image_backend']}"
    line = (f"{result['model']} on {result['dataset']} ({result['eval_split']}, "
            f"{result['num_images']} images, {views}) at step {result['step']}: "
            f"test error {100 * result['test_error']:.2f}%")
    if "test_top5_error" in result:
        line += f", top-5 {100 * result['test_top5_error']:.2f}%"
    print(f"{line}, loss {result['test_loss']:.4f}")
    if published := result.get("published"):
        print(f"published ({published['source']}): top-1 {published['top1']:.2f}%, "
              f"top-5 {published['top5']:.2f}%")
    elif "published" in result:
        print("published: no number for this model and protocol")
    if args.json:
        runs.write_json(args.json, result)
    sys.stdout.flush()
