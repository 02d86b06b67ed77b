"""Paper recipes as ml_collections configs; `experiments/*.py` pick one per table or figure."""

from __future__ import annotations

import ml_collections

from resnet_jax.models import parse_model_name

PAPER_CIFAR_STEPS = 64_000


def cifar_config(model: str = "cifar_resnet20") -> ml_collections.ConfigDict:
    """Sec 4.2: SGD 0.9, wd 1e-4, batch 128 (BN over 64 per GPU), lr 0.1 /10 at 32k and 48k, 64k steps."""
    _, _, depth = parse_model_name(model)
    c = ml_collections.ConfigDict()
    c.model = model
    c.shortcut = "A"  # paper default on CIFAR; "B" = projection on dimension changes
    c.dtype = "float32"  # or "bfloat16" compute (params, BN statistics and loss stay float32)

    c.dataset = "cifar10"  # "digits" runs offline; "synthetic" for benchmarks
    c.data_dir = ml_collections.config_dict.placeholder(str)
    c.eval_split = "test"  # "val": train on 45k, evaluate on 5k held out (for making choices)

    c.batch_size = 128  # global, over all devices and hosts
    c.bn_group_size = 64  # images per BN statistics group (paper: 128 on 2 GPUs); 0 = whole batch
    c.steps = PAPER_CIFAR_STEPS
    c.lr = 0.1
    c.lr_boundaries = (0.5, 0.75)  # fractions of `steps`: 32k and 48k of 64k
    c.lr_decay = 0.1
    c.momentum = 0.9
    c.weight_decay = 1e-4
    # ResNet-110/1202: lr 0.01 until the training error is below 80%, then the normal schedule.
    c.warmup = depth >= 110
    c.warmup_lr = 0.01
    c.warmup_until_error = 0.8
    c.warmup_error_ema = 0.9  # "training error" = EMA of per-batch error, decided on device

    c.seed = 0
    c.steps_per_call = 50  # steps fused in one jit call (lax.scan)
    c.log_every = 100
    c.eval_every = 1_000
    c.eval_batch_size = 1_000
    c.checkpoint_every = 4_000
    c.keep_checkpoints = 2
    c.progress = True
    return c


def scaled_steps(config: ml_collections.ConfigDict, steps: int) -> ml_collections.ConfigDict:
    """Shorter run with the schedule's shape (milestones are fractions of `steps`); log, eval and
    checkpoint intervals shrink with it, down to 10 steps, so short runs still draw curves."""
    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}")
    ratio = steps / config.steps
    config.steps = steps
    for field in ("log_every", "eval_every", "checkpoint_every"):
        scaled = max(10, round(getattr(config, field) * ratio))
        setattr(config, field, min(scaled, steps))
    return config
