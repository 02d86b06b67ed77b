"""Fig 7 (`resnet-jax fig7`): std of the 3x3 layers' responses of trained runs, drawn and saved."""

from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure

from resnet_jax import runs
from resnet_jax.analysis import responses as resp
from resnet_jax.analysis.load import RunError, load_run
from resnet_jax.models import parse_model_name

NETS = ("plain20", "plain56", "resnet20", "resnet56", "resnet110")


def net_label(model: str) -> str:
    """'cifar_resnet56' -> 'ResNet-56', 'cifar_plain20' -> 'plain-20' (the paper's legend)."""
    spec = parse_model_name(model)
    return f"{'ResNet' if spec.residual else 'plain'}-{spec.depth}"


def run_record(workdir: str, data_dir: str | None = None) -> dict:
    """Responses of one trained run, with what identifies it (model, dataset, step, test error)."""
    run = load_run(workdir, data_dir)
    layers = resp.run_responses(run)
    depth = parse_model_name(run.config.model).depth
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
