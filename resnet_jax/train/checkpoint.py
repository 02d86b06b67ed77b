"""Orbax checkpoints of the full TrainState under `<workdir>/checkpoints/<step>`."""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp

from resnet_jax.train.engine import TrainState


def manager(workdir: str, keep: int = 2, every: int | None = None) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=True)
    return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints")),
                                 options=options)


def save(mngr: ocp.CheckpointManager, state: TrainState, force: bool = False) -> bool:
    return mngr.save(int(jax.device_get(state.step)), args=ocp.args.StandardSave(state), force=force)


def restore_latest(mngr: ocp.CheckpointManager, target: TrainState) -> TrainState | None:
    """Restore the newest checkpoint into `target`'s structure and shardings, or None if there is none."""
    step = mngr.latest_step()
    if step is None:
        return None
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    return mngr.restore(step, args=ocp.args.StandardRestore(abstract))
