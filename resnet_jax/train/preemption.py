"""Stop at a step boundary when the scheduler asks (SIGTERM), so the run can checkpoint and resume.

Single process: our SIGTERM (and SIGINT: Ctrl-C, or scripts/common.sh passing a stop on) handler
sets a flag that the loop reads after each jit call; more signals change nothing (a signal sent to a
process group can arrive more than once), kill -9 stops without saving.
Multi-process: JAX's preemption service (started by `jax.distributed.initialize`) catches the notice
(SIGTERM, or the TPU maintenance event) on any host and agrees on one step for all of them;
`CheckpointManager.reached_preemption(step)` asks it. Every host must stop at the same step, so a
host-local flag is not used there.
"""

from __future__ import annotations

import signal
import threading

import jax
import orbax.checkpoint as ocp
from absl import logging


class Preempted(Exception):
    """The run stopped early on request after saving a checkpoint; rerun the command to resume."""

    def __init__(self, step: int, checkpoint: str):
        super().__init__(f"preempted: checkpoint saved at step {step} in {checkpoint}; "
                         "rerun the same command to resume")
        self.step, self.checkpoint = step, checkpoint


class PreemptionWatcher:
    """`with PreemptionWatcher(mngr) as watcher: ... if watcher.should_stop(step): ...`"""

    def __init__(self, mngr: ocp.CheckpointManager):
        self.mngr = mngr
        self.signal: int | None = None
        self._previous = {}
        self._local = jax.process_count() == 1 and threading.current_thread() is threading.main_thread()

    def _handle(self, signum, frame):
        del frame
        if self.signal is not None:
            return
        self.signal = signum
        logging.warning("received %s: stopping after the current step", signal.Signals(signum).name)

    def __enter__(self) -> PreemptionWatcher:
        if self._local:
            self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def __exit__(self, *exc) -> None:
        for s, previous in self._previous.items():
            signal.signal(s, previous)

    def should_stop(self, step: int) -> bool:
        # All processes call this at the same steps (the preemption service requires it).
        return self.signal is not None or self.mngr.reached_preemption(step)
