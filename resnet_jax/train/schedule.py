"""Learning-rate schedule of the paper: step decay, with ResNet-110's error-triggered warm-up."""

from __future__ import annotations

import jax.numpy as jnp
import optax


def step_decay(base_lr: float, steps: int, boundaries=(0.5, 0.75), decay: float = 0.1) -> optax.Schedule:
    """lr divided by 1/decay at each boundary (fractions of `steps`): 0.1 -> 0.01 at 32k -> 0.001 at 48k."""
    milestones = {int(round(b * steps)): decay for b in boundaries}
    return optax.piecewise_constant_schedule(base_lr, milestones)


def learning_rate(schedule: optax.Schedule, step, warmup_done, warmup_lr: float):
    """The warm-up lr until `warmup_done` flips, then the normal schedule at the absolute step."""
    return jnp.where(warmup_done, schedule(step), warmup_lr)


def update_warmup(warmup_done, error_ema, batch_error, ema_decay: float, until_error: float):
    """Track the training error (EMA of batch errors); warm-up ends once it is below `until_error`."""
    error_ema = ema_decay * error_ema + (1.0 - ema_decay) * batch_error
    return warmup_done | (error_ema < until_error), error_ema
