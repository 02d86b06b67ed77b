"""Table 6 rows (ours beside the paper's) from finished runs (`resnet-jax report`); runs of one depth
trained with several seeds are averaged (mean ± std, as the paper reports for ResNet-110)."""

from __future__ import annotations

import statistics

from resnet_jax.analysis.paper import TABLE6
from resnet_jax.models import parse_model_name


def _wall_time(runs: list[dict]) -> float:
    """Total training time: seeds trained together in one run (`--seeds N`) share one clock."""
    groups: dict[tuple, float] = {}
    for r in runs:
        key = tuple(r.get("trained_with_seeds") or [r.get("seed"), r["workdir"]])
        groups[key] = max(groups.get(key, 0.0), r["wall_time"])
    return sum(groups.values())


def table6_rows(results: list[dict]) -> list[dict]:
    by_depth: dict[int, list[dict]] = {}
    for r in results:
        spec = parse_model_name(r["model"])
        if spec.variant == "cifar_resnet":  # Table 6: the original residual nets
            by_depth.setdefault(spec.depth, []).append(r)
    rows = []
    for depth in sorted(by_depth):
        runs = by_depth[depth]
        errors = [100 * r["test_error"] for r in runs]
        paper = TABLE6.get(depth, {})
        rows.append({
            "depth": depth, "params": runs[0]["params"], "params_paper": paper.get("params"),
            "test_error": statistics.mean(errors),
            "test_error_std": statistics.stdev(errors) if len(errors) > 1 else None,
            "runs": len(runs), "error_paper": paper.get("error"),
            "dataset": runs[0]["dataset"], "eval_split": runs[0]["eval_split"],
            "steps": runs[0]["steps"], "wall_time": _wall_time(runs),
            "images_per_sec": runs[0].get("images_per_sec"), "backend": runs[0].get("backend"),
        })
    return rows


def table6_markdown(rows: list[dict]) -> str:
    lines = ["| net | params (ours) | params (paper) | error % (ours) | error % (paper) | dataset | "
             "steps | runs | wall time |",
             "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        err = f"{r['test_error']:.2f}"
        if r["test_error_std"] is not None:
            err += f" ± {r['test_error_std']:.2f}"
        paper_err = "–" if r["error_paper"] is None else f"{r['error_paper']:.2f}"
        paper_params = "–" if r["params_paper"] is None else f"{r['params_paper']:,}"
        lines.append(f"| ResNet-{r['depth']} | {r['params']:,} | {paper_params} | {err} | {paper_err} | "
                     f"{r['dataset']} ({r['eval_split']}) | {r['steps']:,} | {r['runs']} | "
                     f"{r['wall_time']:.0f} s |")
    note = ("\nPaper: CIFAR-10 test error, 64k iterations; ResNet-110 is the best of 5 runs "
            "(6.61 ± 0.16 mean ± std).")
    if rows and rows[0]["dataset"] != "cifar10":
        note += (f" Ours ran on `{rows[0]['dataset']}`, not CIFAR-10: only the parameter columns are "
                 "comparable.")
    return "\n".join(lines) + "\n" + note + "\n"
