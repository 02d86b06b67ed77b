"""Fig 7: std of the 3x3 layers' responses of trained plain and residual nets, as PNG and JSON.

`python -m resnet_jax.analysis.fig7 --runs DIR [--nets plain20 ...] [--out DIR/fig7.png]` reads
the runs DIR/plain20, DIR/plain56, DIR/resnet20, ... (workdirs of `resnet-jax train`), and draws the
paper's two panels: stds in the layers' original order (top) and sorted descending (bottom).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from matplotlib.figure import Figure

from resnet_jax import runs
from resnet_jax.analysis import responses as resp
from resnet_jax.analysis.load import RunError, load_run, quiet_aborted_reads
from resnet_jax.models import parse_model_name

NETS = ("plain20", "plain56", "resnet20", "resnet56", "resnet110")


def net_label(model: str) -> str:
    """'cifar_resnet56' -> 'ResNet-56', 'cifar_plain20' -> 'plain-20' (the paper's legend)."""
    _, residual, depth = parse_model_name(model)
    return f"{'ResNet' if residual else 'plain'}-{depth}"


def run_record(workdir: str, data_dir: str | None = None) -> dict:
    """Responses of one trained run, with what identifies it (model, dataset, step, test error)."""
    run = load_run(workdir, data_dir)
    layers = resp.run_responses(run)
    _, _, depth = parse_model_name(run.config.model)
    if len(layers.names) != resp.expected_num_layers(depth):
        raise RunError(f"{workdir}: found {len(layers.names)} response layers, expected "
                       f"{resp.expected_num_layers(depth)} for depth {depth}")
    # The training run's final evaluation (no second compiled forward pass); None if unfinished.
    results = runs.read_results(workdir)
    test_error = results["test_error"] if results and results.get("steps") == run.step else None
    return {"workdir": workdir, "model": run.config.model, "label": net_label(run.config.model),
            "dataset": run.dataset.name, "eval_split": run.dataset.eval_split, "step": run.step,
            "test_error": test_error, "layers": layers.names, "std": layers.std.tolist(),
            "mean_channel_std": layers.mean_channel_std.tolist()}


def draw_fig7(curves: dict[str, np.ndarray], top, bottom, log_y: bool | None = None) -> None:
    """Plot {label: per-layer std} on two matplotlib axes; plain nets dashed, ResNets solid.

    The paper's axes are linear; `log_y=None` switches to a log axis only when the values span
    more than 20x (e.g. an untrained deep plain net), where a linear axis flattens the other curves.
    """
    values = np.concatenate([np.asarray(v) for v in curves.values()])
    if log_y is None:
        log_y = values.max() > 20 * values.min()
    for label, std in curves.items():
        style = "--" if label.startswith("plain") else "-"
        x = np.arange(1, len(std) + 1)
        top.plot(x, std, style, label=label, linewidth=1.2)
        bottom.plot(x, np.sort(std)[::-1], style, label=label, linewidth=1.2)
    top.set_xlabel("layer index (original)")
    bottom.set_xlabel("layer index (sorted by magnitude)")
    for ax in (top, bottom):
        ax.set_ylabel("std (log scale)" if log_y else "std")
        if log_y:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)


def save_fig7(curves: dict[str, np.ndarray], path: str, title: str | None = None) -> None:
    """Write the two-panel PNG (no pyplot: safe in scripts and tests); replaced atomically."""
    fig = Figure(figsize=(7, 7), layout="constrained")
    top, bottom = fig.subplots(2, 1)
    draw_fig7(curves, top, bottom)
    if title:
        fig.suptitle(title)
    tmp = path + ".tmp"
    fig.savefig(tmp, dpi=120, format="png")
    os.replace(tmp, path)


def write_json(records: list[dict], path: str) -> None:
    doc = {"figure": "He et al. 2016, Fig 7",
           "std_definition": "population std of each 3x3 layer's BN output (before ReLU/addition), "
                             "pooled over eval images, positions and channels; running BN "
                             "statistics. mean_channel_std: mean over channels of per-channel std.",
           "runs": records}
    runs.write_json(path, doc)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    parser = argparse.ArgumentParser(prog=os.path.basename(argv[0]),
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, help="directory holding one workdir per net")
    parser.add_argument("--nets", nargs="+", default=list(NETS), help=f"default: {' '.join(NETS)}")
    parser.add_argument("--out", default=None, help="PNG path (default: RUNS/fig7.png)")
    parser.add_argument("--json", default=None, help="JSON path (default: the PNG's, .json)")
    parser.add_argument("--data_dir", default=None, help="override the runs' dataset location")
    args = parser.parse_args(argv[1:])
    out = args.out or os.path.join(args.runs, "fig7.png")
    json_path = args.json or os.path.splitext(out)[0] + ".json"
    quiet_aborted_reads()
    records = []
    try:  # load everything before writing anything
        for net in args.nets:
            records.append(run_record(os.path.join(args.runs, net), args.data_dir))
            r = records[-1]
            error = "n/a" if r["test_error"] is None else f"{100 * r['test_error']:.2f}%"
            print(f"{r['label']:>11}: {len(r['std'])} layers, mean std {np.mean(r['std']):.3f}, "
                  f"test error {error} ({r['dataset']}, step {r['step']})")
    except (RunError, ValueError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    datasets = sorted({r["dataset"] for r in records})
    save_fig7({r["label"]: np.asarray(r["std"]) for r in records}, out,
              title=f"Fig 7: std of layer responses on {', '.join(datasets)}")
    write_json(records, json_path)
    print(f"wrote {out} and {json_path}")


if __name__ == "__main__":
    main()
