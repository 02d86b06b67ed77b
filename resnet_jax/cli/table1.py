"""`resnet-jax table1 [--json PATH]`: Table 1's complexity column, ours beside the paper's FLOPs.

Exit codes: 0 every net's measured cost agrees with the paper's; 1 one disagrees
(resnet_jax/analysis/table1.py); 3 --json cannot be written (its folder is made if needed; checked
before the work).
"""

from __future__ import annotations

import argparse

from resnet_jax import runs
from resnet_jax.analysis.table1 import markdown, table1_rows


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog=argv[0], description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv[1:])
    if args.json:
        runs.output_folder(args.json)
    rows = table1_rows()
    print(markdown(rows))
    if args.json:
        runs.write_json(args.json, rows)
    if not all(r["agrees"] for r in rows):
        raise SystemExit(1)
