"""`resnet-jax summary MODEL [MODEL ...]`: parameters and multiply-adds per image."""

from __future__ import annotations

import argparse
import sys

from resnet_jax.models.complexity import model_complexity


def format_table(rows) -> str:
    """One line per model under a header; each column as wide as its widest cell, names left-aligned
    and numbers right-aligned under their headings."""
    table = [("model", "input", "params", "mult-adds")]
    table += [(r.name, "x".join(map(str, r.input_shape)), f"{r.params:,}", f"{r.mult_adds / 1e6:,.1f}M")
              for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = ["   ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])])
             for row in table]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


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
