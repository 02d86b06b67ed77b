"""Training-step measurements: our engine, a flax-examples reference step, several seeds per
program (`resnet-jax bench --parts step,reference,seeds`)."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from resnet_jax import configs
from resnet_jax.configs import cifar_config
from resnet_jax.data import synthetic
from resnet_jax.models import parse_model_name
from resnet_jax.models.layers import CONV_IMPLS
from resnet_jax.train.engine import Engine, EpochOrders, create_engine, put_dataset
from resnet_jax.train.seeds import SEEDS_MODES, SeedsEngine, seeds_mesh


DEFAULT_MODELS = ("cifar_resnet20", "cifar_resnet56", "cifar_resnet110", "imagenet_resnet50")
PARTS = ("step", "reference", "seeds", "e2e", "compile", "pipeline")
COMPILE_MODELS = ("cifar_resnet20", "cifar_resnet56", "cifar_resnet110", "cifar_resnet1202")


# ---- setup ---------------------------------------------------------------------------------------
def bench_config(model: str, dtype: str, batch_size: int | None = None):
    """The paper's recipe for `model` (CIFAR: batch 128, BN over 64; ImageNet: 256, BN over 32)."""
    config = cifar_config(model)
    if parse_model_name(model).family == "imagenet":
        configs.override(config, shortcut="B", batch_size=256, bn_group_size=32)
    config.model.dtype = dtype
    if batch_size:
        config.run.batch_size = batch_size
        config.model.bn_group_size = math.gcd(config.model.bn_group_size, batch_size)
    return config


def bench_dataset(model: str, image_size: int, batch_size: int):
    """Synthetic uint8 images (CIFAR-sized: 50k like CIFAR-10; ImageNet-sized: 2k) on the device."""
    num_train = 50_000 if image_size <= 64 else 2_048
    ds = synthetic.load(num_train=max(num_train, batch_size), num_eval=batch_size,
                        image_size=image_size)
    if parse_model_name(model).family == "imagenet":
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
        return self.engine.config.run.batch_size

    def describe(self) -> dict:
        return {"model": self.model, "dtype": self.dtype, "batch_size": self.batch_size,
                "image_size": self.image_size}


def setup(model: str, dtype: str, image_size: int, batch_size: int | None) -> Setup:
    config = bench_config(model, dtype, batch_size)
    ds = bench_dataset(model, image_size, config.run.batch_size)
    engine = create_engine(config, ds.crop_padding, ds.num_classes)
    data = put_dataset(ds, engine.mesh, len(ds.eval_images))
    return Setup(model, dtype, image_size, engine, data, engine.init_state(ds.image_shape))


def with_conv_impl(engine: Engine, conv_impl: str, mesh=None) -> Engine:
    """`engine` with its convolutions implemented as `conv_impl` (same model, same weights), on
    `mesh` (default: the engine's)."""
    config = engine.config.copy_and_resolve_references()
    config.model.conv_impl = conv_impl
    return create_engine(config, engine.crop_padding, engine.model.num_classes,
                         mesh=mesh or engine.mesh)


def split_formulation(formulation: str) -> tuple[str, str]:
    """"vmap+im2col" -> ("vmap", "im2col"); a bare seeds_mode keeps nn.Conv ("xla")."""
    mode, plus, conv_impl = formulation.partition("+")
    return mode, conv_impl if plus else "xla"  # "vmap+" stays invalid


def ours(s: Setup, per_call: int, conv_impl: str = "xla") -> Runner:
    """The loop's call (feeds.DeviceFeed): train_chunk with the host-kept epoch orders."""
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
    schedule = optax.piecewise_constant_schedule(cfg.optim.lr, {32_000: 0.1, 48_000: 0.1})
    tx = optax.chain(optax.add_decayed_weights(cfg.optim.weight_decay),
                     optax.sgd(schedule, momentum=cfg.optim.momentum))
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
    formulations = [x.strip() for x in text.split(",") if x.strip()]
    errors = []
    for f in formulations:
        mode, conv_impl = split_formulation(f)
        if mode not in SEEDS_MODES or conv_impl not in CONV_IMPLS:
            errors.append(f"unknown seeds formulation {f!r} (expected MODE or MODE+im2col, MODE in "
                          f"{', '.join(SEEDS_MODES)})")
    return formulations, errors
