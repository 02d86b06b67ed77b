"""Orbax checkpoints under `<workdir>/checkpoints/<step>`: everything an exact resume needs.

Each checkpoint holds two items:
- `state`: the whole TrainState (step, params, batch_stats, optimizer state with its injected lr,
  warm-up flag and training-error EMA), restored straight into the target shardings;
- `meta`: JSON with the run identity (model, dataset, seed, batch size, ...) and the per-step
  metrics of the steps not yet written to metrics.jsonl, so a resumed run writes the same records.

Integrity: orbax writes a checkpoint into a temporary folder and renames it when complete, so a
killed save leaves no half checkpoint (its temporary folder is removed when the next run starts).
Damage after that (truncated or overwritten files) is caught by `MANIFEST`, the SHA-256 of every
file, written by `Saver` once orbax has finalized the checkpoint and checked before each restore; a
damaged checkpoint is reported in one line and the previous one is used. A checkpoint is finished
only once its manifest is written: one without a manifest whose meta says it was written by a
release that seals checkpoints (`SEALED`), or that has a sealed checkpoint before it, was cut off
between orbax's rename and the manifest and is not trusted (skipped like a damaged one). Only run
folders of earlier releases, none of whose checkpoints has a manifest, are accepted as they are.

There is no PRNG or data-iterator state to save: every key is `fold_in(key(seed), purpose)` folded
with the step, and the batch order is a permutation keyed by (seed, epoch), so (seed, step) fixes
them (see engine.py). That is why the meta's seed and batch size must match on resume.

One module because writing, sealing, verifying and restoring are one protocol: the manifest's and
the sealed meta's rules are read by the same code that writes them.
"""

from __future__ import annotations

import hashlib
import os
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from resnet_jax import configs, runs
from resnet_jax.configs import FAST_HINT, IDENTITY_FIELDS, LEGACY_DEFAULTS
from resnet_jax.data import HOST_FED
from resnet_jax.models import layout
from resnet_jax.runs import RunIOError, os_cause
from resnet_jax.train import orbax_quiet
from resnet_jax.train.engine import TrainState

STATE, META = "state", "meta"
MANIFEST = "sha256_manifest.json"  # in each step folder, beside orbax's items
SEALED = "sealed"  # the meta's mark: this checkpoint is finished only once its manifest is written
UNFINISHED = "its save did not finish: it has no checksum manifest"
TMP_SUFFIX = ".orbax-checkpoint-tmp"  # orbax's name for a checkpoint still being written
# What to check when a resume stops on a field the user may not have set themselves.
IDENTITY_HINTS = {"image_backend": f" (set image_backend to the run's: fast needs simplejpeg and "
                                   f"OpenCV, {FAST_HINT}; auto is fast only where they import)"}


def run_identity(config) -> dict:
    """The identity a run's checkpoints carry and a resume must match: the settings that fix the
    trajectory (the schema's `identity` fields, by their flat names as every release wrote them);
    image_backend (the pixels each augmented crop gets) only where it is read: host-fed datasets."""
    fields = [f for f in IDENTITY_FIELDS if f != "image_backend" or config.data.name in HOST_FED]
    return {field: configs.get(config, field) for field in fields}


class CheckpointError(RuntimeError):
    """No usable checkpoint, or one from a different run."""


class CheckpointWriteError(RunIOError):
    """A save failed (disk full, I/O error, permissions); names the cause and the last good one."""


def manager(workdir: str, keep: int = 2, read_only: bool = False) -> ocp.CheckpointManager:
    """Async saving, the newest `keep` checkpoints kept; leftovers of interrupted saves removed
    first. `read_only` (evaluation, analysis) writes and removes nothing, so it may read the
    workdir of a run in progress."""
    if read_only:
        # (not orbax's read_only option, which warns on every use; this manager is never saved to)
        options = ocp.CheckpointManagerOptions(create=False, cleanup_tmp_directories=False,
                                               enable_async_checkpointing=False)
    else:
        # Removed here, before anything else, rather than by orbax's option of the same purpose,
        # whose background thread can outlive a short command and fail at interpreter exit.
        _remove_unfinished(runs.checkpoint_dir(workdir))
        # Folders made by the saving thread itself: made by orbax's background threads instead, a
        # folder that cannot be made (read-only, permissions) leaves those threads waiting on it
        # for orbax's coordination timeout, and the process cannot exit before they give up.
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=True,
            async_options=ocp.AsyncOptions(create_directories_asynchronously=False))
    return ocp.CheckpointManager(runs.checkpoint_dir(workdir), item_names=(STATE, META), options=options)


def _remove_unfinished(directory: str, step: int | None = None, sync: bool = True) -> None:
    """Remove the temporary folders of saves that never completed (all, or `step`'s)."""
    if jax.process_index() == 0 and os.path.isdir(directory):
        for name in os.listdir(directory):
            if TMP_SUFFIX in name and (step is None or name.split(".")[0] == str(step)):
                shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
    if sync and jax.process_count() > 1:
        multihost_utils.sync_global_devices("resnet_jax: unfinished checkpoints removed")


def step_dir(mngr: ocp.CheckpointManager, step: int) -> str:
    return os.path.join(str(mngr.directory), str(step))


def save(mngr: ocp.CheckpointManager, step: int, state: TrainState, meta: dict,
         force: bool = False) -> bool:
    return mngr.save(step, args=ocp.args.Composite(**{
        STATE: ocp.args.StandardSave(state), META: ocp.args.JsonSave({**meta, SEALED: True})}),
        force=force)


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
    bad: dict[int, str] = {}  # step -> why it cannot be used
    intact: list[int] = []  # steps whose files match their manifest but did not restore
    mngr.reload()
    steps = sorted(mngr.all_steps())
    sealed = [_has_manifest(step_dir(mngr, step)) for step in steps]
    for i in reversed(range(len(steps))):
        step = steps[i]
        if problem := verify_manifest(step_dir(mngr, step)):
            bad[step] = problem
            continue
        try:
            with orbax_quiet.quiet():
                meta = mngr.restore(step, args=ocp.args.Composite(**{
                    META: ocp.args.JsonRestore()}))[META]
        except Exception as e:  # noqa: BLE001 (any failure to read is corruption here)
            bad[step] = _reason(e)
            continue
        if not sealed[i] and (meta.get(SEALED) or any(sealed[:i])):
            bad[step] = UNFINISHED
            continue
        _check_identity(meta, identity, step_dir(mngr, step))
        try:
            with orbax_quiet.quiet():
                state = _restore_state(mngr, step, target)
        except Exception as e:  # noqa: BLE001
            bad[step] = _reason(e)
            intact += [step] if sealed[i] else []
            continue
        _report_damaged(mngr, bad, step, quarantine)
        return state, meta
    if bad and all(reason == UNFINISHED for reason in bad.values()):  # killed in its first save
        _report_damaged(mngr, bad, None, quarantine)
        return None
    if intact:  # not damage: another model's or layout's state, or the wrong folder
        raise CheckpointError(f"the checkpoint of step {intact[0]} in {mngr.directory} matches its "
                              f"checksums but does not restore as this run's state ({bad[intact[0]]}): "
                              "is it the folder of this run?")
    if bad:
        raise CheckpointError(f"no readable checkpoint in {mngr.directory} (damaged: step"
                              f"{'s' if len(bad) > 1 else ''} {', '.join(map(str, bad))}); move "
                              "them away to start over")
    return None


def saved_shapes(mngr: ocp.CheckpointManager, step: int) -> dict:
    """The shapes of the state saved at `step` ({field: nested dicts of shape tuples}), read from
    its metadata without restoring it (e.g. a saved net's class count)."""
    tree = ocp.StandardCheckpointHandler().metadata(epath.Path(step_dir(mngr, step)) / STATE).tree
    return jax.tree.map(lambda m: tuple(m.shape), dict(tree) if not isinstance(tree, dict) else tree,
                        is_leaf=lambda m: hasattr(m, "shape"))


def _reason(error: Exception) -> str:
    text = orbax_quiet.gist(error, limit=200)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


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


def _report_damaged(mngr: ocp.CheckpointManager, bad: dict[int, str], good: int | None,
                    quarantine: bool) -> None:
    """One line per damaged checkpoint; with `quarantine`, each moved to
    `<workdir>/corrupt_checkpoints/` so the resumed run can save that step again."""
    aside = runs.corrupt_checkpoint_dir(os.path.dirname(str(mngr.directory)))
    for step, reason in bad.items():
        if quarantine and jax.process_index() == 0:
            os.makedirs(aside, exist_ok=True)
            dest = os.path.join(aside, str(step))
            shutil.rmtree(dest, ignore_errors=True)
            os.replace(step_dir(mngr, step), dest)
        logging.warning("checkpoint %s is unreadable (%s)%s; %s", step_dir(mngr, step), reason,
                        f", moved to {os.path.join(aside, str(step))}" if quarantine else "",
                        "starting over" if good is None else f"using the checkpoint of step {good} instead")
    if bad and quarantine:
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("resnet_jax: corrupt checkpoints moved")
        mngr.reload()


def write_manifest(directory: str) -> None:
    """Record the SHA-256 of every file under a finalized checkpoint's folder (atomically)."""
    files = {}
    for root, _, names in os.walk(directory):
        for name in sorted(names):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, directory)
            if rel != MANIFEST and not rel.startswith(MANIFEST):
                files[rel] = _sha256(path)
    runs.write_json(os.path.join(directory, MANIFEST), {"sha256": dict(sorted(files.items()))})


def verify_manifest(directory: str) -> str | None:
    """Why the checkpoint in `directory` differs from its manifest, or None if it matches or has
    no manifest (whether it needs one is `restore_for_resume`'s to say)."""
    try:
        files = runs.read_json(os.path.join(directory, MANIFEST))["sha256"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"its checksum manifest is unreadable: {e}"
    for rel, digest in sorted(files.items()):
        try:
            actual = _sha256(os.path.join(directory, rel))
        except OSError as e:
            return f"{rel}: {e.strerror}"
        if actual != digest:
            return f"{rel} does not match its SHA-256 checksum"
    return None


def _has_manifest(directory: str) -> bool:
    return os.path.exists(os.path.join(directory, MANIFEST))


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class Saver:
    """One run's checkpoint writes: orbax's asynchronous saves, each sealed with its manifest once
    orbax has finalized it. A save that failed in the background (disk full, I/O error,
    permissions) is raised as CheckpointWriteError at the next `save`/`poll`/`finish`, naming the
    cause and the last good checkpoint; the failed save's temporary folder is removed."""

    def __init__(self, mngr: ocp.CheckpointManager):
        self.mngr = mngr
        self.last_good = mngr.latest_step()  # (restored or None)
        self._unsealed: list[int] = []
        self._closed = False
        orbax_quiet.quiet_logs(True)  # a failed save is reported by us, in one line
        orbax_quiet.silence_aborted_io()  # (its abandoned writes may finish before we learn it failed)

    def __enter__(self) -> Saver:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finish()
            return
        self.close()
        if isinstance(exc, RunIOError) and not isinstance(exc, CheckpointWriteError):
            # Another write of the run failed (metrics.jsonl): name what a rerun resumes from.
            raise RunIOError(f"{exc}; {self.rerun()}") from None

    def save(self, step: int, state: TrainState, meta: dict) -> None:
        self._settle()  # orbax would wait for the previous save here anyway
        try:
            save(self.mngr, step, state, meta, force=True)
        except Exception as e:  # noqa: BLE001 (the synchronous part of a save can fail too)
            raise self._failed(step, e) from None
        self._unsealed.append(step)

    def poll(self) -> None:
        """Raise a failed save's error if that save is over; never waits for one in progress."""
        if self._unsealed and not self.mngr.is_saving_in_progress():
            self._settle()

    def finish(self) -> None:
        """Wait for the last save, seal it, and release orbax's threads."""
        self._settle()
        self.close()

    def close(self) -> None:
        """Release orbax's threads, without raising (also on error paths)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.mngr.close()
        except Exception:  # noqa: BLE001 (a failed save already reported, or being reported)
            # (no sync: the other processes may not have seen this failure)
            _remove_unfinished(str(self.mngr.directory), sync=False)
        orbax_quiet.quiet_logs(False)

    def where(self) -> str:
        """'last good checkpoint: step S (path)', or that there is none."""
        if self.last_good is None:
            return "no checkpoint was saved"
        return f"last good checkpoint: step {self.last_good} ({step_dir(self.mngr, self.last_good)})"

    def rerun(self) -> str:
        """What to do after a failed write: where() and what a rerun does."""
        return (f"{self.where()}; rerun the same command once the cause is fixed"
                + (" (it starts over)" if self.last_good is None else " to resume from it"))

    def _settle(self) -> None:
        if not self._unsealed:
            return
        try:
            self.mngr.wait_until_finished()
        except Exception as e:  # noqa: BLE001 (orbax re-raises the background thread's error)
            raise self._failed(self._unsealed[-1], e) from None
        for step in self._unsealed:
            directory = step_dir(self.mngr, step)
            if not os.path.isdir(directory):  # orbax logged the failure and skipped finalizing
                raise self._failed(step, None)
            if jax.process_index() == 0:
                try:
                    write_manifest(directory)
                except (OSError, RunIOError) as e:
                    raise self._failed(step, e) from None
            self.last_good = step
        self._unsealed = []

    def _failed(self, step: int, error: Exception | None) -> CheckpointWriteError:
        self._unsealed = []
        orbax_quiet.quiet_logs(True)  # for good: the abandoned writes' futures are collected any time
        self.close()
        _remove_unfinished(str(self.mngr.directory), step, sync=False)
        return CheckpointWriteError(f"the checkpoint of step {step} could not be written "
                                    f"({os_cause(error)}); {self.rerun()}")


def _check_identity(meta: dict, identity: dict, where: str) -> None:
    for field in IDENTITY_FIELDS:
        saved = meta.get(field, LEGACY_DEFAULTS.get(field))  # a field older checkpoints lack
        if field in identity and saved != identity[field]:
            raise CheckpointError(f"{where} is from a run with {field}={saved!r}, not "
                                  f"{identity[field]!r}: use a new workdir, or the same settings to "
                                  f"resume{IDENTITY_HINTS.get(field, '')}")


def pending_metrics(meta: dict) -> list[dict]:
    """The saved per-step metrics (float32, as computed on device) of the not-yet-logged steps."""
    return [{k: np.asarray(v, np.float32) for k, v in m.items()} for m in meta.get("pending", [])]
