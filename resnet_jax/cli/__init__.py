"""`resnet-jax COMMAND ...`: the one place that parses command lines.

Each command is a small module here that parses its arguments and calls the library. They are
imported when their command runs (statically, so import-linter sees them), which keeps
`resnet-jax --help` from loading JAX.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Callable

from resnet_jax.runs import RunIOError


def _train(argv):
    from resnet_jax.cli import train  # noqa: PLC0415 (loaded when the command runs)
    train.main(argv)


def _eval(argv):
    from resnet_jax.cli import evaluate  # noqa: PLC0415
    evaluate.main(argv)


def _summary(argv):
    from resnet_jax.cli import summary  # noqa: PLC0415
    summary.main(argv)


def _table1(argv):
    from resnet_jax.cli import table1  # noqa: PLC0415
    table1.main(argv)


def _imagenet(argv):
    from resnet_jax.cli import imagenet  # noqa: PLC0415
    imagenet.main(argv)


def _sweep(argv):
    from resnet_jax.cli import sweep  # noqa: PLC0415
    sweep.main(argv)


def _report(argv):
    from resnet_jax.cli import report  # noqa: PLC0415
    report.main(argv)


def _plot(argv):
    from resnet_jax.cli import plot  # noqa: PLC0415
    plot.main(argv)


def _fig7(argv):
    from resnet_jax.cli import fig7  # noqa: PLC0415
    fig7.main(argv)


def _prepare(argv):
    from resnet_jax.cli import prepare  # noqa: PLC0415
    prepare.main(argv)


def _import(argv):
    from resnet_jax.cli import import_  # noqa: PLC0415
    import_.main(argv)


def _export(argv):
    from resnet_jax.cli import export  # noqa: PLC0415
    export.main(argv)


def _bench(argv):
    from resnet_jax.cli import bench  # noqa: PLC0415
    bench.main(argv)


COMMANDS: dict[str, tuple[Callable[[list[str]], None], str]] = {
    "train": (_train, "train a paper experiment (--experiment table6:110) or a config file"),
    "summary": (_summary, "parameters and multiply-adds of models"),
    "table1": (_table1, "Table 1 complexity: ours beside the paper's FLOPs"),
    "imagenet": (_imagenet, "ImageNet Tables 2-4 / Fig 4: train, evaluate, tabulate"),
    "sweep": (_sweep, "train every net of an experiment (--experiment table6), then its report"),
    "report": (_report, "an experiment's tables and figures from its runs, ours beside the paper's"),
    "plot": (_plot, "training curves (Fig 1/4/6 style) from runs"),
    "eval": (_eval, "test error of a saved run's latest checkpoint"),
    "fig7": (_fig7, "Fig 7: std of the 3x3 layers' responses of runs"),
    "prepare": (_prepare, "pack ImageNet's folders or tars into ArrayRecord shards, once"),
    "import": (_import, "a released ResNet (Caffe, torchvision) as a run folder"),
    "export": (_export, "a run's weights as torchvision safetensors"),
    "bench": (_bench, "training images/s: our engine vs a plain Flax step, e2e, compile"),
}


def version() -> str:
    """This package's version and the libraries' that decide its floats (the README's digits
    are reproduced by the locked set of them), read from the installed metadata without importing
    JAX."""
    def installed(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:  # run from a checkout without installing it
            return "not installed"

    libraries = ", ".join(f"{name} {installed(name)}" for name in ("jax", "jaxlib", "flax", "optax", "numpy"))
    return f"resnet-jax {installed('resnet-jax')} ({libraries}; Python {platform.python_version()})"


def usage() -> str:
    lines = ["usage: resnet-jax COMMAND [ARGS]  |  resnet-jax --version", "", "commands:"]
    lines += [f"  {name:<10}{help_}" for name, (_, help_) in COMMANDS.items()]
    lines.append("\n`resnet-jax COMMAND --help` for a command's options.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    try:
        try:
            _main(list(sys.argv if argv is None else argv))
        finally:
            sys.stdout.flush()  # here, not at exit, so that a closed pipe is caught below
    except BrokenPipeError:  # `resnet-jax ... | head`: the reader left; no traceback, as for `cat`
        _quiet_stdout()
        sys.exit(141)


def _main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(usage())
        sys.exit(0 if len(argv) >= 2 else 2)
    if argv[1] == "--version" or argv[2:] == ["--version"]:  # `resnet-jax [COMMAND] --version`
        print(version())
        sys.exit(0)
    command = argv[1]
    if command not in COMMANDS:
        print(f"resnet-jax: error: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        sys.exit(2)
    try:
        COMMANDS[command][0]([f"resnet-jax {command}", *argv[2:]])
    except RunIOError as e:  # a file a command was asked to write (--json, --out) could not be
        print(f"resnet-jax {command}: error: {e}", file=sys.stderr)
        sys.exit(3)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush finds no closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    main()
