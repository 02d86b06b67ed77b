"""Re-test a saved run (`resnet-jax eval`): the single-view CIFAR test of its newest checkpoint."""

from __future__ import annotations

import jax

from resnet_jax.analysis.load import Run, RunError, load_run


def single_view(run: Run) -> dict[str, float]:
    """The paper's CIFAR test: one pass over the original images (the training loop's evaluate)."""
    metrics = jax.device_get(run.engine.evaluate(run.state, run.data))
    return {k: float(v) for k, v in metrics.items()}


def evaluate_run(workdir: str, mode: str = "single", data_dir: str | None = None) -> dict:
    if mode != "single":
        raise RunError(f"unknown eval mode {mode!r}: expected 'single'")
    run = load_run(workdir, data_dir)
    if run.config.dataset == "imagenet":
        raise RunError("ImageNet runs are tested with `resnet-jax imagenet --eval_only RUNS`")
    return {"workdir": workdir, "model": run.config.model, "dataset": run.dataset.name,
            "eval_split": run.dataset.eval_split, "mode": mode, "step": run.step,
            "num_images": len(run.dataset.eval_images), **single_view(run)}
