"""Several independent seeds trained in one program: one stacked TrainState, leading axis = seed.

Each seed has its own init, data order and augmentation (all functions of the traced `state.seed`),
so seed i of a multi-seed run is the run trained with `--config.seed=i` alone. Formulations
(`config.run.seeds_mode`), to be chosen by measurement on the accelerator:

- "loop": the N models' steps unrolled one after another in one program. Every conv keeps its
  single-model shape; the gain is N steps per dispatch (and whatever overlap XLA finds).
- "vmap": jax.vmap over the seed axis. Convolutions with per-seed kernels become grouped
  convolutions (feature_group_count = N), which some backends run slower than N plain ones; with
  `conv_impl="im2col"` (models/layers.PatchConv) they become one batched matmul per layer instead.
- "devices": the seed axis sharded over a `seed` mesh axis (shard_map; N seeds over N devices, or
  N/D per device): every device group runs its own seeds' steps unrolled, with no communication
  between seeds.

`SeedsFeed` gives the training loop (loop.py) the same `train_chunk`/`evaluate` interface as a
single run's feed; metrics and evaluations gain a leading seed axis.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from resnet_jax.configs import SEEDS_MODES, seed_groups
from resnet_jax.train.distributed import fetch
from resnet_jax.train.engine import DATA_AXIS, DeviceData, Engine, EpochOrders, TrainState, run_steps

SEED_AXIS = "seed"


def seeds_mesh(num_seeds: int, mode: str, devices=None) -> Mesh:
    """2-D (seed, data) mesh: `seed_groups` groups on the seed axis, the rest of the devices on the
    data axis (all of them outside mode "devices")."""
    devices = np.asarray(devices if devices is not None else jax.devices()).reshape(-1)
    return Mesh(devices.reshape(seed_groups(num_seeds, mode, len(devices)), -1),
                (SEED_AXIS, DATA_AXIS))


def _index(tree, i: int):
    return jax.tree.map(lambda x: x[i], tree)


def _stack(trees):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


class _ShardMapEngine(Engine):
    """The engine as traced inside shard_map over the seed axis: its sharding constraints name mesh
    axes by PartitionSpec alone, resolved against shard_map's mesh (where `seed` is manual)."""

    @property
    def replicated(self) -> P:
        return P()

    @property
    def batch_sharding(self) -> P:
        return P(DATA_AXIS)


@dataclasses.dataclass(frozen=True)
class SeedsEngine:
    """N copies of `engine`'s training, one per seed, in one compiled program per entry point."""

    engine: Engine  # single-seed engine; its mesh is the (seed, data) mesh of `seeds_mesh`
    seeds: tuple[int, ...]
    mode: str

    def __post_init__(self):
        if self.mode not in SEEDS_MODES:
            raise ValueError(f"unknown seeds_mode {self.mode!r}: expected one of {SEEDS_MODES}")

    @property
    def num_seeds(self) -> int:
        return len(self.seeds)

    @property
    def mesh(self) -> Mesh:
        return self.engine.mesh

    @property
    def state_sharding(self) -> NamedSharding:
        # P() rather than the equivalent P(None): jit keys its cache on the spec as written, and
        # the step's outputs come back as P(), so P(None) inputs would compile the step twice.
        return NamedSharding(self.mesh, P(SEED_AXIS) if self.mode == "devices" else P())

    def _map(self, fn, state, *args):
        """fn(engine, state_i, *args) for every seed i, stacked on a leading axis."""
        if self.mode == "vmap":
            return jax.vmap(functools.partial(fn, self.engine),
                            in_axes=(0,) + (None,) * len(args))(state, *args)

        def unrolled(engine, state, *args):
            num_seeds = jax.tree.leaves(state)[0].shape[0]
            return _stack([fn(engine, _index(state, i), *args) for i in range(num_seeds)])

        if self.mode == "loop":
            return unrolled(self.engine, state, *args)
        # "devices": each group of devices on the seed axis runs its own seeds, unrolled. (A vmap
        # sharded over the seed axis is not enough: XLA all-gathers the grouped convs.)
        inside = _ShardMapEngine(**{f.name: getattr(self.engine, f.name)
                                    for f in dataclasses.fields(self.engine)})
        return jax.shard_map(functools.partial(unrolled, inside), mesh=self.mesh,
                             in_specs=(P(SEED_AXIS),) + (P(),) * len(args), out_specs=P(SEED_AXIS),
                             axis_names={SEED_AXIS},
                             check_vma=False)(state, *args)  # the engine's scans start from constants

    # ---- state ----------------------------------------------------------------------------------
    def init_state(self, image_shape) -> TrainState:
        """Each seed's state exactly as a single-seed run initializes it, stacked (one compile)."""
        states = [self.engine.init_state(image_shape, seed) for seed in self.seeds]
        return jax.device_put(_stack(states), self.state_sharding)

    def abstract_state(self, image_shape) -> TrainState:
        """The stacked state's shapes and shardings, without computing it (checkpoint target)."""
        one = self.engine.abstract_state(image_shape)
        return jax.tree.map(lambda s: jax.ShapeDtypeStruct((self.num_seeds, *s.shape), s.dtype,
                                                           sharding=self.state_sharding), one)

    def unstack(self, state: TrainState) -> list[TrainState]:
        return [_index(state, i) for i in range(self.num_seeds)]

    # ---- compiled entry points ------------------------------------------------------------------
    @functools.partial(jax.jit, static_argnums=(0, 3), donate_argnums=1)
    def train_chunk(self, state: TrainState, data: DeviceData, num_steps: int, orders=None):
        """`num_steps` steps of every seed; metrics come back as [num_seeds, num_steps] arrays.
        `orders`: every seed's (epoch orders, first epoch) stacked, from SeedsFeed; else shuffled here."""
        verify = orders is not None
        if orders is None and num_steps > 1:  # each seed's epochs, shuffled once per chunk
            orders = self._map(lambda engine, s, data: engine.chunk_orders(
                s.seed, s.step, num_steps, data.train_images.shape[0]), state, data)

        def one_step(engine, state_and_orders, data):
            s, o = state_and_orders
            return engine.train_step(s, *engine.training_batch(s.seed, s.step, data, o, verify))

        def body(state, _):
            return self._map(one_step, (state, orders), data)

        state, metrics = run_steps(body, state, None, num_steps)  # metrics: [num_steps, num_seeds]
        return self._keep_sharding(state), jax.tree.map(lambda m: m.T, metrics)

    def _keep_sharding(self, state: TrainState) -> TrainState:
        """The state leaves a step as it came in, so the next call hits the same compiled program."""
        return jax.lax.with_sharding_constraint(state, self.state_sharding)

    @functools.partial(jax.jit, static_argnums=0)
    def evaluate(self, state: TrainState, data: DeviceData):
        """Per-seed test error and loss, [num_seeds] arrays."""
        return self._map(lambda engine, s, d: engine.evaluate(s, d), state, data)

    def __hash__(self):  # jit's static self: identity semantics
        return id(self)

    def __eq__(self, other):
        return self is other


@dataclasses.dataclass
class SeedsFeed:
    """feeds.DeviceFeed for several seeds, a `feeds.Feed`: `train_chunk(state, n)` / `evaluate(state)`
    with every seed's epoch orders cached on the host (all seeds cross epochs at the same steps)."""

    multi: SeedsEngine
    data: DeviceData
    orders: list[EpochOrders] | None = None
    _cached: tuple = ()  # (the seeds' host-cached order arrays, their stack on the mesh)

    def train_chunk(self, state: TrainState, num_steps: int):
        engine = self.multi.engine
        if self.orders is None:
            span = max(num_steps, engine.config.run.steps_per_call)
            step = np.ravel(fetch(state.step))[0]  # every seed is at the same step
            self.orders = [EpochOrders(engine, seed, step, self.data.train_images.shape[0], span)
                           for seed in self.multi.seeds]
        chunks = [o.next_chunk(num_steps) for o in self.orders]
        arrays = [c[0] for c in chunks]
        if not self._cached or any(a is not b for a, b in zip(arrays, self._cached[0])):
            # Through the host: with seeds over several processes, each holds only its seeds' rows.
            stacked = np.stack(jax.device_get(arrays))
            self._cached = (arrays, jax.make_array_from_callback(
                stacked.shape, self.multi.state_sharding, lambda index: stacked[index]))
        firsts = np.asarray([c[1] for c in chunks], np.int32)
        return self.multi.train_chunk(state, self.data, num_steps, (self._cached[1], firsts))

    def evaluate(self, state: TrainState) -> dict:
        return self.multi.evaluate(state, self.data)
