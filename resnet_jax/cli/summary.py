"""`resnet-jax summary MODEL [MODEL ...]`: parameters and multiply-adds per image."""

from __future__ import annotations

import argparse
import sys

from resnet_jax.models.complexity import model_complexity


def format_table(rows) -> str:
    lines = [f"{'model':<22}{'input':>12}{'params':>14}{'mult-adds':>16}",
             "-" * 64]
    for r in rows:
        shape = "x".join(map(str, r.input_shape))
        lines.append(f"{r.name:<22}{shape:>12}{r.params:>14,}{r.mult_adds / 1e6:>14,.1f}M")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog=argv[0], description=__doc__)
    parser.add_argument("models", nargs="+", help="e.g. cifar_resnet110 imagenet_resnet50")
    parser.add_argument("--shortcut", choices=["A", "B", "C"], default=None,
                        help="shortcut option (default: A on CIFAR, B on ImageNet)")
    args = parser.parse_args(argv[1:])
    try:
        rows = [model_complexity(m, shortcut=args.shortcut) for m in args.models]
    except ValueError as e:
        parser.exit(2, f"{argv[0]}: error: {e}\n")
    print(format_table(rows))
    sys.stdout.flush()
