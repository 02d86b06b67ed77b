"""The real training loop end to end, and the projected wall time of a full 64k-step run."""

from __future__ import annotations

import tempfile
import time


from resnet_jax import configs
from resnet_jax import runs
from resnet_jax.configs import PAPER_CIFAR_STEPS, cifar_config


from resnet_jax.bench.steps import split_formulation


# ---- end to end: the real training loop ---------------------------------------------------------
def project_full_run(records: list[dict], elapsed_s: float, total_steps: int = PAPER_CIFAR_STEPS,
                     eval_every: int = 1_000) -> dict:
    """Steady rate between the first evaluated record and the last (the step and evaluation
    programs are compiled by then, and one evaluation per `eval_every` steps is inside the window,
    as in a full run); everything else in `elapsed_s` counts as fixed overhead (data, init,
    compiling, the final checkpoint)."""
    evaluated = [r for r in records if "test_error" in r]
    first = next((r for r in evaluated if r["step"] >= eval_every), None)
    last = records[-1] if records else None
    if first is None or last["step"] <= first["step"]:
        raise ValueError("the e2e run needs at least two evaluations (steps >= 2 * eval_every)")
    steps_per_s = (last["step"] - first["step"]) / (last["wall_time"] - first["wall_time"])
    overhead_s = max(0.0, elapsed_s - last["step"] / steps_per_s)
    return {"steady_steps_per_sec": round(steps_per_s, 2), "overhead_s": round(overhead_s, 2),
            "projected_full_run_s": round(overhead_s + total_steps / steps_per_s, 1),
            "projected_steps": total_steps}


def bench_e2e(model: str, dtype: str, steps: int, dataset: str, eval_every: int,
              num_seeds: int = 1, formulation: str = "loop") -> dict:
    """The real loop for `steps`; with `num_seeds` > 1 that many seeds together (`formulation`:
    a seeds_mode, "+im2col" for PatchConv convs), images/s summed over the seeds."""
    from resnet_jax.train.loop import train_and_evaluate  # noqa: PLC0415 (absl logging setup)

    config = cifar_config(model)
    configs.override(config, dataset=dataset, dtype=dtype, steps=steps, eval_every=eval_every,
                             log_every=min(config.run.log_every, eval_every), progress=False)
    seeds_fields = {}
    if num_seeds > 1:
        mode, conv_impl = split_formulation(formulation)
        configs.override(config, num_seeds=num_seeds, seeds_mode=mode, conv_impl=conv_impl)
        seeds_fields = {"num_seeds": num_seeds, "seeds_formulation": formulation}
    with tempfile.TemporaryDirectory(prefix="resnet_jax_bench_") as workdir:
        t = time.perf_counter()
        results = train_and_evaluate(config, workdir)
        elapsed = time.perf_counter() - t
        logged = runs.seed_dir(workdir, config.run.seed) if num_seeds > 1 else workdir
        records = runs.read_metrics(logged)
    projection = project_full_run(records, elapsed, eval_every=eval_every)
    per_seed_rate = results["images_per_sec_per_seed" if num_seeds > 1 else "images_per_sec"]
    return dict(kind="e2e", impl="ours", model=model, dtype=dtype, batch_size=config.run.batch_size,
                dataset=dataset, steps=steps, **seeds_fields,
                eval_every=eval_every, checkpoint_every=config.run.checkpoint_every,
                elapsed_s=round(elapsed, 2), images_per_sec=per_seed_rate and per_seed_rate * num_seeds,
                e2e_images_per_sec=round(num_seeds * config.run.batch_size
                                         * projection["steady_steps_per_sec"], 1),
                **projection)
