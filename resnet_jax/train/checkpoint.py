"""Orbax checkpoints under `<workdir>/checkpoints/<step>`: everything an exact resume needs.

Each checkpoint holds two items:
- `state`: the whole TrainState (step, params, batch_stats, optimizer state with its injected lr,
  warm-up flag and training-error EMA), restored straight into the target shardings;
- `meta`: JSON with the run identity (model, dataset, seed, batch size, ...) and the per-step
  metrics of the steps not yet written to metrics.jsonl, so a resumed run writes the same records.

There is no PRNG or data-iterator state to save: every key is `fold_in(key(seed), purpose)` folded
with the step, and the batch order is a permutation keyed by (seed, epoch), so (seed, step) fixes
them (see engine.py). That is why the meta's seed and batch size must match on resume.
"""

from __future__ import annotations

import os
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from resnet_jax.models import layout
from resnet_jax.train.engine import TrainState

STATE, META = "state", "meta"
# Settings that fix the trajectory: resuming under different ones could not continue the same run.
IDENTITY_FIELDS = ("model", "shortcut", "dataset", "seed", "batch_size", "bn_group_size", "num_seeds")
IDENTITY_DEFAULTS = {"num_seeds": 1}  # what a config or checkpoint without the field means


class CheckpointError(RuntimeError):
    """No usable checkpoint, or one from a different run."""


def manager(workdir: str, keep: int = 2) -> ocp.CheckpointManager:
    """Async saving, the newest `keep` checkpoints kept; leftovers of interrupted saves removed."""
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=True,
                                           cleanup_tmp_directories=True)
    return ocp.CheckpointManager(checkpoint_dir(workdir), item_names=(STATE, META), options=options)


def checkpoint_dir(workdir: str) -> str:
    return os.path.abspath(os.path.join(workdir, "checkpoints"))


def step_dir(mngr: ocp.CheckpointManager, step: int) -> str:
    return os.path.join(str(mngr.directory), str(step))


def save(mngr: ocp.CheckpointManager, step: int, state: TrainState, meta: dict,
         force: bool = False) -> bool:
    return mngr.save(step, args=ocp.args.Composite(**{
        STATE: ocp.args.StandardSave(state), META: ocp.args.JsonSave(meta)}), force=force)


def restore_latest(mngr: ocp.CheckpointManager, target: TrainState) -> TrainState | None:
    """The state of the newest readable checkpoint (read-only use: evaluation), or None."""
    restored = restore_for_resume(mngr, target, identity={}, quarantine=False)
    return None if restored is None else restored[0]


def restore_for_resume(mngr: ocp.CheckpointManager, target: TrainState, identity: dict,
                       quarantine: bool = True) -> tuple[TrainState, dict] | None:
    """The newest readable checkpoint as (state, meta), restored into `target`'s shardings (arrays
    or ShapeDtypeStructs), or None if there is none. Unreadable ones newer than it are reported and
    (with `quarantine`) moved to `<workdir>/corrupt_checkpoints/`, so the resumed run can save those
    steps again. Raises CheckpointError if it belongs to a run with a different `identity`."""
    bad = []
    mngr.reload()
    for step in sorted(mngr.all_steps(), reverse=True):
        try:
            meta = mngr.restore(step, args=ocp.args.Composite(**{META: ocp.args.JsonRestore()}))[META]
        except Exception as e:  # noqa: BLE001 (any failure to read is corruption here)
            bad.append(_report_corrupt(mngr, step, e))
            continue
        _check_identity(meta, identity, step_dir(mngr, step))
        try:
            state = _restore_state(mngr, step, target)
        except Exception as e:  # noqa: BLE001
            bad.append(_report_corrupt(mngr, step, e))
            continue
        if bad:
            if quarantine:
                _quarantine(mngr, bad)
            logging.warning("using the checkpoint at step %d instead", step)
        return state, meta
    if bad:
        raise CheckpointError(f"no readable checkpoint in {mngr.directory} (steps "
                              f"{', '.join(map(str, bad))} are corrupt); move them away to start over")
    return None


def _restore_state(mngr: ocp.CheckpointManager, step: int, target: TrainState) -> TrainState:
    """The state saved at `step`, in `target`'s structure. One saved in the other parameter layout
    (per block: written before blocks were scanned, or with scan_blocks=False; models/layout.py)
    is restored in its own layout and converted, so such run folders resume and evaluate."""
    saved = layout.layout_of(ocp.StandardCheckpointHandler().metadata(
        epath.Path(step_dir(mngr, step)) / STATE).tree)
    wanted = layout.layout_of(target)
    if saved is None or wanted is None or saved == wanted:
        return mngr.restore(step, args=ocp.args.Composite(**{
            STATE: ocp.args.StandardRestore(target)}))[STATE]
    axis = np.ndim(target.step)  # leaves lead with a seed axis in multi-seed states
    state = mngr.restore(step, args=ocp.args.Composite(**{
        STATE: ocp.args.StandardRestore(layout.convert(target, saved, axis))}))[STATE]
    logging.info("converted the %s checkpoint of step %d to the %s layout", saved, step, wanted)
    return jax.tree.map(lambda x, t: jax.device_put(x, t.sharding),
                        layout.convert(state, wanted, axis), target)


def _report_corrupt(mngr: ocp.CheckpointManager, step: int, error: Exception) -> int:
    reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
    logging.warning("checkpoint %s is unreadable (%s: %s)", step_dir(mngr, step),
                    type(error).__name__, reason)
    return step


def _quarantine(mngr: ocp.CheckpointManager, steps: list[int]) -> None:
    aside = os.path.join(os.path.dirname(str(mngr.directory)), "corrupt_checkpoints")
    if jax.process_index() == 0:
        os.makedirs(aside, exist_ok=True)
        for step in steps:
            dest = os.path.join(aside, str(step))
            shutil.rmtree(dest, ignore_errors=True)
            os.replace(step_dir(mngr, step), dest)
            logging.warning("moved the corrupt checkpoint of step %d to %s", step, dest)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("resnet_jax: corrupt checkpoints moved")
    mngr.reload()


def _check_identity(meta: dict, identity: dict, where: str) -> None:
    for field in IDENTITY_FIELDS:
        saved = meta.get(field, IDENTITY_DEFAULTS.get(field))
        if field in identity and saved != identity[field]:
            raise CheckpointError(f"{where} is from a run with {field}={saved!r}, not "
                                  f"{identity[field]!r}: use a new workdir, or the same settings to resume")


def pending_metrics(meta: dict) -> list[dict]:
    """The saved per-step metrics (float32, as computed on device) of the not-yet-logged steps."""
    return [{k: np.asarray(v, np.float32) for k, v in m.items()} for m in meta.get("pending", [])]
