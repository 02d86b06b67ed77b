"""Learning-rate schedules of the paper: step decay, with ResNet-110's error-triggered warm-up (or
the follow-up's fixed-length one, 1603.05027 appendix), and ImageNet's drop on a validation-error
plateau (Sec 3.4)."""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable

import jax.numpy as jnp
import optax


def step_decay(base_lr: float, steps: int, boundaries=(0.5, 0.75), decay: float = 0.1, *,
               warmup_steps: int = 0, warmup_lr: float = 0.0) -> optax.Schedule:
    """lr divided by 1/decay at each boundary (fractions of `steps`): 0.1 -> 0.01 at 32k -> 0.001 at 48k.

    `warmup_steps` > 0: `warmup_lr` for the first `warmup_steps` steps, then the decay schedule at
    the absolute step; "0.01 at the beginning 400 iterations and go back to 0.1 after that"
    (1603.05027 appendix), the fixed-length reading of the 2015 paper's error-triggered rule."""
    milestones = {int(round(b * steps)): decay for b in boundaries}
    schedule = optax.piecewise_constant_schedule(base_lr, milestones)
    if warmup_steps <= 0:
        return schedule
    return lambda step: jnp.where(step < warmup_steps, warmup_lr, schedule(step))


def learning_rate(schedule: optax.Schedule, step, warmup_done, warmup_lr: float):
    """The warm-up lr until `warmup_done` flips, then the normal schedule at the absolute step."""
    return jnp.where(warmup_done, schedule(step), warmup_lr)


def update_warmup(warmup_done, error_ema, batch_error, ema_decay: float, until_error: float):
    """Track the training error (EMA of batch errors); warm-up ends once it is below `until_error`."""
    error_ema = ema_decay * error_ema + (1.0 - ema_decay) * batch_error
    return warmup_done | (error_ema < until_error), error_ema


@dataclasses.dataclass
class PlateauRule:
    """lr /10 "when the error plateaus" (Sec 3.4): the lr is multiplied by `factor` when the
    validation error has not improved by `min_delta` for `patience` evaluations, at most `max_drops`
    times. The training loop owns it: it calls `update` after each validation, saves `state()` in
    every checkpoint and restores it on resume, so the lr never depends on who evaluated when."""

    patience: int
    min_delta: float
    factor: float
    max_drops: int
    best: float = math.inf
    waited: int = 0
    drops: int = 0

    @classmethod
    def from_config(cls, config) -> PlateauRule:
        return cls(config.optim.plateau_patience, config.optim.plateau_min_delta, config.optim.lr_decay,
                   config.optim.plateau_max_drops)

    @property
    def scale(self) -> float:
        return self.factor ** self.drops

    def update(self, error: float) -> None:
        if error < self.best - self.min_delta:
            self.best, self.waited = error, 0
            return
        self.waited += 1
        if self.waited >= self.patience and self.drops < self.max_drops:
            self.drops, self.waited = self.drops + 1, 0

    def state(self) -> dict:
        """What a checkpoint keeps (JSON: an unimproved `best` is null)."""
        return {"best": None if math.isinf(self.best) else self.best, "waited": self.waited,
                "drops": self.drops}

    def restore(self, state: dict) -> None:
        best = state["best"]
        self.best = math.inf if best is None else float(best)
        self.waited, self.drops = int(state["waited"]), int(state["drops"])

    def replay(self, records: Iterable[dict], up_to_step: int) -> None:
        """Legacy resume, for checkpoints saved before they kept `state()`: rebuild the state from
        the validation errors logged (metrics.jsonl) up to the checkpoint's step."""
        for record in records:
            if "test_error" in record and record["step"] <= up_to_step:
                self.update(record["test_error"])
