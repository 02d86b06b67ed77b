"""`resnet-jax export RUN OUT`: a run's newest weights in another framework's file.

OUT.th / OUT.pt / OUT.pth (a CIFAR ResNet): the PyTorch file of the family whose code runs the net
as it is, akamaster's (option A, zeros on both sides) or chenyaofo's (option B), with their key
names; a run imported from such a file is written in that file's form (torch's legacy format for
akamaster's, zip for chenyaofo's) with its wrapper, DataParallel prefix and BN counters, so that
import then export gives back every tensor bit for bit. A net whose input convention or options
their code lacks (nets trained here subtract a per-pixel mean) is refused.

OUT.safetensors (an ImageNet ResNet): the file is a torchvision ResNet state dict
(`torchvision.models.resnet50().load_state_dict(...)` takes it, BN counters included) with the
model and its input convention in the safetensors metadata; `resnet-jax import` reads it back
exactly. A net trained here subtracts its training mean: that goes beside the file as
OUT.mean.npy (HxWx3 RGB in [0, 1]). Nets torchvision's ResNet cannot hold (option A or C
shortcuts, plain nets, the Caffe models' conv1 bias and pooling) are refused.

Exit codes: 0 written; 2 not a run, or a net the file's framework cannot hold; 3 OUT could not be
written.
"""

from __future__ import annotations

import argparse


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog=argv[0], description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a run folder (trained, or made by resnet-jax import)")
    parser.add_argument("out", help="the file to write: .safetensors (ImageNet nets), .th/.pt/.pth "
                                    "(CIFAR nets)")
    parser.add_argument("--data_dir", default=None,
                        help="the run's dataset, when its training mean must be computed")
    args = parser.parse_args(argv[1:])
    torch_file = args.out.endswith((".th", ".pt", ".pth"))
    if not torch_file and not args.out.endswith(".safetensors"):
        parser.exit(2, f"{argv[0]}: error: {args.out}: expected a .safetensors, .th, .pt or .pth "
                       "file name\n")

    from resnet_jax.train import orbax_quiet  # noqa: PLC0415 (keep --help fast)
    from resnet_jax.train import released, run_weights  # noqa: PLC0415

    orbax_quiet.silence_aborted_io()
    try:
        config, variables, _ = run_weights.read_run(args.run)
        if args.data_dir:
            config.data.data_dir = args.data_dir
        if torch_file:
            form = released.cifar_torch_file(config, variables, run_weights.input_mean(args.run),
                                             run_weights.read_record(args.run), args.out)
            written = [f"{args.out} (torch {form} format)"]
        else:
            mean = run_weights.run_input_mean(config, args.run)
            written = released.torchvision_file(config, variables, mean, args.out)
    except released.WeightsError as e:
        parser.exit(2, f"{argv[0]}: error: {e}\n")
    print(f"{config.model.name} from {args.run} -> {' and '.join(written)}")
    if not torch_file and config.model.name.endswith(("50", "101", "152")) and not config.model.stride_on_3x3:
        print(f"note: {released.V1_NOTE}")
