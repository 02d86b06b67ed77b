"""`resnet-jax eval --workdir W [--mode single] [--json PATH]`: test error of a saved run.

Loads `W/config.json` and the newest checkpoint in `W/checkpoints`, and evaluates with running BN
statistics. CIFAR-10 and digits are tested on the single original view (Sec 4.2); ImageNet runs are
tested with `resnet-jax imagenet --eval_only` (centre crop, 10-crop, multi-scale; Sec 3.4).
"""

from __future__ import annotations

import argparse
import sys

from resnet_jax import runs
from resnet_jax.analysis.evaluate import evaluate_run
from resnet_jax.analysis.load import RunError
from resnet_jax.train import orbax_quiet

def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog=argv[0], description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="workdir written by resnet-jax train")
    parser.add_argument("--mode", default="single", choices=["single"],
                        help="test-time views (default: single, the CIFAR protocol)")
    parser.add_argument("--data_dir", default=None, help="override the run's dataset location")
    parser.add_argument("--json", default=None, help="also write the result to this JSON file")
    args = parser.parse_args(argv[1:])
    orbax_quiet.silence_aborted_io()
    try:
        result = evaluate_run(args.workdir, args.mode, args.data_dir)
    except RunError as e:
        parser.exit(2, f"{argv[0]}: error: {e}\n")
    print(f"{result['model']} on {result['dataset']} ({result['eval_split']}, "
          f"{result['num_images']} images, {result['mode']} view) at step {result['step']}: "
          f"test error {100 * result['test_error']:.2f}%, loss {result['test_loss']:.4f}")
    if args.json:
        runs.write_json(args.json, result)
    sys.stdout.flush()
