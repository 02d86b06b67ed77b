"""`resnet-jax import SRC OUT`: a released ResNet as a run folder of this project.

SRC is one of
- the authors' Caffe ImageNet model (`ResNet-50-model.caffemodel`, -101-, -152-; their
  `ResNet_mean.binaryproto` is read from beside it, or --mean);
- a torchvision ImageNet state dict (`resnet18` ... `resnet152` as .safetensors or .pth);
- a trained CIFAR ResNet in PyTorch: akamaster's (`resnet20-12fca82f.th` ... resnet1202, option A,
  torch's legacy format) or chenyaofo's (`cifar10_resnet20-4118986f.pt`, cifar100_..., option B).
PyTorch files (.pth, .pt, .th, zip or legacy) are read without torch and without running anything
in them. OUT gets config.json (the model and the options that make it the file's function: input
convention and std, shortcut, where option A's zeros go; the file's SHA-256), the input mean, a
step-0 checkpoint, and for a CIFAR file imported.json (its form and published error), so
`resnet-jax eval --workdir OUT`, `resnet-jax export`, the notebook and `--config.init_from=OUT`
open it like a trained run.

Exit codes: 0 imported; 2 a bad, truncated or mismatched file (one line naming the first bad
tensor; nothing written), or OUT exists; 3 OUT could not be written.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog=argv[0], description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help=".caffemodel, .safetensors, or a PyTorch .pth/.pt/.th")
    parser.add_argument("out", help="the run folder to create")
    parser.add_argument("--mean", default=None,
                        help="the Caffe models' mean image (default: ResNet_mean.binaryproto beside SRC)")
    parser.add_argument("--model", default=None,
                        help="the net SRC must hold, e.g. imagenet_resnet101, cifar_resnet56 "
                             "(default: what it holds)")
    args = parser.parse_args(argv[1:])

    import jax  # noqa: PLC0415 (keep --help fast)

    from resnet_jax.train import orbax_quiet  # noqa: PLC0415
    from resnet_jax.train.released import WeightsError, read_weights  # noqa: PLC0415
    from resnet_jax.train.run_weights import write_run  # noqa: PLC0415

    orbax_quiet.silence_aborted_io()
    try:
        imported = read_weights(args.src, args.mean, args.model)
        config = write_run(imported, args.out)
    except WeightsError as e:
        parser.exit(2, f"{argv[0]}: error: {e}\n")
    params = sum(x.size for x in jax.tree.leaves(imported.variables["params"]))
    print(f"{config.model.name} ({params:,} params, {imported.num_classes} classes, input "
          f"{config.model.input_convention}) from {args.src} -> {args.out}")
    if imported.record is None:
        print(f"test it: resnet-jax eval --workdir {args.out} --mode ten_crop --data_dir DATA_DIR")
    else:
        zeros = f" (zeros {config.model.zero_pad})" if config.model.shortcut == "A" else ""
        print(f"shortcut {config.model.shortcut}{zeros}, input std {tuple(config.model.input_std)}; test it: "
              f"resnet-jax eval --workdir {args.out} --data_dir {config.data.name.upper()}_DIR")
    sys.stdout.flush()

