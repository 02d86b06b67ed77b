"""`resnet-jax report table6 --runs DIR --out DIR`: Table 6 (ours beside the paper's) from finished runs.

Each run is a workdir with results.json (written by `resnet-jax train`); runs of one depth trained with
several seeds are averaged (mean ± std, as the paper reports for ResNet-110).
"""

from __future__ import annotations

import argparse
import os

from resnet_jax import runs
from resnet_jax.analysis.report import table6_markdown, table6_rows

def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog=argv[0], description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", choices=["table6"])
    parser.add_argument("--runs", required=True, help="folder holding one workdir per run")
    parser.add_argument("--out", required=True, help="folder for table6.md and table6.json")
    args = parser.parse_args(argv[1:])
    rows = table6_rows(runs.load_results(args.runs))
    if not rows:
        parser.exit(2, f"{argv[0]}: error: no finished runs (results.json) under {args.runs}\n")
    os.makedirs(args.out, exist_ok=True)
    markdown = table6_markdown(rows)
    runs.write_text(os.path.join(args.out, "table6.md"), markdown)
    runs.write_json(os.path.join(args.out, "table6.json"), rows)
    print(markdown)
