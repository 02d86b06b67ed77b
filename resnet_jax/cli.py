"""`resnet-jax COMMAND ...`: train, summary, report, plot, bench."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train": ("resnet_jax.train.main", "train a model from an experiments/ config"),
    "summary": ("resnet_jax.analysis.summary", "parameters and multiply-adds of models"),
    "table1": ("resnet_jax.analysis.table1", "Table 1 complexity: ours beside the paper's FLOPs"),
    "imagenet": ("resnet_jax.analysis.imagenet_tables",
                 "ImageNet Tables 2-4 / Fig 4: train, evaluate, tabulate"),
    "report": ("resnet_jax.analysis.report", "paper-vs-ours tables from finished runs"),
    "plot": ("resnet_jax.analysis.plots", "training curves (Fig 1/4/6 style) from runs"),
    "eval": ("resnet_jax.analysis.evaluate", "test error of a saved run's latest checkpoint"),
    "fig7": ("resnet_jax.analysis.fig7", "Fig 7: std of the 3x3 layers' responses of runs"),
    "bench": ("resnet_jax.train.bench", "training images/s: our engine vs a plain Flax step, e2e"),
}


def usage() -> str:
    lines = ["usage: resnet-jax COMMAND [ARGS]", "", "commands:"]
    lines += [f"  {name:<10}{help_}" for name, (_, help_) in COMMANDS.items()]
    lines.append("\n`resnet-jax COMMAND --help` for a command's options.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(usage())
        sys.exit(0 if len(argv) >= 2 else 2)
    command = argv[1]
    if command not in COMMANDS:
        print(f"resnet-jax: error: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(COMMANDS[command][0])
    module.main([f"resnet-jax {command}", *argv[2:]])


if __name__ == "__main__":
    main()
