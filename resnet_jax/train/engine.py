"""Pure training/evaluation steps, jit-compiled over a device mesh with a data axis.

The whole dataset lives on the devices (replicated); each step gathers its batch by index, augments
it on device and splits it over the `data` axis, so a scanned chunk of steps runs with no host
round trip. Batch order and augmentation are pure functions of (seed, step): resuming from a
checkpoint replays exactly the same data.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from resnet_jax import configs
from resnet_jax.configs import MOMENTUM_FORMS
from resnet_jax.data.augment import normalize, pad_crop_flip, random_scale_rotate
from resnet_jax.data.base import ArrayDataset
from resnet_jax.train import schedule as sched

DATA_AXIS = "data"


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    seed: jax.Array  # int32; every random choice derives from (seed, purpose, step)
    params: Any
    batch_stats: Any
    opt_state: Any
    warmup_done: jax.Array  # bool: the warm-up lr phase is over (always True without warm-up)
    train_error_ema: jax.Array  # running training error that ends the warm-up


@flax.struct.dataclass
class DeviceData:
    """A dataset resident on the devices; eval arrays padded to whole eval batches (mask=0)."""

    train_images: jax.Array
    train_labels: jax.Array
    eval_images: jax.Array
    eval_labels: jax.Array
    eval_mask: jax.Array
    pixel_mean: jax.Array


def make_mesh(devices=None) -> Mesh:
    devices = np.asarray(devices if devices is not None else jax.devices())
    return Mesh(devices.reshape(-1), (DATA_AXIS,))


def replicate_from_host(x: np.ndarray, mesh: Mesh) -> jax.Array:
    """Same host value on every device of every process (works multi-host, unlike device_put)."""
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, NamedSharding(mesh, P()), lambda idx: x[idx])


def put_dataset(ds: ArrayDataset, mesh: Mesh, eval_batch_size: int,
                pixel_mean: np.ndarray | None = None) -> DeviceData:
    """`ds` on the devices, with `pixel_mean` (an imported net's input mean) or the training
    split's as the mean the net's input subtracts."""
    n_eval = len(ds.eval_images)
    padded = -(-n_eval // eval_batch_size) * eval_batch_size
    pad = [(0, padded - n_eval)]
    eval_images = np.pad(ds.eval_images, pad + [(0, 0)] * 3)
    host = DeviceData(ds.train_images, ds.train_labels.astype(np.int32), eval_images,
                      np.pad(ds.eval_labels.astype(np.int32), pad),
                      np.pad(np.ones(n_eval, np.float32), pad),
                      ds.pixel_mean() if pixel_mean is None else pixel_mean)
    return jax.tree.map(lambda x: replicate_from_host(x, mesh), host)


def steps_per_call(config: ml_collections.ConfigDict) -> int:
    """Steps one compiled training call runs. XLA:CPU runs convolutions inside a while loop several
    times slower than straight-line code (docs/speed.md), so on CPU each call runs one step, without
    a loop (`run_steps`); accelerators scan `config.run.steps_per_call` steps per call."""
    return 1 if jax.default_backend() == "cpu" else config.run.steps_per_call


def run_steps(body, state, xs, length: int):
    """`jax.lax.scan(body, state, xs, length=length)`, except that a single step runs without the
    loop (see `steps_per_call`); the outputs are stacked per step either way."""
    if length == 1:
        state, out = body(state, jax.tree.map(lambda x: x[0], xs))
        return state, jax.tree.map(lambda m: m[None], out)
    return jax.lax.scan(body, state, xs, length=length)


@dataclasses.dataclass(frozen=True)
class Engine:
    """The static half of training: model, optimizer, schedule and mesh. Methods are pure."""

    config: ml_collections.ConfigDict
    model: nn.Module
    tx: optax.GradientTransformation
    schedule: optax.Schedule
    mesh: Mesh
    crop_padding: int

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, P())

    @property
    def batch_sharding(self) -> NamedSharding:
        return NamedSharding(self.mesh, P(DATA_AXIS))

    # ---- keys: every random choice is a function of (seed, purpose, step) ------------------------
    @staticmethod
    def key(seed: jax.Array, purpose: int) -> jax.Array:
        # The seed is traced (part of the state), so one compiled step serves every seed.
        return jax.random.fold_in(jax.random.key(seed), purpose)

    # ---- state ----------------------------------------------------------------------------------
    def init_state(self, image_shape, seed: int | None = None) -> TrainState:
        """Fresh state for `seed` (default config.run.seed), replicated over the mesh."""
        seed = self.config.run.seed if seed is None else seed
        # Partitionable threefry makes XLA:CPU compile He init several times slower (docs/speed.md);
        # init is not sharded, so the classic scheme costs nothing.
        with jax.threefry_partitionable(False):
            return self._init(tuple(image_shape), jnp.asarray(seed, jnp.int32))

    @functools.partial(jax.jit, static_argnums=(0, 1))
    def _init(self, image_shape, seed):
        variables = self.model.init(self.key(seed, 0), jnp.zeros((1, *image_shape), jnp.float32),
                                    train=False)
        params = variables["params"]
        state = TrainState(
            step=jnp.zeros((), jnp.int32), seed=seed, params=params,
            batch_stats=variables["batch_stats"], opt_state=self.tx.init(params),
            warmup_done=jnp.asarray(not self.config.optim.warmup),
            train_error_ema=jnp.ones((), jnp.float32))
        return jax.lax.with_sharding_constraint(state, self.replicated)

    def abstract_state(self, image_shape) -> TrainState:
        """Shapes, dtypes and (replicated) shardings of the state, without computing it: the
        target a checkpoint is restored into (no init compile on resume)."""
        shapes = jax.eval_shape(functools.partial(self._init, tuple(image_shape)),
                                jax.ShapeDtypeStruct((), jnp.int32))
        return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=self.replicated),
                            shapes)

    # ---- one SGD step ---------------------------------------------------------------------------
    def train_step(self, state: TrainState, images: jax.Array, labels: jax.Array, lr_scale=1.0):
        """SGD on one normalized batch; returns the new state and (loss, error, lr).

        `lr_scale` multiplies the scheduled lr (the host-decided ImageNet plateau drops)."""
        cfg = self.config

        def loss_fn(params):
            logits, new_vars = self.model.apply(
                {"params": params, "batch_stats": state.batch_stats}, images, train=True,
                mutable=["batch_stats"])
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
            return loss, (logits, new_vars["batch_stats"])

        (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        lr = lr_scale * sched.learning_rate(self.schedule, state.step, state.warmup_done, cfg.optim.warmup_lr)
        opt_state = state.opt_state
        opt_state.hyperparams["learning_rate"] = lr
        updates, opt_state = self.tx.update(grads, opt_state, state.params)
        error = jnp.mean(jnp.argmax(logits, -1) != labels)
        warmup_done, ema = sched.update_warmup(state.warmup_done, state.train_error_ema, error,
                                               cfg.optim.warmup_error_ema, cfg.optim.warmup_until_error)
        new_state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                                  batch_stats=batch_stats, opt_state=opt_state,
                                  warmup_done=warmup_done, train_error_ema=ema)
        return new_state, {"loss": loss, "error": error, "lr": lr}

    # ---- data for one step ----------------------------------------------------------------------
    def epoch_orders(self, seed: jax.Array, first_epoch: jax.Array, count: int,
                     num_examples: int) -> jax.Array:
        """The shuffled example order of epochs first_epoch .. first_epoch+count-1, [count, n]."""
        epochs = first_epoch + jnp.arange(count)
        return jax.vmap(lambda e: jax.random.permutation(jax.random.fold_in(self.key(seed, 1), e),
                                                         num_examples))(epochs)

    def chunk_orders(self, seed: jax.Array, step: jax.Array, num_steps: int, num_examples: int):
        """The orders of every epoch that steps step .. step+num_steps-1 touch, and the first epoch.
        Sorting 50k keys costs more than a ResNet-20 step's data path on a GPU, so a scanned chunk
        shuffles once per epoch it touches instead of once per step (same orders, same batches)."""
        steps_per_epoch = num_examples // self.config.run.batch_size
        count = min(num_steps, (num_steps - 1) // steps_per_epoch + 2)
        first = step // steps_per_epoch
        return self.epoch_orders(seed, first, count, num_examples), first

    def batch_indices(self, seed: jax.Array, step: jax.Array, num_examples: int, orders=None,
                      verify: bool = False) -> jax.Array:
        """Epoch-wise reshuffled order (last partial batch dropped), a pure function of the step.
        `orders`: (epoch orders, first epoch) covering this step (else the epoch is shuffled here);
        `verify`: shuffle here anyway if they do not cover it (orders kept by the host)."""
        b = self.config.run.batch_size
        steps_per_epoch = num_examples // b
        epoch, i = step // steps_per_epoch, step % steps_per_epoch
        shuffle = lambda: self.epoch_orders(seed, epoch, 1, num_examples)[0]  # noqa: E731
        if orders is None:
            perm = shuffle()
        else:
            k, count = epoch - orders[1], orders[0].shape[0]
            cached = lambda: orders[0][jnp.clip(k, 0, count - 1)]  # noqa: E731
            perm = jax.lax.cond((k >= 0) & (k < count), cached, shuffle) if verify else cached()
        return jax.lax.dynamic_slice_in_dim(perm, i * b, b)

    def training_batch(self, seed: jax.Array, step: jax.Array, data: DeviceData, orders=None,
                       verify: bool = False):
        idx = self.batch_indices(seed, step, data.train_images.shape[0], orders, verify)
        idx = jax.lax.with_sharding_constraint(idx, self.batch_sharding)
        # The mean is subtracted before the zero padding, as in the reference implementations:
        # padded pixels are 0, the mean pixel. The gather stays on uint8 (a quarter of the bytes);
        # padding the normalized floats costs a batch-sized pad, nothing next to the net.
        images = normalize(data.train_images[idx], data.pixel_mean, self.model.dtype)
        # Not the paper's: random scaling and rotation (the explainer's recipe) before the crop, from
        # a key of their own, so that off (the default) leaves every other draw and the program as
        # they were. Purposes: 0 init, 1 order, 2 crop and flip, 3 lighting (host-fed), 4 these.
        if options := configs.scale_rotation(self.config):
            images = random_scale_rotate(jax.random.fold_in(self.key(seed, 4), step), images, **options)
        images = pad_crop_flip(jax.random.fold_in(self.key(seed, 2), step), images, self.crop_padding)
        return images, data.train_labels[idx]

    # ---- compiled entry points ------------------------------------------------------------------
    @functools.partial(jax.jit, static_argnums=(0, 3), donate_argnums=1)
    def train_chunk(self, state: TrainState, data: DeviceData, num_steps: int, orders=None):
        """`num_steps` steps in one call (lax.scan); metrics come back stacked per step.
        `orders`: (epoch orders, first epoch) covering the chunk, from EpochOrders; else shuffled here."""
        verify = orders is not None
        if orders is None and num_steps > 1:
            orders = self.chunk_orders(state.seed, state.step, num_steps, data.train_images.shape[0])

        def body(state, _):
            return self.train_step(state, *self.training_batch(state.seed, state.step, data, orders,
                                                               verify))

        return run_steps(body, state, None, num_steps)

    @functools.partial(jax.jit, static_argnums=(0, 3, 4))
    def _epoch_orders(self, seed, first_epoch, count: int, num_examples: int):
        return self.epoch_orders(seed, first_epoch, count, num_examples)

    @functools.partial(jax.jit, static_argnums=0)
    def evaluate(self, state: TrainState, data: DeviceData):
        """Single-view error and loss over the eval split (running BN statistics)."""
        eb = self.config.run.eval_batch_size
        variables = {"params": state.params, "batch_stats": state.batch_stats}

        def body(carry, i):
            sl = lambda a: jax.lax.dynamic_slice_in_dim(a, i * eb, eb)  # noqa: E731
            images = jax.lax.with_sharding_constraint(sl(data.eval_images), self.batch_sharding)
            logits = self.model.apply(variables, normalize(images, data.pixel_mean, self.model.dtype))
            labels, mask = sl(data.eval_labels), sl(data.eval_mask)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
            wrong = (jnp.argmax(logits, -1) != labels).astype(jnp.float32)
            return (carry[0] + jnp.sum(loss * mask), carry[1] + jnp.sum(wrong * mask)), None

        nb = data.eval_images.shape[0] // eb
        (loss, wrong), _ = jax.lax.scan(body, (0.0, 0.0), jnp.arange(nb))
        n = jnp.sum(data.eval_mask)
        return {"test_loss": loss / n, "test_error": wrong / n}

    def __hash__(self):  # jit's static self: identity semantics
        return id(self)

    def __eq__(self, other):
        return self is other


class EpochOrders:
    """Host-side cache of one seed's epoch orders for Engine.train_chunk: shuffling 50k examples
    costs ~10% of a CPU step (one step per call there) and more than a small net's step on a GPU,
    so the loop shuffles once per epoch instead. Tracks the step on the host (given at the start,
    no sync afterwards); the batches are exactly those of per-step shuffling."""

    def __init__(self, engine: Engine, seed: int, step: int, num_examples: int, max_chunk: int):
        self.engine, self.num_examples = engine, num_examples
        self.steps_per_epoch = num_examples // engine.config.run.batch_size
        # A fixed number of epochs (a chunk's span, and one more), so train_chunk compiles once.
        self.count = (max_chunk - 1) // self.steps_per_epoch + 2
        self.seed, self.step = int(seed), int(step)
        self.first, self.orders = None, None

    def next_chunk(self, num_steps: int):
        """(orders, first epoch) covering the next `num_steps` steps; advances the step."""
        first = self.step // self.steps_per_epoch
        last = (self.step + num_steps - 1) // self.steps_per_epoch
        if last - first >= self.count:
            raise ValueError(f"a chunk of {num_steps} steps is longer than EpochOrders' max_chunk")
        if self.first is None or not (self.first <= first and last < self.first + self.count):
            self.first = first
            self.orders = self.engine._epoch_orders(np.int32(self.seed), np.int32(first), self.count,
                                                    self.num_examples)
        self.step += num_steps
        return self.orders, np.int32(self.first)


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """SGD with momentum and L2 weight decay on all parameters; lr injected per step.

    `momentum_form` "caffe" (the paper's models were trained with Caffe's SGD, as the authors'
    released-model notes stress): v := m*v + lr*(g + wd*w); w := w - v. The velocity carries the lr
    it was accumulated with, so after an lr drop, or the warm-up's 0.01 -> 0.1 switch, the step size
    moves to its new value over ~1/(1-m) steps. "optax" (optax.sgd): v := m*v + (g + wd*w);
    w := w - lr*v, where a new lr rescales the whole velocity at once. The two agree while the lr is
    constant. `nesterov` (not the paper's): each form's Nesterov variant, the step taken from
    the velocity after one more momentum step (caffe: w := w - (m*v + lr*g), Caffe's NesterovSolver).
    """
    if config.optim.momentum_form not in MOMENTUM_FORMS:  # configs.validate says so in one line
        raise ValueError(f"unknown momentum_form {config.optim.momentum_form!r}")

    def sgd(learning_rate):
        if config.optim.momentum_form == "caffe":  # scale by -lr, then accumulate: velocity in weight units
            return optax.chain(optax.add_decayed_weights(config.optim.weight_decay),
                               optax.scale_by_learning_rate(learning_rate),
                               optax.trace(decay=config.optim.momentum, nesterov=config.optim.nesterov))
        return optax.chain(optax.add_decayed_weights(config.optim.weight_decay),
                           optax.sgd(learning_rate, momentum=config.optim.momentum,
                                     nesterov=config.optim.nesterov))

    return optax.inject_hyperparams(sgd)(learning_rate=config.optim.lr)


def create_engine(config: ml_collections.ConfigDict, crop_padding: int, num_classes: int,
                  mesh: Mesh | None = None) -> Engine:
    """The engine of `config`'s net on `mesh` (default: every device), "auto" model options
    resolved for the mesh's platform (configs.resolve: a no-op on a run's recorded config)."""
    mesh = mesh or make_mesh()
    config = configs.resolve(config, mesh.devices.flat[0].platform)
    model = configs.build_model(config, num_classes)
    optim = config.optim
    schedule = sched.step_decay(optim.lr, config.run.steps, tuple(optim.lr_boundaries), optim.lr_decay,
                                warmup_steps=optim.warmup_steps, warmup_lr=optim.warmup_lr)
    return Engine(config, model, make_optimizer(config), schedule, mesh, crop_padding)
