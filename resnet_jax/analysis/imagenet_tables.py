"""ImageNet Tables 2-4 and Fig 4, paper beside ours: which nets each table has, how they are
tested, where their runs are, and the markdown (the command that trains and tests them is
`resnet-jax imagenet`, cli/imagenet.py).

Nets are tested as the paper does for that table: 10-crop for Tables 2 and 3, the
fully-convolutional multi-scale test for Table 4, centre-crop curves for Fig 4. Tables sharing a net
share its run (Table 3's ResNet-34 A is Table 2's ResNet-34).
"""

from __future__ import annotations

import os

from resnet_jax import runs as run_folder
from resnet_jax.experiment import Experiment
from resnet_jax.models import parse_model_name

# How the paper tests each table's nets (Sec 3.4); the nets and numbers are the experiments'.
MODES = {"2": "ten_crop", "3": "ten_crop", "4": "multi_scale", "fig4": "center"}


def run_name(config) -> str:
    """One directory per trained net: plain34, resnet34_A, resnet50_B (v1.5 and schedules apart)."""
    spec = parse_model_name(config.model.name)
    name = f"resnet{spec.depth}_{config.model.shortcut}" if spec.residual else f"plain{spec.depth}"
    name += "_v1.5" if config.model.stride_on_3x3 else ""
    return name + ("_fixed" if config.optim.lr_schedule == "fixed" else "")


def curves(workdir: str) -> dict:
    """Fig 4's curves of a run: training error and centre-crop validation error by step; {} if
    the run has logged nothing yet."""
    train, val = run_folder.curves(workdir)
    if not train:
        return {}
    return {"step": [s for s, _ in train], "train_error": [e for _, e in train],
            "val_step": [s for s, _ in val], "val_error": [e for _, e in val]}


def pct(x) -> str:
    return "—" if x is None else f"{x:.2f}"


def percent(metrics: dict, key: str) -> float | None:
    return 100 * metrics[key] if key in metrics else None


def markdown(experiment: Experiment, mode: str, rows: list[dict]) -> str:
    table, title = experiment.table_id, experiment.title
    lines = [f"## {title}", "", "| net | run | steps | paper top-1 | ours top-1 | paper top-5 | "
             "ours top-5 |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        p, o = r["paper"], r["ours"] or {}
        top1 = percent(o, "test_error" if table != "fig4" else "val_error")
        lines.append(f"| {r['net']} | {r['run']} | {o.get('step', '—')} | {pct(p.get('top1'))} | "
                     f"{pct(top1)} | {pct(p.get('top5'))} | {pct(percent(o, 'test_top5_error'))} |")
    test = {"center": "last centre-crop validation of the run", "ten_crop": "10-crop test",
            "multi_scale": "multi-scale test"}[mode]
    lines += ["", f"Ours: {test} (newest checkpoint); '—' = not trained yet."]
    return "\n".join(lines)


def fig4_result(workdir: str) -> dict | None:
    """A Fig 4 row's numbers: the run's last centre-crop validation error and its step, with the
    whole curves under "curves"; None if the run has logged nothing yet."""
    logged = curves(workdir)
    if not logged.get("val_error"):
        return logged or None
    return {**logged, "val_error": logged["val_error"][-1], "step": logged["step"][-1],
            "curves": dict(logged)}


def write(experiment: Experiment, rows: list[dict], runs: str, out: str) -> list[str]:
    """`<out>/table<N>_imagenet.md` and `.json` (`fig4_imagenet.*`, with Fig 4 itself drawn from the
    runs under `runs`: left plain, right ResNet, as the paper draws it); the markdown and the
    figures' paths."""
    table = experiment.table_id
    mode = MODES[table]
    os.makedirs(out, exist_ok=True)
    stem = os.path.join(out, f"table{table}_imagenet" if table != "fig4" else "fig4_imagenet")
    text = markdown(experiment, mode, rows)
    run_folder.write_text(stem + ".md", text + "\n")
    run_folder.write_json(stem + ".json", rows)
    drawn_paths = []
    if mode == "center":
        from resnet_jax.analysis import plots  # noqa: PLC0415 (matplotlib only when drawing)

        for kind in ("plain", "resnet"):
            drawn = {r["net"]: os.path.join(runs, r["run"]) for r in rows
                     if r["net"].startswith(kind) and r["ours"]}
            if drawn:
                plots.plot_runs(drawn, f"{stem}_{kind}.png",
                                title=f"Fig 4, {kind} nets (paper: {experiment.setting})")
                drawn_paths.append(f"{stem}_{kind}.png")
    return [text, *drawn_paths]
