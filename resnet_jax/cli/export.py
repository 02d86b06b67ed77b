"""`resnet-jax export RUN OUT.safetensors`: a run's newest weights under torchvision's names.

The file is a torchvision ResNet state dict (`torchvision.models.resnet50().load_state_dict(...)`
takes it, BN counters included) with the model and its input convention in the safetensors
metadata; `resnet-jax import` reads it back exactly. A net trained here subtracts its training
mean: that goes beside the file as OUT.mean.npy (HxWx3 RGB in [0, 1]). Nets torchvision's ResNet
cannot hold (option A or C shortcuts, plain nets, the Caffe models' conv1 bias and pooling) are
refused.

Exit codes: 0 written; 2 not a run, or a net torchvision cannot hold; 3 OUT could not be written.
"""

from __future__ import annotations

import argparse


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog=argv[0], description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a run folder (trained, or made by resnet-jax import)")
    parser.add_argument("out", help="the .safetensors file to write")
    parser.add_argument("--data_dir", default=None,
                        help="the run's dataset, when its training mean must be computed")
    args = parser.parse_args(argv[1:])
    if not args.out.endswith(".safetensors"):
        parser.exit(2, f"{argv[0]}: error: {args.out}: expected a .safetensors file name\n")

    from resnet_jax.train import orbax_quiet  # noqa: PLC0415 (keep --help fast)
    from resnet_jax.train import released  # noqa: PLC0415

    orbax_quiet.silence_aborted_io()
    try:
        config, variables, _ = released.read_run(args.run)
        if args.data_dir:
            config.data.data_dir = args.data_dir
        mean = released.run_input_mean(config, args.run)
        written = released.torchvision_file(config, variables, mean, args.out)
    except released.WeightsError as e:
        parser.exit(2, f"{argv[0]}: error: {e}\n")
    print(f"{config.model.name} from {args.run} -> {' and '.join(written)}")
    if config.model.name.endswith(("50", "101", "152")) and not config.model.stride_on_3x3:
        print(f"note: {released.V1_NOTE}")
