"""Every check of a run's config, before anything runs: ConfigError with one clear sentence.

`check_fields` needs no JAX (the command line runs it before JAX loads, so a mistake answers at
once): each field against the schema (config_schema.FIELDS: type, choices, range), then the
checks across fields. `validate` adds the model's options (by building the net: models.create_model,
whose checks serve direct library use too) and the split of each batch over devices and hosts.
"""

from __future__ import annotations

import ml_collections

from resnet_jax.config_schema import (FLAT, HOST_FED_FIELDS, SECTIONS, ConfigError, base_config,
                                      field_problem, flat_items, get)
from resnet_jax.data import DATASETS, HOST_FED


def scale_rotation(config: ml_collections.ConfigDict) -> dict | None:
    """The random scaling and rotation a config asks of the device-resident data (data/augment.py's
    keywords), or None when both are off (the paper's recipe)."""
    zoom, degrees = tuple(float(v) for v in config.data.zoom_range), float(config.data.rotation_degrees)
    return None if zoom == (1.0, 1.0) and degrees == 0 else {"scale_range": zoom, "max_degrees": degrees}


def check_fields(config: ml_collections.ConfigDict) -> None:
    """The checks that need no JAX and no model code: each field, then datasets, seeds, schedules
    and BN groups."""
    if stray := _stray_fields(config):
        raise ConfigError(f"unknown config fields {', '.join(stray)}: each field lives in its section "
                          "(config.optim.lr); configs.override(config, lr=...) sets one by its flat name")
    if not config.model.name:
        raise ConfigError("unknown model '': an experiment sets it (resnet-jax train --help lists them)")
    for field, value in flat_items(config).items():
        if problem := field_problem(field, value):
            raise ConfigError(problem)
    data, run = config.data, config.run
    if data.name not in (*DATASETS, *HOST_FED):
        raise ConfigError(f"unknown dataset {data.name!r}: expected one of "
                          f"{', '.join((*DATASETS, *HOST_FED))}")
    if run.init_from and run.num_seeds > 1:
        raise ConfigError("init_from starts one net from given weights: use num_seeds=1")
    if run.num_seeds > 1 and data.name not in DATASETS:
        raise ConfigError(f"several seeds per run need a device-resident dataset "
                          f"({', '.join(DATASETS)}), not {data.name!r}")
    if data.name in HOST_FED:
        if (not data.scale_range or min(data.scale_range) < data.image_size
                or data.eval_resize < data.image_size):
            raise ConfigError(f"scale_range {tuple(data.scale_range)} and eval_resize "
                              f"{data.eval_resize} must not be below image_size {data.image_size}")
        if scale_rotation(config):
            raise ConfigError(f"zoom_range and rotation_degrees augment the device-resident datasets "
                              f"({', '.join(DATASETS)}), not {data.name}")
    else:
        base = base_config()
        if config.optim.lr_schedule == "plateau":
            raise ConfigError(f"lr_schedule 'plateau' is the ImageNet pipeline's (it follows the "
                              f"validation error), not {data.name}'s: use lr_boundaries")
        if changed := [f for f in HOST_FED_FIELDS if get(config, f) != get(base, f)]:
            raise ConfigError(f"{', '.join(changed)}: ImageNet pipeline settings, not read for {data.name}")
    group = config.model.bn_group_size
    if group and run.batch_size % group:
        raise ConfigError(f"batch_size {run.batch_size} is not divisible by bn_group_size {group}: use a "
                          f"multiple of {group}, or set bn_group_size (0 = BN over the whole batch)")


def _stray_fields(config: ml_collections.ConfigDict) -> list[str]:
    """Keys no field has: a section missing, or a key set outside its section (`config.lr = 0.05`
    in an experiment file written for the flat config)."""
    sections = [s for s in SECTIONS if isinstance(config.get(s), ml_collections.ConfigDict)]
    stray = [key for key in config if key not in sections]
    stray += [f"{s} (missing)" for s in SECTIONS if s not in config]
    return stray + [f"{s}.{key}" for s in sections for key in config[s] if f"{s}.{key}" not in FLAT]


def validate_model(config: ml_collections.ConfigDict) -> None:
    """The net's name and options, by building it (no parameters: nothing is computed)."""
    from resnet_jax.configs import build_model, resolve  # noqa: PLC0415 (flax only from here on)
    from resnet_jax.models import parse_model_name  # noqa: PLC0415

    model, dataset = config.model.name, config.data.name
    try:
        family = parse_model_name(model).family
    except ValueError as e:
        raise ConfigError(str(e)) from None
    fine_tune = family == "imagenet" and config.run.init_from and dataset in DATASETS
    if (family == "imagenet") != (dataset in HOST_FED) and not fine_tune:
        raise ConfigError(f"{model} cannot train on {dataset}: ImageNet nets train on imagenet "
                          "(experiments/table2.py etc.) or fine-tune from init_from on any dataset, "
                          "CIFAR nets train on the other datasets")
    try:
        build_model(resolve(config, "any"))  # every platform's choices are valid where one's are
    except ValueError as e:
        raise ConfigError(str(e)) from None


def validate_devices(config: ml_collections.ConfigDict, num_devices: int, num_processes: int = 1) -> None:
    """Each seed's batch splits evenly over the devices it gets (every device, or with seeds_mode
    "devices" its group: configs.seed_groups), and a host-fed batch over the hosts."""
    from resnet_jax.configs import seed_groups  # noqa: PLC0415

    run = config.run
    data_devices = num_devices // seed_groups(run.num_seeds, run.seeds_mode, num_devices)
    devices = (f"{data_devices} devices each seed gets" if data_devices != num_devices
               else f"{num_devices} devices")
    for field in ("batch_size", "eval_batch_size"):
        if run[field] % data_devices:
            raise ConfigError(f"{field} {run[field]} is not divisible by the {devices}")
        if config.data.name in HOST_FED and run[field] % num_processes:
            raise ConfigError(f"{field} {run[field]} is not divisible by the {num_processes} hosts")


def validate(config: ml_collections.ConfigDict, num_devices: int | None = None,
             num_processes: int | None = None) -> None:
    """Every check of a config, before anything runs (the device and host counts default to this
    program's: JAX is imported for them)."""
    check_fields(config)
    validate_model(config)
    if num_devices is None or num_processes is None:
        import jax  # noqa: PLC0415

        num_devices = num_devices or jax.device_count()
        num_processes = num_processes or jax.process_count()
    validate_devices(config, num_devices, num_processes)
