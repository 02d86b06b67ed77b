"""`resnet-jax imagenet --table 2|3|4|fig4`: train the table's nets, test them, write paper-vs-ours.

Every net trains through the shared loop into `<runs>/<run name>` (resuming if a checkpoint is
there), then is tested as the paper does for that table: 10-crop for Tables 2 and 3, the
fully-convolutional multi-scale test for Table 4, centre-crop curves for Fig 4. Tables sharing a
net share its run (Table 3's ResNet-34 A is Table 2's ResNet-34). `--eval_only RUNS` only tests
the checkpoints found there. Writes `<out>/<table>_imagenet.md` and `.json`.
"""

from __future__ import annotations

import argparse
import os
import sys

from resnet_jax import runs as run_folder
from resnet_jax.analysis import paper_imagenet as paper
from resnet_jax.configs import imagenet_net_config, scaled_steps
from resnet_jax.models import parse_model_name

TABLES = {
    "2": ("ten_crop", tuple(paper.TABLE2_TOP1), "A"),
    "3": ("ten_crop", tuple(paper.TABLE3), "B"),
    "4": ("multi_scale", tuple(paper.TABLE4), "B"),
    "fig4": ("center", paper.FIG4_NETS, "A"),
}


def run_name(config) -> str:
    """One directory per trained net: plain34, resnet34_A, resnet50_B (v1.5 and schedules apart)."""
    _, residual, depth = parse_model_name(config.model)
    name = f"resnet{depth}_{config.shortcut}" if residual else f"plain{depth}"
    name += "_v1.5" if config.stride_on_3x3 else ""
    return name + ("_fixed" if config.lr_schedule == "fixed" else "")


def paper_numbers(table: str, net: str) -> dict:
    if table == "2":
        return {"top1": paper.TABLE2_TOP1[net]}
    if table in ("3", "4"):
        top1, top5 = (paper.TABLE3 if table == "3" else paper.TABLE4)[net]
        return {"top1": top1, "top5": top5}
    return {}


def evaluate_run(config, workdir: str, mode: str) -> dict | None:
    """Test the newest checkpoint in `workdir` with `mode`; None if there is none."""
    import jax  # noqa: PLC0415 (keep `--help` fast)

    from resnet_jax.data import imagenet  # noqa: PLC0415
    from resnet_jax.train import checkpoint, imagenet_eval  # noqa: PLC0415
    from resnet_jax.train.engine import create_engine, replicate_from_host  # noqa: PLC0415

    if not run_folder.has_checkpoints(workdir):
        return None
    engine = create_engine(config, 0, imagenet.NUM_CLASSES)
    mngr = checkpoint.manager(workdir, read_only=True)
    state = checkpoint.restore_latest(mngr, engine.init_state((config.image_size,) * 2 + (3,)))
    mngr.close()
    if state is None:
        return None
    train = imagenet.open_split("train", config.data_dir)
    source = imagenet.open_split(config.eval_split, config.data_dir)
    mean = imagenet.mean_image(train, crop_size=config.image_size, resize=config.eval_resize,
                               num_images=config.mean_images,
                               cache_dir=config.mean_cache_dir or config.data_dir or workdir,
                               num_workers=config.num_workers)
    metrics = imagenet_eval.evaluate(
        mode, engine.model, {"params": state.params, "batch_stats": state.batch_stats}, source,
        replicate_from_host(mean, engine.mesh), engine.mesh, batch_size=config.eval_batch_size,
        crop_size=config.image_size, resize=config.eval_resize, scales=tuple(config.test_scales),
        num_workers=config.num_workers)
    return {**metrics, "step": int(jax.device_get(state.step))}


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


def markdown(table: str, mode: str, rows: list[dict]) -> str:
    title = {"2": "Table 2: top-1 error (%), 10-crop, ImageNet val",
             "3": "Table 3: error (%), 10-crop, ImageNet val",
             "4": "Table 4: single-model error (%), multi-scale, ImageNet val",
             "fig4": "Fig 4: final errors (%), centre crop (curves in the JSON)"}[table]
    lines = [f"## {title}", "", "| net | run | steps | paper top-1 | ours top-1 | paper top-5 | "
             "ours top-5 |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        p, o = r["paper"], r["ours"] or {}
        ours = lambda k: None if k not in o else 100 * o[k]  # noqa: E731
        top1 = ours("test_error") if table != "fig4" else ours("val_error")
        lines.append(f"| {r['net']} | {r['run']} | {o.get('step', '—')} | {pct(p.get('top1'))} | "
                     f"{pct(top1)} | {pct(p.get('top5'))} | {pct(ours('test_top5_error'))} |")
    test = {"center": "last centre-crop validation of the run", "ten_crop": "10-crop test",
            "multi_scale": "multi-scale test"}[mode]
    lines += ["", f"Ours: {test} (newest checkpoint); '—' = not trained yet."]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog=argv[0], description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", required=True, choices=sorted(TABLES))
    parser.add_argument("--data_dir", default=None, help="tfds data_dir with imagenet2012 prepared")
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps per net (default: the paper's 60e4); the lr schedule "
                             "and intervals shrink with it")
    parser.add_argument("--runs", default="runs/imagenet", help="one subdirectory per trained net")
    parser.add_argument("--eval_only", metavar="RUNS", default=None,
                        help="no training: test the checkpoints under RUNS")
    parser.add_argument("--nets", default=None, help="comma-separated subset of the table's nets")
    parser.add_argument("--schedule", choices=["plateau", "fixed"], default="plateau")
    parser.add_argument("--out", default="results", help="where the .md and .json go")
    args = parser.parse_args(argv[1:])
    if args.steps is not None and args.steps <= 0:
        parser.exit(2, f"{argv[0]}: error: --steps must be positive\n")
    if args.eval_only and not os.path.isdir(args.eval_only):
        parser.exit(2, f"{argv[0]}: error: --eval_only {args.eval_only}: no such directory\n")
    mode, nets, default_shortcut = TABLES[args.table]
    if args.nets:
        unknown = set(args.nets.split(",")) - set(nets)
        if unknown:
            parser.exit(2, f"{argv[0]}: error: {sorted(unknown)} not in table {args.table}: {nets}\n")
        nets = tuple(n for n in nets if n in args.nets.split(","))

    from resnet_jax.data import DatasetError  # noqa: PLC0415
    from resnet_jax.train.loop import ConfigError, train_and_evaluate  # noqa: PLC0415

    runs = args.eval_only or args.runs
    rows = []
    try:
        for net in nets:
            config = imagenet_net_config(f"{net}:{args.schedule}", default_shortcut)
            config.data_dir = args.data_dir
            if args.steps:
                config = scaled_steps(config, args.steps)
            workdir = os.path.join(runs, run_name(config))
            if not args.eval_only:
                train_and_evaluate(config, workdir)
            ours = curves(workdir) if mode == "center" else evaluate_run(config, workdir, mode)
            if mode == "center" and ours.get("val_error"):
                ours = {**ours, "val_error": ours["val_error"][-1], "step": ours["step"][-1],
                        "curves": dict(ours)}
            rows.append({"net": net, "run": run_name(config), "paper": paper_numbers(args.table, net),
                         "ours": ours or None, "mode": mode})
    except (ConfigError, DatasetError) as e:
        print(f"{argv[0]}: error: {e}", file=sys.stderr)
        sys.exit(2)
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"table{args.table}_imagenet" if args.table != "fig4"
                        else "fig4_imagenet")
    text = markdown(args.table, mode, rows)
    run_folder.write_text(stem + ".md", text + "\n")
    run_folder.write_json(stem + ".json", rows)
    print(text)
    if mode == "center":  # Fig 4 itself: left plain, right ResNet, as the paper draws it
        from resnet_jax.analysis import plots  # noqa: PLC0415 (matplotlib only when drawing)

        for kind in ("plain", "resnet"):
            drawn = {r["net"]: os.path.join(runs, r["run"]) for r in rows
                     if r["net"].startswith(kind) and r["ours"]}
            if drawn:
                plots.plot_runs(drawn, f"{stem}_{kind}.png", title=f"ImageNet, {kind} nets")
                print(f"wrote {stem}_{kind}.png")
