"""Table 1 (`resnet-jax table1`)'s complexity column, ours (measured on the models) beside the paper's.

ResNet-18/34 are counted with parameter-free shortcuts (option A) as the paper's FLOPs are; the
option-B cost is shown too. The paper prints one decimal: "agrees" means within one unit of it
(ResNet-50 measures 3.858, which the paper prints as 3.8).
"""

from __future__ import annotations

from resnet_jax.analysis import paper_imagenet as paper
from resnet_jax.models.complexity import model_complexity


def table1_rows() -> list[dict]:
    rows = []
    for depth, paper_gflops in paper.TABLE1_GFLOPS.items():
        counted = model_complexity(f"imagenet_resnet{depth}", shortcut=paper.TABLE1_SHORTCUT[depth])
        with_b = model_complexity(f"imagenet_resnet{depth}", shortcut="B")
        gmacs = counted.mult_adds / 1e9
        rows.append({
            "model": f"ResNet-{depth}", "shortcut": paper.TABLE1_SHORTCUT[depth],
            "params_B": with_b.params, "gmacs": round(gmacs, 3),
            "gmacs_B": round(with_b.mult_adds / 1e9, 3), "paper_gflops": paper_gflops,
            "reference_gmacs": paper.TABLE1_GMACS_COMPUTED[depth],
            "agrees": abs(gmacs - paper_gflops) < 0.1
                      and round(gmacs, 3) == paper.TABLE1_GMACS_COMPUTED[depth],
        })
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| model | params (B) | ours GMACs (counted) | ours GMACs (B) | paper FLOPs | agrees |",
             "|---|---:|---:|---:|---:|:-:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['params_B']:,} | {r['gmacs']:.3f} ({r['shortcut']}) | "
                     f"{r['gmacs_B']:.3f} | {r['paper_gflops']:.1f}e9 | "
                     f"{'yes' if r['agrees'] else 'NO'} |")
    return "\n".join(lines)
