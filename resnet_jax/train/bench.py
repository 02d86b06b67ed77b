"""`resnet-jax bench`: training throughput of our engine beside a straightforward Flax step.

One JSON object per measurement (stdout, and appended to --out):
- step:      our Engine.train_chunk on a device-resident synthetic dataset: batch gather, pad/crop/
             flip augmentation and the SGD step, `steps_per_call` steps per call (1 on CPU).
- reference: the flax-examples step on the same model: flax TrainState + optax.sgd, a fixed
             pre-placed batch, no augmentation; impl "reference" = one jit call per step,
             "reference_scan" = `steps_per_call` steps scanned per call (accelerators only).
- ratio:     ours / reference images/s (the issue's targets: >= 1.0, aim 1.5).
- seeds:     N seeds in one program per seeds_mode; aggregate images/s and speed-up over one model.
- e2e:       the real loop (`train_and_evaluate`: augmentation, evaluation, logging, checkpoints)
             for --e2e_steps, and the projected wall time of the paper's 64k-step run.
- compile:   compile seconds and peak host memory of init, one step and a scanned chunk per depth,
             blocks scanned vs unrolled, each in a fresh process, and the step time of both
             (compile_bench.py; --compile_models, --compile_forms, --unrolled_max_depth).
Compile time is measured apart (ahead-of-time lowering), never inside a rate.

    resnet-jax bench --quick                    # CPU smoke test, < 2 minutes on 2 cores
    resnet-jax bench --out bench.jsonl          # the full set (GPU): R20/56/110, R50, f32/bf16
    resnet-jax bench --parts compile --dtypes float32 --image_size 8   # depth 20..1202, CPU
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state

from resnet_jax import runs
from resnet_jax.configs import PAPER_CIFAR_STEPS, cifar_config
from resnet_jax.data import synthetic
from resnet_jax.models import DTYPES, input_shape, parse_model_name
from resnet_jax.models.layers import CONV_IMPLS
from resnet_jax.train import compile_bench
from resnet_jax.train.engine import Engine, EpochOrders, create_engine, put_dataset
from resnet_jax.train.seeds import SEEDS_MODES, SeedsEngine, seeds_mesh

DEFAULT_MODELS = ("cifar_resnet20", "cifar_resnet56", "cifar_resnet110", "imagenet_resnet50")
PARTS = ("step", "reference", "seeds", "e2e", "compile")
COMPILE_MODELS = ("cifar_resnet20", "cifar_resnet56", "cifar_resnet110", "cifar_resnet1202")


# ---- setup ---------------------------------------------------------------------------------------
def bench_config(model: str, dtype: str, batch_size: int | None = None):
    """The paper's recipe for `model` (CIFAR: batch 128, BN over 64; ImageNet: 256, BN over 32)."""
    config = cifar_config(model)
    if parse_model_name(model)[0] == "imagenet":
        config.update(shortcut="B", batch_size=256, bn_group_size=32)
    config.dtype = dtype
    if batch_size:
        config.batch_size = batch_size
        config.bn_group_size = math.gcd(config.bn_group_size, batch_size)
    return config


def bench_dataset(model: str, image_size: int, batch_size: int):
    """Synthetic uint8 images (CIFAR-sized: 50k like CIFAR-10; ImageNet-sized: 2k) on the device."""
    num_train = 50_000 if image_size <= 64 else 2_048
    ds = synthetic.load(num_train=max(num_train, batch_size), num_eval=batch_size,
                        image_size=image_size)
    if parse_model_name(model)[0] == "imagenet":
        ds = dataclasses.replace(ds, num_classes=1000)
    return ds


def environment() -> dict:
    device = jax.devices()[0]
    return {"backend": jax.default_backend(), "device": device.device_kind,
            "num_devices": jax.device_count(), "jax": jax.__version__,
            "load_avg_1m": round(os.getloadavg()[0], 2)}


def _timed(call, state, calls: int):
    """Run `calls` calls and wait for the result; returns (state, seconds)."""
    t = time.perf_counter()
    for _ in range(calls):
        state = call(state)
    jax.block_until_ready(state)
    return state, time.perf_counter() - t


def _compile(jitted, *args):
    t = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    return compiled, round(time.perf_counter() - t, 2)


@dataclasses.dataclass
class Runner:
    """One compiled training program ready to time: `call(state) -> state` runs `steps_per_call`
    steps of `images_per_step` images."""

    record: dict
    call: Callable[[Any], Any]
    state: Any
    steps_per_call: int
    images_per_step: int


def measure(runners: list[Runner], steps: int, repeats: int, warmup_calls: int = 2) -> list[dict]:
    """Time every runner in `repeats` windows of about `steps` steps, round-robin, so load spikes on a
    shared machine hit all of them alike; the rate is the fastest window's (timeit's rule)."""
    windows: list[list[float]] = [[] for _ in runners]
    for r in runners:
        r.state, _ = _timed(r.call, r.state, warmup_calls)  # first runs allocate
    for _ in range(repeats):
        for r, w in zip(runners, windows):
            r.state, seconds = _timed(r.call, r.state, max(1, math.ceil(steps / r.steps_per_call)))
            w.append(seconds)
    out = []
    for r, w in zip(runners, windows):
        n = max(1, math.ceil(steps / r.steps_per_call)) * r.steps_per_call
        best, median = min(w), float(np.median(w))
        out.append({**r.record, "steps_per_call": r.steps_per_call, "steps": n, "windows": repeats,
                    "images_per_sec": round(r.images_per_step * n / best, 1),
                    "images_per_sec_median": round(r.images_per_step * n / median, 1),
                    "step_ms": round(1e3 * best / n, 3)})
    return out


# ---- ours ----------------------------------------------------------------------------------------
@dataclasses.dataclass
class Setup:
    model: str
    dtype: str
    image_size: int
    engine: Engine
    data: Any
    state: Any

    @property
    def batch_size(self) -> int:
        return self.engine.config.batch_size

    def describe(self) -> dict:
        return {"model": self.model, "dtype": self.dtype, "batch_size": self.batch_size,
                "image_size": self.image_size}


def setup(model: str, dtype: str, image_size: int, batch_size: int | None) -> Setup:
    config = bench_config(model, dtype, batch_size)
    ds = bench_dataset(model, image_size, config.batch_size)
    engine = create_engine(config, ds.crop_padding, ds.num_classes)
    data = put_dataset(ds, engine.mesh, len(ds.eval_images))
    return Setup(model, dtype, image_size, engine, data, engine.init_state(ds.image_shape))


def with_conv_impl(engine: Engine, conv_impl: str, mesh=None) -> Engine:
    """`engine` with its convolutions implemented as `conv_impl` (same model, same weights), on
    `mesh` (default: the engine's)."""
    config = ml_collections.ConfigDict(engine.config)
    config.conv_impl = conv_impl
    return create_engine(config, engine.crop_padding, engine.model.num_classes,
                         mesh=mesh or engine.mesh)


def split_formulation(formulation: str) -> tuple[str, str]:
    """"vmap+im2col" -> ("vmap", "im2col"); a bare seeds_mode keeps nn.Conv ("xla")."""
    mode, plus, conv_impl = formulation.partition("+")
    return mode, conv_impl if plus else "xla"  # "vmap+" stays invalid


def ours(s: Setup, per_call: int, conv_impl: str = "xla") -> Runner:
    """The loop's call (inputs.DeviceFeed): train_chunk with the host-kept epoch orders."""
    engine = s.engine if conv_impl == "xla" else with_conv_impl(s.engine, conv_impl)
    seed, step = jax.device_get((s.state.seed, s.state.step))
    orders = EpochOrders(engine, seed, step, s.data.train_images.shape[0], per_call)
    compiled, compile_s = _compile(Engine.train_chunk, engine, s.state, s.data, per_call,
                                   orders.next_chunk(per_call))
    state = jax.tree.map(jnp.copy, s.state)  # the call donates its state
    impl = "ours" if conv_impl == "xla" else f"ours+{conv_impl}"
    return Runner(dict(kind="step", impl=impl, **s.describe(), compile_s=compile_s),
                  lambda st: compiled(st, s.data, orders.next_chunk(per_call))[0], state, per_call,
                  s.batch_size)


# ---- reference: the flax-examples step ----------------------------------------------------------
class ReferenceState(train_state.TrainState):
    batch_stats: Any


def reference_step(state: ReferenceState, images, labels):
    def loss_fn(params):
        logits, updates = state.apply_fn({"params": params, "batch_stats": state.batch_stats}, images,
                                         train=True, mutable=["batch_stats"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), (logits, updates)

    (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads, batch_stats=updates["batch_stats"])
    return state, {"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels)}


def reference_state(s: Setup) -> ReferenceState:
    cfg = s.engine.config
    schedule = optax.piecewise_constant_schedule(cfg.lr, {32_000: 0.1, 48_000: 0.1})
    tx = optax.chain(optax.add_decayed_weights(cfg.weight_decay),
                     optax.sgd(schedule, momentum=cfg.momentum))
    params = jax.tree.map(jnp.copy, s.state.params)  # same model, same initial weights
    return ReferenceState.create(apply_fn=s.engine.model.apply, params=params, tx=tx,
                                 batch_stats=jax.tree.map(jnp.copy, s.state.batch_stats))


def reference(s: Setup, per_call: int) -> Runner:
    """One jit call per step (per_call=1) or `per_call` steps scanned per call, on a fixed batch."""
    rng = np.random.default_rng(0)
    shape = (s.batch_size, s.image_size, s.image_size, 3)
    images = jax.device_put(rng.normal(size=shape).astype(np.float32), s.engine.batch_sharding)
    labels = jax.device_put(rng.integers(0, 10, s.batch_size, dtype=np.int32), s.engine.batch_sharding)
    if per_call == 1:
        step = jax.jit(reference_step, donate_argnums=0)
    else:
        def scanned(state, images, labels):
            return jax.lax.scan(lambda st, _: reference_step(st, images, labels), state, None,
                                length=per_call)
        step = jax.jit(scanned, donate_argnums=0)
    state = reference_state(s)
    compiled, compile_s = _compile(step, state, images, labels)
    impl = "reference" if per_call == 1 else "reference_scan"
    return Runner(dict(kind="reference", impl=impl, **s.describe(), compile_s=compile_s),
                  lambda st: compiled(st, images, labels)[0], state, per_call, s.batch_size)


# ---- several seeds in one program ---------------------------------------------------------------
def seeds(s: Setup, num_seeds: int, formulation: str, per_call: int) -> Runner:
    """N seeds in one program; `formulation` is a seeds_mode, "+im2col" for PatchConv convs."""
    mode, conv_impl = split_formulation(formulation)
    engine = with_conv_impl(s.engine, conv_impl, seeds_mesh(num_seeds, mode))
    multi = SeedsEngine(engine, tuple(range(num_seeds)), mode)
    data = jax.device_put(s.data, engine.replicated)
    state = multi.init_state((s.image_size, s.image_size, 3))
    compiled, compile_s = _compile(SeedsEngine.train_chunk, multi, state, data, per_call)
    return Runner(dict(kind="seeds", impl=formulation, **s.describe(), num_seeds=num_seeds,
                       compile_s=compile_s),
                  lambda st: compiled(st, data)[0], state, per_call, num_seeds * s.batch_size)


def seeds_formulations(text: str) -> tuple[list[str], list[str]]:
    """Parse "loop,vmap,vmap+im2col,..." into (formulations, errors)."""
    formulations = _csv(text)
    errors = []
    for f in formulations:
        mode, conv_impl = split_formulation(f)
        if mode not in SEEDS_MODES or conv_impl not in CONV_IMPLS:
            errors.append(f"unknown seeds formulation {f!r} (expected MODE or MODE+im2col, MODE in "
                          f"{', '.join(SEEDS_MODES)})")
    return formulations, errors


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
    config.update(dataset=dataset, dtype=dtype, steps=steps, eval_every=eval_every,
                  log_every=min(config.log_every, eval_every), progress=False)
    seeds_fields = {}
    if num_seeds > 1:
        mode, conv_impl = split_formulation(formulation)
        config.update(num_seeds=num_seeds, seeds_mode=mode, conv_impl=conv_impl)
        seeds_fields = {"num_seeds": num_seeds, "seeds_formulation": formulation}
    with tempfile.TemporaryDirectory(prefix="resnet_jax_bench_") as workdir:
        t = time.perf_counter()
        results = train_and_evaluate(config, workdir)
        elapsed = time.perf_counter() - t
        logged = runs.seed_dir(workdir, config.seed) if num_seeds > 1 else workdir
        records = runs.read_metrics(logged)
    projection = project_full_run(records, elapsed, eval_every=eval_every)
    per_seed_rate = results["images_per_sec_per_seed" if num_seeds > 1 else "images_per_sec"]
    return dict(kind="e2e", impl="ours", model=model, dtype=dtype, batch_size=config.batch_size,
                dataset=dataset, steps=steps, **seeds_fields,
                eval_every=eval_every, checkpoint_every=config.checkpoint_every,
                elapsed_s=round(elapsed, 2), images_per_sec=per_seed_rate and per_seed_rate * num_seeds,
                e2e_images_per_sec=round(num_seeds * config.batch_size
                                         * projection["steady_steps_per_sec"], 1),
                **projection)


# ---- summary -------------------------------------------------------------------------------------
# Issue 7's targets for one accelerator (checked by `targets`, printed under the tables).
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
    if rows := targets([r for r in records if r["backend"] != "cpu"]):  # accelerator targets
        lines += ["", "| speed target | measured | target | met |", "|---|---:|---:|---|"]
        lines += [f"| {t['what']} | {t['value']} | {t['target']} | {'yes' if t['met'] else 'NO'} |"
                  for t in rows]
    return "\n".join(lines) + "\n"


# ---- driver --------------------------------------------------------------------------------------
def _csv(text: str) -> list[str]:
    return [t for t in (x.strip() for x in text.split(",")) if t]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=argv[0], description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=None, help=f"default: {','.join(DEFAULT_MODELS)}")
    p.add_argument("--dtypes", default=None, help="default: float32,bfloat16")
    p.add_argument("--parts", default=None, help=f"subset of {','.join(PARTS)} (default: all)")
    p.add_argument("--steps", type=int, default=300, help="timed steps per window")
    p.add_argument("--repeats", type=int, default=3,
                   help="timing windows per program, round-robin; the fastest counts")
    p.add_argument("--steps_per_call", type=int, default=50,
                   help="steps scanned per call (accelerators; CPU runs 1, see Engine.train_chunk)")
    p.add_argument("--batch_size", type=int, default=None, help="default: 128 CIFAR, 256 ImageNet")
    p.add_argument("--image_size", type=int, default=None, help="default: 32 CIFAR, 224 ImageNet")
    p.add_argument("--seeds", type=int, default=5, help="seeds for the seeds part")
    p.add_argument("--seeds_modes", default="loop,vmap,vmap+im2col,devices",
                   help="formulations for the seeds part: a seeds_mode, +im2col for convs as matmuls "
                        "(devices only with several devices: on one it is the loop program)")
    p.add_argument("--conv_impls", default="xla",
                   help=f"our step with these conv implementations ({','.join(CONV_IMPLS)})")
    p.add_argument("--e2e_steps", type=int, default=2_000)
    p.add_argument("--e2e_eval_every", type=int, default=1_000)
    p.add_argument("--e2e_dataset", default="synthetic", help="synthetic (CIFAR-sized) or digits")
    p.add_argument("--e2e_seeds", type=int, default=1,
                   help="seeds trained together in the e2e runs (images/s summed over them)")
    p.add_argument("--e2e_seeds_mode", default="loop", help="their formulation, as --seeds_modes")
    p.add_argument("--compile_models", default=",".join(COMPILE_MODELS),
                   help="models of the compile part (default: Table 6's depths 20 to 1202)")
    p.add_argument("--compile_forms", default="scan,unrolled",
                   help=f"block forms of the compile part: {','.join(compile_bench.FORMS)}")
    p.add_argument("--unrolled_max_depth", type=int, default=110,
                   help="compile part: skip unrolled forms deeper than this (ResNet-1202 unrolled "
                        "exhausts 24 GB compiling its step on CPU)")
    p.add_argument("--compile_chunk", type=int, default=None,
                   help="steps in the compile part's scanned chunk (default: --steps_per_call)")
    p.add_argument("--compile_timeout", type=float, default=900.0,
                   help="seconds before a compile-part process is stopped and recorded as failed")
    p.add_argument("--out", default=None, help="also append the JSON lines to this file")
    p.add_argument("--summary", default=None, help="write the markdown tables to this file")
    p.add_argument("--summarize", metavar="JSONL", default=None,
                   help="measure nothing: print the tables and speed targets of the records in "
                        "JSONL (e.g. several partial runs appended to one --out file)")
    p.add_argument("--quick", action="store_true",
                   help="CPU smoke test (< 2 min on 2 cores): ResNet-20 float32 on 8x8 inputs, "
                        "3 windows of 10 steps, the loop for 60 steps on digits; no seeds part")
    args = p.parse_args(argv[1:])
    if args.quick:
        args.models = args.models or "cifar_resnet20"
        args.dtypes = args.dtypes or "float32"
        args.parts = args.parts or "step,reference,e2e"
        args.image_size, args.steps, args.repeats = args.image_size or 8, 10, 3
        args.e2e_steps, args.e2e_eval_every, args.e2e_dataset = 60, 20, "digits"
    args.models = _csv(args.models or ",".join(DEFAULT_MODELS))
    args.dtypes = _csv(args.dtypes or "float32,bfloat16")
    args.parts = _csv(args.parts or ",".join(PARTS))
    args.seeds_modes, errors = seeds_formulations(args.seeds_modes)
    errors += seeds_formulations(args.e2e_seeds_mode)[1]
    args.conv_impls = _csv(args.conv_impls)
    args.compile_models = _csv(args.compile_models)
    args.compile_forms = _csv(args.compile_forms)
    args.compile_chunk = args.compile_chunk or args.steps_per_call
    errors += [f"unknown compile form {x!r} (expected {', '.join(compile_bench.FORMS)})"
               for x in args.compile_forms if x not in compile_bench.FORMS]
    errors += [f"unknown part {x!r} (expected {', '.join(PARTS)})" for x in args.parts if x not in PARTS]
    errors += [f"unknown dtype {x!r}" for x in args.dtypes if x not in DTYPES]
    errors += [f"unknown conv impl {x!r}" for x in args.conv_impls if x not in CONV_IMPLS]
    for model in args.models + args.compile_models:
        try:
            parse_model_name(model)
        except ValueError as e:
            errors.append(str(e))
    for name in ("steps", "repeats", "steps_per_call", "seeds", "e2e_steps", "e2e_eval_every",
                 "e2e_seeds", "compile_chunk", "compile_timeout"):
        if getattr(args, name) <= 0:
            errors.append(f"--{name} must be positive")
    if "e2e" in args.parts and args.e2e_steps < 2 * args.e2e_eval_every:
        errors.append("--e2e_steps must be at least 2 * --e2e_eval_every (two evaluations)")
    if errors:
        p.exit(2, f"{argv[0]}: error: {errors[0]}\n")
    return args


def run(args: argparse.Namespace, emit) -> list[dict]:
    env = environment()
    per_call = 1 if env["backend"] == "cpu" else args.steps_per_call
    label = {"quick": True} if args.quick else {}
    out = []

    def record(r: dict) -> None:
        r = {**r, **label, **env, "load_avg_1m": round(os.getloadavg()[0], 2)}
        out.append(r)
        emit(r)

    for model in args.models if set(args.parts) - {"compile"} else ():
        image_size = args.image_size or input_shape(model)[0]
        cifar = parse_model_name(model)[0] == "cifar"
        for dtype in args.dtypes:
            s = setup(model, dtype, image_size, args.batch_size)
            runners = []
            if "step" in args.parts:
                runners += [ours(s, per_call, c) for c in args.conv_impls if cifar or c == "xla"]
            if "reference" in args.parts:
                runners.append(reference(s, 1))
                if per_call > 1:
                    runners.append(reference(s, per_call))
            if "seeds" in args.parts and cifar:  # Table 6's seeds; ImageNet runs are one per model
                runners += [seeds(s, args.seeds, f, per_call) for f in args.seeds_modes
                            if env["num_devices"] > 1 or not f.startswith("devices")]
            results = measure(runners, args.steps, args.repeats)
            del runners, s
            mine = next((r for r in results if r["impl"] == "ours"), None)
            for r in results:
                if r["kind"] == "seeds" and mine:
                    r["speedup_over_one_model"] = round(r["images_per_sec"] / mine["images_per_sec"], 3)
                record(r)
            refs = [r for r in results if r["kind"] == "reference"]
            if mine and refs:
                record({"kind": "ratio", **{k: mine[k] for k in ("model", "dtype", "batch_size",
                                                                 "image_size")},
                        **{f"ours_over_{r['impl']}": round(mine["images_per_sec"] / r["images_per_sec"], 3)
                           for r in refs}})
        if "e2e" in args.parts and cifar:
            for dtype in args.dtypes:
                record(bench_e2e(model, dtype, args.e2e_steps, args.e2e_dataset,
                                 args.e2e_eval_every, args.e2e_seeds, args.e2e_seeds_mode))
    if "compile" in args.parts:
        for model in args.compile_models:
            depth = parse_model_name(model)[2]
            forms = [f for f in args.compile_forms
                     if depth <= args.unrolled_max_depth or not f.startswith("unrolled")]
            for dtype in args.dtypes:
                compile_bench.bench_compile(
                    model, dtype, args.image_size or input_shape(model)[0],
                    bench_config(model, dtype, args.batch_size).batch_size, forms,
                    args.compile_chunk, args.steps, args.repeats, args.compile_timeout, record)
    return out


def read_records(path: str) -> list[dict]:
    """The JSON lines of a --out file (a missing one is an error, not an empty run)."""
    if not os.path.isfile(path):
        raise OSError(f"no such file: {path}")
    return runs.MetricsLog(path).read()


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.summarize:
        try:
            records = read_records(args.summarize)
        except (OSError, ValueError) as e:
            print(f"{argv[0]}: error: cannot read {args.summarize} ({e})", file=sys.stderr)
            sys.exit(2)
        print(summary_markdown(records), end="")
        return
    try:  # fail before measuring, not after
        for path in filter(None, (args.out, args.summary)):
            open(path, "a").close()
    except OSError as e:
        print(f"{argv[0]}: error: cannot write {e.filename} ({e.strerror})", file=sys.stderr)
        sys.exit(2)
    if jax.default_backend() == "cpu" and not args.quick:
        print(f"{argv[0]}: note: no accelerator, measuring on the CPU", file=sys.stderr)
    out = runs.MetricsLog(args.out, enabled=bool(args.out))  # JSON lines, as metrics.jsonl

    def emit(r: dict) -> None:
        print(json.dumps(r), flush=True)
        out.append(r)

    records = run(args, emit)
    markdown = summary_markdown(records)
    print(markdown, file=sys.stderr)
    if args.summary:
        runs.write_text(args.summary, markdown)
