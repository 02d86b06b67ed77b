"""Training curves drawn like the paper's figures (`resnet-jax plot`): thin lines training error
(mean over each log interval), bold lines test error, x iterations."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402

from resnet_jax import runs as run_folder  # noqa: E402

FIG1_NETS = ("plain20", "plain56")
FIG6_PANELS = {
    "plain": ("plain20", "plain32", "plain44", "plain56"),
    "ResNet": ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110"),
    "ResNet-110 vs 1202": ("resnet110", "resnet1202"),
}


def _label(net: str) -> str:
    return net.replace("plain", "plain-").replace("resnet", "ResNet-")


def draw(ax, runs: dict[str, str], title: str, which=("train", "test")) -> None:
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, workdir) in enumerate(runs.items()):
        train, test = ([(step, 100 * error) for step, error in curve]
                       for curve in run_folder.curves(workdir))
        color = colors[i % len(colors)]
        if "train" in which and train:
            ax.plot(*zip(*train), color=color, lw=0.8, alpha=0.8,
                    label=None if "test" in which else label)
        if "test" in which and test:
            ax.plot(*zip(*test), color=color, lw=2.2, label=label)
    ax.set_title(title)
    ax.set_xlabel("iter.")
    ax.set_ylabel("error (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def existing(runs_dir: str, nets) -> dict[str, str]:
    """{legend label: workdir} of the nets that have a run (with metrics) in `runs_dir`."""
    return {_label(n): workdir for n, workdir in run_folder.named_runs(runs_dir, nets).items()}


def plot_fig1(runs_dir: str, out: str) -> None:
    runs = existing(runs_dir, FIG1_NETS)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    draw(axes[0], runs, "training error", which=("train",))
    draw(axes[1], runs, "test error", which=("test",))
    fig.suptitle("Fig 1: plain nets (thin: training, bold: test)")
    _save(fig, out)


def plot_fig6(runs_dir: str, out: str) -> None:
    panels = {t: existing(runs_dir, nets) for t, nets in FIG6_PANELS.items()}
    panels = {t: r for t, r in panels.items() if r}
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for ax, (title, runs) in zip(axes[0], panels.items()):
        draw(ax, runs, title)
    fig.suptitle("Fig 6 (thin: training error, bold: test error)")
    _save(fig, out)


def plot_runs(runs: dict[str, str], out: str, title: str = "") -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    draw(ax, runs, title)
    _save(fig, out)


def _save(fig, out: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
