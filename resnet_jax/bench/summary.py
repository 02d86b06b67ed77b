"""Markdown tables of bench records, and the speed targets each measurement is checked against."""

from __future__ import annotations

import json
import os


from resnet_jax.bench import compile as compile_bench
from resnet_jax.bench import pipeline


# ---- summary -------------------------------------------------------------------------------------
# The speed targets for one accelerator (docs/speed.md) (checked by `targets`, printed under the tables).
TARGETS_S = {"cifar_resnet20": 120, "cifar_resnet110": 600}  # projected full Table-6 run
TARGET_RATIO, AIM_RATIO = 1.0, 1.5  # ours / scanned reference step, CIFAR nets at batch 128
TARGET_SEEDS_SPEEDUP = 2.0  # N seeds' aggregate images/s over one model's, on one device
TARGET_R50_IMAGES_PER_SEC = 6_500


def targets(records: list[dict]) -> list[dict]:
    """Each speed target (docs/speed.md) this run measured: what, measured value, target, met."""
    by = lambda kind: [r for r in records if r["kind"] == kind]  # noqa: E731
    rows = []
    for r in by("ratio"):
        if "ours_over_reference_scan" in r and r["batch_size"] == 128:
            value = r["ours_over_reference_scan"]
            rows.append(dict(what=f"{r['model']} {r['dtype']}: ours / scanned reference",
                             value=f"{value:.2f}x", target=f">= {TARGET_RATIO:.1f}x "
                             f"(aim {AIM_RATIO:.1f}x)", met=value >= TARGET_RATIO))
    for r in by("e2e"):
        if r["model"] in TARGETS_S and r.get("num_seeds", 1) == 1:
            value, target = r["projected_full_run_s"], TARGETS_S[r["model"]]
            rows.append(dict(what=f"{r['model']} {r['dtype']}: projected 64k-step run",
                             value=f"{value:,.0f} s", target=f"<= {target} s", met=value <= target))
    best: dict[tuple, dict] = {}
    for r in by("seeds"):
        if "speedup_over_one_model" not in r:
            continue
        one_device = r["num_devices"] == 1 or not r["impl"].startswith("devices")
        key = (r["model"], r["dtype"], r["num_seeds"], one_device)
        if key not in best or r["speedup_over_one_model"] > best[key]["speedup_over_one_model"]:
            best[key] = r
    for (model, dtype, n, one_device), r in best.items():
        value = r["speedup_over_one_model"]
        if one_device:
            rows.append(dict(what=f"{model} {dtype}: {n} seeds on one device, best ({r['impl']})",
                             value=f"{value:.2f}x one model",
                             target=f">= {TARGET_SEEDS_SPEEDUP:.0f}x", met=value >= TARGET_SEEDS_SPEEDUP))
        else:
            linear = min(n, r["num_devices"])
            rows.append(dict(what=f"{model} {dtype}: {n} seeds over {r['num_devices']} devices",
                             value=f"{value:.2f}x one model", target=f"~{linear}x (linear)",
                             met=value >= 0.9 * linear))
    r50 = [r for r in by("step") if r["model"] == "imagenet_resnet50" and r["batch_size"] == 256]
    if r50:
        r = max(r50, key=lambda r: r["images_per_sec"])
        rows.append(dict(what=f"imagenet_resnet50 {r['dtype']} ({r['impl']}): images/s",
                         value=f"{r['images_per_sec']:,.0f}", target=f">= {TARGET_R50_IMAGES_PER_SEC:,}",
                         met=r["images_per_sec"] >= TARGET_R50_IMAGES_PER_SEC))
    return rows


def summary_markdown(records: list[dict]) -> str:
    """The records as markdown tables (steps and ratios, seeds, end to end)."""
    if not records:
        return ""
    env = records[0]
    devices = dict.fromkeys(f"{r['device']} x{r['num_devices']} ({r['backend']}), jax {r['jax']}"
                            for r in records)  # several if appended runs mixed machines
    lines = [f"device: {'; '.join(devices)}, "
             f"load average {min(r['load_avg_1m'] for r in records)}-"
             f"{max(r['load_avg_1m'] for r in records)}" + (" — quick mode" if env.get("quick") else "")]
    by = lambda kind: [r for r in records if r["kind"] == kind]  # noqa: E731
    steps = by("step") + by("reference")
    if steps:
        lines += ["", "| model | dtype | batch | input | impl | steps/call | images/s | ms/step | "
                  "compile s | ours / this |", "|---|---|---:|---:|---|---:|---:|---:|---:|---:|"]
        ratios = {(r["model"], r["dtype"]): r for r in by("ratio")}
        for r in steps:
            ratio = ratios.get((r["model"], r["dtype"]), {}).get(f"ours_over_{r['impl']}", "")
            lines.append(f"| {r['model']} | {r['dtype']} | {r['batch_size']} | {r['image_size']} | "
                         f"{r['impl']} | {r['steps_per_call']} | {r['images_per_sec']:,.0f} | "
                         f"{r['step_ms']:.2f} | {r['compile_s']:.1f} | {ratio} |")
    if by("seeds"):
        lines += ["", "| model | dtype | seeds | mode | images/s (all seeds) | x one model | compile s |",
                  "|---|---|---:|---|---:|---:|---:|"]
        for r in by("seeds"):
            lines.append(f"| {r['model']} | {r['dtype']} | {r['num_seeds']} | {r['impl']} | "
                         f"{r['images_per_sec']:,.0f} | {r.get('speedup_over_one_model', '')} | "
                         f"{r['compile_s']:.1f} |")
    if by("e2e"):
        lines += ["", "| model | dtype | dataset | seeds | steps | loop images/s | incl. eval/ckpt | "
                  "overhead s | projected 64k-step run | target |",
                  "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in by("e2e"):
            seeds = r.get("num_seeds", 1)
            target = TARGETS_S.get(r["model"]) if seeds == 1 else None
            together = f"{seeds} ({r['seeds_formulation']})" if seeds > 1 else "1"
            lines.append(f"| {r['model']} | {r['dtype']} | {r['dataset']} | {together} | {r['steps']} | "
                         f"{r['images_per_sec']:,.0f} | {r['e2e_images_per_sec']:,.0f} | "
                         f"{r['overhead_s']:.0f} | {r['projected_full_run_s']:,.0f} s | "
                         f"{f'<= {target} s' if target else ''} |")
    lines += compile_bench.summary_rows(records)
    lines += pipeline.summary_rows(records)
    # accelerator targets, and the host pipeline's (measured on whatever host ran it)
    if rows := targets([r for r in records if r["backend"] != "cpu"]) + pipeline.targets(records):
        lines += ["", "| speed target | measured | target | met |", "|---|---:|---:|---|"]
        lines += [f"| {t['what']} | {t['value']} | {t['target']} | {'yes' if t['met'] else 'NO'} |"
                  for t in rows]
    return "\n".join(lines) + "\n"


# ---- driver --------------------------------------------------------------------------------------


def read_records(path: str, stopped: bool = False) -> list[dict]:
    """The JSON lines of a --out file (bench records carry no step: not metrics.jsonl records). A
    missing file is an error, not an empty run, unless `stopped`: a run stopped at a budget (the
    device check) may have written nothing yet, and the text after its last newline is a record a
    kill cut short."""
    if not os.path.isfile(path):
        if stopped:
            return []
        raise OSError(f"no such file: {path}")
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    records = []
    for number, line in enumerate(lines[:-1] if stopped else lines, 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError:
                raise ValueError(f"{path}:{number} is not a JSON record") from None
    return records
