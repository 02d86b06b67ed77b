"""Fig 7 (`resnet-jax fig7`): std of the 3x3 layers' responses of trained runs, drawn and saved."""

from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from resnet_jax import runs
from resnet_jax.analysis import responses as resp
from resnet_jax.analysis.load import RunError, load_run
from resnet_jax.models import parse_model_name
from resnet_jax.train import run_weights

NETS = ("plain20", "plain56", "resnet20", "resnet56", "resnet110")


def net_label(model: str) -> str:
    """'cifar_resnet56' -> 'ResNet-56', 'cifar_plain20' -> 'plain-20' (the paper's legend),
    'cifar_preact110' -> 'pre-act ResNet-110' (1603.05027's units: not the paper's ResNet)."""
    spec = parse_model_name(model)
    if not spec.residual:
        return f"plain-{spec.depth}"
    return f"{'pre-act ' if spec.preact else ''}ResNet-{spec.depth}"


def run_record(workdir: str, data_dir: str | None = None) -> dict:
    """Responses of one run (trained here or imported) on its test images, with what identifies
    it (model, dataset, images, step, errors). Each run gets its own input mean and convention, as
    `eval` gives them (analysis/load.py)."""
    run = load_run(workdir, data_dir)
    try:
        layers = resp.run_responses(run)
    except ValueError as e:
        raise RunError(f"{workdir}: {e}") from None
    record = run_weights.read_record(workdir) or {}
    label = net_label(run.config.model.name)
    if record.get("family"):  # an imported net: whose weights
        label += f" ({record['family']})"
    # The training run's final evaluation; None if unfinished (or imported).
    results = runs.read_results(workdir)
    test_error = results["test_error"] if results and results.get("steps") == run.step else None
    published = record.get("published") or {}
    return {"workdir": workdir, "model": run.config.model.name, "label": label,
            "imported_from": run.config.run.imported_from or None, "weights_of": record.get("family"),
            "response_definition": resp.response_definition(parse_model_name(run.config.model.name).block),
            "dataset": run.dataset.name, "eval_split": run.dataset.eval_split, "step": run.step,
            "num_images": layers.num_images, "error_on_these_images": layers.errors / layers.num_images,
            "test_error": test_error, "published_test_error": published.get("test_error"),
            "layers": layers.names, "std": layers.std.tolist(),
            "mean_channel_std": layers.mean_channel_std.tolist()}


def unique_labels(records: list[dict]) -> list[str]:
    """The records' labels, a run's folder name added where two would read the same."""
    labels = [r["label"] for r in records]
    return [f"{label} [{os.path.basename(os.path.normpath(r['workdir']))}]" if labels.count(label) > 1
            else label for label, r in zip(labels, records)]


def figure_title(records: list[dict]) -> str:
    """Names the data on the figure's face: dataset, split and image count per run."""
    seen = sorted({f"{r['num_images']:,} {r['dataset']} {r['eval_split']} images" for r in records})
    steps = sorted({r["step"] for r in records if not r["weights_of"]})
    trained = ([f"trained here {'/'.join(map(str, steps))} steps"] if steps else []) + [
        f"{family}'s weights" for family in sorted({r["weights_of"] for r in records if r["weights_of"]})]
    return f"Fig 7: std of 3x3 layer responses, {'; '.join(seen)}\n{', '.join(trained)}"


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
    for ax in (top, bottom):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
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
           "std_definition": "population std of each 3x3 layer's response (each run's "
                             "response_definition), pooled over its test images, positions and "
                             "channels; running BN statistics. mean_channel_std: mean over "
                             "channels of per-channel std.",
           "runs": records}
    runs.write_json(path, doc)
