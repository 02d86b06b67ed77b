"""The paper's two recipes, and every check of a run's config, over one nested schema.

The fields (their sections, defaults, meanings, checks) are `config_schema.FIELDS`; `cifar_config`
(Sec 4.2) and `imagenet_config` (Sec 3.4) overlay the paper's two recipes on `base_config()`;
`experiments/*.py` pick one per table or figure. `validate` is every check of a config that needs
no JAX (run before JAX loads, so a mistake answers at once); `validate_model` and `validate_devices`
the rest. `resolve` turns "auto" into what this platform runs, once per run (config.json records
it); `build_model` is the one `create_model` call; `from_saved` reads a run's config.json, nested
or in the flat form of every earlier release, a field it lacks as that release meant it.
"""

from __future__ import annotations

import math
import re

import ml_collections

from resnet_jax.config_checks import check_fields, scale_rotation, validate, validate_devices, validate_model
from resnet_jax.config_schema import (FIELDS, FLAT, HOST_FED_FIELDS, IDENTITY_FIELDS, LEGACY_DEFAULTS,
                                      RESUME_FREE, SECTIONS, ConfigError, base_config, flat_items, get, put,
                                      unknown_field)
from resnet_jax.data import HOST_FED

__all__ = ["FIELDS", "HOST_FED", "HOST_FED_FIELDS", "IDENTITY_FIELDS", "LEGACY_DEFAULTS", "RESUME_FREE",
           "SECTIONS", "ConfigError", "base_config", "check_fields", "flat_items", "get", "put",
           "scale_rotation", "validate", "validate_devices", "validate_model"]

PAPER_CIFAR_STEPS = 64_000
PAPER_IMAGENET_STEPS = 600_000  # "up to 60e4 iterations" = 120 epochs of 1.28M images at 256
LR_SCHEDULES = FIELDS["lr_schedule"].choices
MOMENTUM_FORMS = FIELDS["momentum_form"].choices
SEEDS_MODES = FIELDS["seeds_mode"].choices
FAST_HINT = "pip install 'resnet-jax[fast]'"


def override(config: ml_collections.ConfigDict, **fields) -> ml_collections.ConfigDict:
    """`config` with `fields` (by their flat names, e.g. lr=0.01, dataset="digits") set, each in
    its section; an experiment's way to change its recipe. ValueError for a name no field has."""
    for flat, value in fields.items():
        if flat not in FIELDS:
            raise unknown_field(flat)
        put(config, flat, value)
    return config


def _depth(model: str) -> int:
    """The depth a model name ends with (0 for none): what the recipes read of it before the
    name is checked (validate_model)."""
    found = re.search(r"(\d+)$", model)
    return int(found.group(1)) if found else 0


def cifar_config(model: str = "cifar_resnet20") -> ml_collections.ConfigDict:
    """Sec 4.2: SGD 0.9, wd 1e-4, batch 128 (BN over 64 per GPU), lr 0.1 /10 at 32k and 48k, 64k steps."""
    return override(base_config(), model=model, shortcut="A", dataset="cifar10", eval_split="test",
                    batch_size=128, bn_group_size=64,  # the paper: 128 on 2 GPUs
                    steps=PAPER_CIFAR_STEPS, lr_boundaries=(0.5, 0.75),  # 32k and 48k of 64k
                    warmup=_depth(model) >= 110, warmup_lr=0.01, warmup_until_error=0.8,  # ResNet-110/1202
                    steps_per_call=50, log_every=100, eval_every=1_000, eval_batch_size=1_000,
                    checkpoint_every=4_000)


def imagenet_config(model: str = "imagenet_resnet34", schedule: str = "plateau",
                    shortcut: str = "B") -> ml_collections.ConfigDict:
    """Sec 3.4: batch 256 (BN over 32 per GPU of 8), SGD 0.9, wd 1e-4, lr 0.1 /10 on plateaus, 60e4 steps.

    schedule "plateau": lr /10 when the centre-crop validation error stops improving (the paper);
    "fixed": /10 at epochs 30, 60 and 90 of 120 (the usual reproducible stand-in).
    """
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown ImageNet schedule {schedule!r}: expected one of {LR_SCHEDULES}")
    return override(
        base_config(), model=model, shortcut=shortcut,  # Table 2 / Fig 4 use A
        dataset="imagenet", eval_split="validation", image_size=224, scale_range=(256, 480),
        eval_resize=256, test_scales=(224, 256, 384, 480, 640), pca_lighting=0.1,
        mean_images=10_000, num_workers=-1,  # one per host core (data.imagenet.worker_count)
        batch_size=256, bn_group_size=32,  # 8 GPUs x 32 images
        steps=PAPER_IMAGENET_STEPS, lr_schedule=schedule,
        lr_boundaries=() if schedule == "plateau" else (0.25, 0.5, 0.75),  # epochs 30/60/90 of 120
        plateau_patience=3, plateau_min_delta=0.001, plateau_max_drops=3,  # 0.1 -> 1e-4 at most
        warmup_lr=0.1,
        steps_per_call=10, log_every=500,
        eval_every=5_000,  # about one epoch (5,005 steps)
        eval_batch_size=200,  # divides 50,000 and 8 devices
        checkpoint_every=5_000)


def recipe(model: str) -> ml_collections.ConfigDict:
    """The paper's recipe for `model`'s family: Sec 3.4's for the ImageNet nets (`imagenet_*`),
    Sec 4.2's for every other (the CIFAR nets, the explainer's). Read off the name's prefix, so a
    name not yet checked (validate_model) still gets one."""
    return imagenet_config(model) if model.startswith("imagenet_") else cifar_config(model)


SCALED_INTERVALS = ("log_every", "eval_every", "checkpoint_every")


def scaled_steps(config: ml_collections.ConfigDict, steps: int,
                 keep: tuple[str, ...] = ()) -> ml_collections.ConfigDict:
    """Shorter run with the schedule's shape (milestones are fractions of `steps`); a fixed warm-up,
    log, eval and checkpoint intervals shrink with it, the intervals except those named in `keep`
    (values the user typed)."""
    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}")
    ratio = steps / config.run.steps
    config.run.steps = steps
    # at least every 10 steps for curves; checkpoints (not free on CPU) at least 100 apart
    for field, floor in zip(SCALED_INTERVALS, (10, 10, 100)):
        if field not in keep:
            config.run[field] = min(max(floor, round(config.run[field] * ratio)), steps)
    if config.optim.warmup_steps > 0:  # a fixed warm-up is part of the schedule's shape
        config.optim.warmup_steps = max(1, round(config.optim.warmup_steps * ratio))
    return config


def imagenet_net_config(net: str, default_shortcut: str = "B") -> ml_collections.ConfigDict:
    """A net of the ImageNet tables by short name: `plain34`, `resnet50`, `resnet34_C`, `resnet50:fixed`.

    `_X` picks shortcut option X; a `:fixed` suffix the fixed 30/60/90-epoch schedule instead of the
    validation-plateau rule.
    """
    net, _, schedule = net.partition(":")
    kind_depth, _, shortcut = net.partition("_")
    return imagenet_config(f"imagenet_{kind_depth}", schedule or "plateau", shortcut or default_shortcut)


def _flat_saved(saved: dict) -> dict:
    """A config.json's fields by flat name: the nested form (this release on) or the flat one of
    every earlier release; ConfigError naming what no release wrote."""
    if not isinstance(saved, dict):
        raise ConfigError("config.json holds no fields")
    if not any(isinstance(saved.get(s), dict) for s in SECTIONS):
        flat = dict(saved)
    else:
        flat, unknown = {}, [k for k in saved if k not in SECTIONS or not isinstance(saved[k], dict)]
        for section in SECTIONS:
            for name, value in saved.get(section, {}).items():
                key = FLAT.get(f"{section}.{name}")
                flat[key] = value if key else unknown.append(f"{section}.{name}")
        if unknown:
            raise ConfigError(f"unknown config fields {', '.join(unknown)}")
    if unknown := sorted(set(flat) - set(FIELDS)):
        raise ConfigError(f"unknown config fields {', '.join(unknown)}")
    return flat


def from_saved(saved: dict) -> ml_collections.ConfigDict:
    """The config a run's config.json describes: its fields over its family's recipe, a field it
    lacks (written before the field existed) as that release meant it (the schema's `legacy`)."""
    flat = _flat_saved(saved)
    model = flat.get("model")
    if not isinstance(model, str) or not model:
        raise ConfigError(f"no valid model: {model!r}")
    config = recipe(model)
    for field, value in LEGACY_DEFAULTS.items():
        if field not in HOST_FED_FIELDS or flat.get("dataset") in HOST_FED:
            put(config, field, value)
    try:
        override(config, **flat)
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from None
    return config


def resolve(config: ml_collections.ConfigDict, platform: str) -> ml_collections.ConfigDict:
    """A copy of `config` with the speed choices left to the platform ("auto") decided for
    `platform` (jax.default_backend()): scan_conv_impl im2col on CPU (XLA:CPU runs convolutions
    inside a loop several times slower than matmuls), conv_impl elsewhere; remat "block" on CPU
    (faster and leaner there, measured in docs/speed.md), "none" on accelerators. A run resolves
    once, when it starts, and config.json records the result. Same function either way."""
    config = config.copy_and_resolve_references()
    model, cpu = config.model, platform == "cpu"
    if model.scan_conv_impl == "auto":
        model.scan_conv_impl = "im2col" if cpu else model.conv_impl
    if model.remat == "auto":
        model.remat = "block" if cpu else "none"
    return config


def build_model(config: ml_collections.ConfigDict, num_classes: int | None = None):
    """The net `config.model` describes (models.create_model; "auto" resolved first: `resolve`)."""
    from resnet_jax.models import create_model  # noqa: PLC0415 (flax only where a net is built)

    if "auto" in (config.model.scan_conv_impl, config.model.remat):
        raise ValueError("unresolved 'auto' model options: configs.resolve(config, platform) first")
    return create_model(**{**config.model, "input_std": tuple(config.model.input_std) or None},
                        num_classes=num_classes)


def resolve_image_backend(config: ml_collections.ConfigDict) -> str:
    """The transform backend a host-fed run decodes and resamples with: `image_backend`, "auto" as
    this machine resolves it (fast where simplejpeg and OpenCV import, else pil). ConfigError if
    "fast" is named and cannot import. A run calls this once, when it starts, and records the
    result (config.json, the checkpoints' identity): resumed elsewhere it keeps its pixels or stops.

    Not part of `validate`, which also vets saved configs opened where no images are read."""
    from resnet_jax.data import imagenet_transforms  # noqa: PLC0415 (OpenCV only where images are)

    backend = config.data.image_backend
    if backend == "fast" and imagenet_transforms.default_backend() != "fast":
        raise ConfigError(f"image_backend 'fast' needs simplejpeg and opencv-python-headless, which "
                          f"do not import here: {FAST_HINT}, or use image_backend=pil")
    return imagenet_transforms.check_backend(backend)


def resume_changes(saved: ml_collections.ConfigDict, config: ml_collections.ConfigDict) -> list[str]:
    """The fields, other than the ones a resume may change (the schema's resume="free"), whose
    values differ between a run's recorded config and the one resuming it, as `field old -> new`."""
    old, new = flat_items(saved), flat_items(config)
    return [f"{field} {old[field]!r} -> {new[field]!r}" for field in FIELDS
            if field not in RESUME_FREE and _comparable(old[field]) != _comparable(new[field])]


def _comparable(value):
    return tuple(value) if isinstance(value, list) else value


def seed_groups(num_seeds: int, mode: str, num_devices: int) -> int:
    """Size of a multi-seed run's seed mesh axis (train/seeds.py): gcd(N, D) device groups in mode
    "devices", else 1."""
    return math.gcd(num_seeds, num_devices) if mode == "devices" else 1

