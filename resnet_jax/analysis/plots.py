"""Training curves drawn like the paper's figures (`resnet-jax report`, `resnet-jax plot`): thin
lines training error (mean over each log interval), bold lines test error, x iterations. Every
figure names the data and schedule its runs used on its face, beside the paper's."""

from __future__ import annotations

import math
import os
import textwrap

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402

from resnet_jax import runs as run_folder  # noqa: E402
from resnet_jax.experiment import TEST, TRAIN, Figure, flat, label, select  # noqa: E402

KEY = "thin: training error, bold: test error"


def _curves(workdir: str):
    return ([(step, 100 * error) for step, error in curve] for curve in run_folder.curves(workdir))


def draw(ax, runs: dict[str, str], title: str, which=(TRAIN, TEST)) -> float:
    """The runs' curves on `ax`; returns the largest error drawn (%)."""
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    top = 0.0
    for i, (name, workdir) in enumerate(runs.items()):
        train, test = _curves(workdir)
        color = colors[i % len(colors)]
        if TRAIN in which and train:
            ax.plot(*zip(*train), color=color, lw=0.8, alpha=0.8, label=None if TEST in which else name)
            top = max(top, *(e for _, e in train))
        if TEST in which and test:
            ax.plot(*zip(*test), color=color, lw=2.2, label=name)
            top = max(top, *(e for _, e in test))
    ax.set_title(title)
    ax.set_xlabel("iter.")
    ax.set_ylabel("error (%)")
    ax.grid(alpha=0.3)
    if runs:
        ax.legend(fontsize=8)
    return top


def _fix_scale(axes, top: float) -> None:
    """The same fixed error range on every panel, 0-20 % as the paper's CIFAR figures unless a
    curve goes higher: noise is not blown up into a trend."""
    for ax in axes:
        ax.set_ylim(0, max(20, 5 * math.ceil(top / 5)))


def setting(workdirs) -> str:
    """"digits, 300 steps": the dataset(s) and schedule(s) the runs' config.json record."""
    datasets, steps = set(), set()
    for workdir in workdirs:
        try:
            config = flat(run_folder.read_json(run_folder.config_path(workdir)))
        except (OSError, ValueError):
            continue
        datasets.add(str(config.get("dataset")))
        steps.add(config.get("steps"))
    if not datasets:
        return "no runs"
    return f"{'/'.join(sorted(datasets))}, {'/'.join(f'{s:,}' for s in sorted(steps))} steps"


def face_title(title: str, workdirs, paper_setting: str = "") -> str:
    """"Fig 6 — digits, 300 steps (paper: CIFAR-10, 64k)"."""
    ours = f"{title} — {setting(workdirs)}"
    return ours + (f" (paper: {paper_setting})" if paper_setting else "")


def _wrap(title: str, inches: float) -> str:
    """The title in lines that fit a figure `inches` wide at the suptitle's font size."""
    return textwrap.fill(title, width=int(inches * 13))


def run_dirs(runs_dir: str, nets=None) -> dict[str, str]:
    """{net: workdir} of the runs in `runs_dir` that have logged metrics, of `nets` (patterns) or all;
    a run of several seeds is drawn by its first seed."""
    found = {}
    names = sorted(os.listdir(runs_dir)) if os.path.isdir(runs_dir) else []
    for name in select(tuple(nets or ("*",)), names):
        workdir = os.path.join(runs_dir, name)
        seeds = sorted(d for d in os.listdir(workdir) if d.startswith("seed")) \
            if os.path.isdir(workdir) else []
        for candidate in (workdir, *(os.path.join(workdir, s) for s in seeds)):
            if run_folder.has_metrics(candidate):
                found[name] = candidate
                break
    return found


def plot_figure(figure: Figure, runs_dir: str, out: str, paper_setting: str = "") -> bool:
    """`figure`'s panels from the runs of `runs_dir` (RUNS/NET); False (nothing written) if none of
    its nets has a run."""
    panels = [(panel, run_dirs(runs_dir, panel.nets)) for panel in figure.panels]
    drawn = {w for _, runs in panels for w in runs.values()}
    if not drawn:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.9), squeeze=False)
    top = max(draw(ax, {label(n): w for n, w in runs.items()}, panel.title, which=panel.curves)
              for ax, (panel, runs) in zip(axes[0], panels))
    _fix_scale(axes[0], top)
    fig.suptitle(f"{_wrap(face_title(figure.title, sorted(drawn), paper_setting), 5 * len(panels))}\n{KEY}",
                 fontsize=10)
    _save(fig, out)
    return True


def plot_runs(runs: dict[str, str], out: str, title: str = "training curves") -> None:
    """One panel of the runs {legend label: workdir}, titled with their data and schedule."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    _fix_scale([ax], draw(ax, runs, ""))
    fig.suptitle(f"{_wrap(face_title(title, list(runs.values())), 6)}\n{KEY}", fontsize=10)
    _save(fig, out)


def _save(fig, out: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
