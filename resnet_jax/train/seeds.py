"""Several independent seeds trained in one program: one stacked TrainState, leading axis = seed.

Each seed has its own init, data order and augmentation (all functions of the traced `state.seed`),
so seed i of a multi-seed run is the run trained with `--config.seed=i` alone. Formulations
(`config.seeds_mode`), to be chosen by measurement on the accelerator:

- "loop": the N models' steps unrolled one after another in one program. Every conv keeps its
  single-model shape; the gain is N steps per dispatch (and whatever overlap XLA finds).
- "vmap": jax.vmap over the seed axis. Convolutions with per-seed kernels become grouped
  convolutions (feature_group_count = N), which some backends run slower than N plain ones.
- "devices": the vmap program with the seed axis sharded over a `seed` mesh axis (N seeds over
  N devices, or N/D per device): every device runs its own seeds' grouped (for one seed per device:
  plain) convs, with no communication between seeds.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from resnet_jax.train.engine import DATA_AXIS, DeviceData, Engine, TrainState

SEED_AXIS = "seed"
SEEDS_MODES = ("loop", "vmap", "devices")


def seeds_mesh(num_seeds: int, mode: str, devices=None) -> Mesh:
    """2-D (seed, data) mesh. "devices" puts gcd(N, D) device groups on the seed axis; the other
    modes keep every device on the data axis (seed axis of size 1)."""
    devices = np.asarray(devices if devices is not None else jax.devices()).reshape(-1)
    seed_groups = math.gcd(num_seeds, len(devices)) if mode == "devices" else 1
    return Mesh(devices.reshape(seed_groups, -1), (SEED_AXIS, DATA_AXIS))


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
        return NamedSharding(self.mesh, P(SEED_AXIS if self.mode == "devices" else None))

    def _map(self, fn, state, *args):
        """fn(engine, state_i, *args) for every seed i, stacked on a leading axis."""
        if self.mode == "vmap":
            return jax.vmap(functools.partial(fn, self.engine),
                            in_axes=(0,) + (None,) * len(args))(state, *args)

        def unrolled(engine, state, *args):
            return _stack([fn(engine, _index(state, i), *args) for i in range(jax.tree.leaves(state)[0].shape[0])])

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

    def unstack(self, state: TrainState) -> list[TrainState]:
        return [_index(state, i) for i in range(self.num_seeds)]

    # ---- compiled entry points ------------------------------------------------------------------
    @functools.partial(jax.jit, static_argnums=(0, 3), donate_argnums=1)
    def train_chunk(self, state: TrainState, data: DeviceData, num_steps: int):
        """`num_steps` steps of every seed; metrics come back as [num_seeds, num_steps] arrays."""

        def one_seed(engine, s, data, orders=None):
            return engine.train_step(s, *engine.training_batch(s.seed, s.step, data, orders))

        if num_steps == 1:  # no loop on CPU (see Engine.train_chunk)
            state, metrics = self._map(one_seed, state, data)
            return state, jax.tree.map(lambda m: m[:, None], metrics)
        # Each seed's epoch orders, shuffled once per chunk (see Engine.chunk_orders).
        orders = self._map(lambda engine, s, data: engine.chunk_orders(
            s.seed, s.step, num_steps, data.train_images.shape[0]), state, data)

        def body(state, _):
            return self._map(lambda engine, so, data: one_seed(engine, so[0], data, so[1]),
                             (state, orders), data)

        state, metrics = jax.lax.scan(body, state, None, length=num_steps)
        return state, jax.tree.map(lambda m: m.T, metrics)

    @functools.partial(jax.jit, static_argnums=0)
    def evaluate(self, state: TrainState, data: DeviceData):
        """Per-seed test error and loss, [num_seeds] arrays."""
        return self._map(lambda engine, s, d: engine.evaluate(s, d), state, data)

    def __hash__(self):  # jit's static self: identity semantics
        return id(self)

    def __eq__(self, other):
        return self is other
