"""One config schema for every experiment, as ml_collections configs.

`base_config()` holds every field; `cifar_config` (Sec 4.2) and `imagenet_config` (Sec 3.4) overlay
the paper's two recipes on it; `experiments/*.py` pick one per table or figure. `validate` is every
check of a config, before anything runs; `from_saved` reads a run's config.json, including one
written before some fields existed.
"""

from __future__ import annotations

import math

import ml_collections

from resnet_jax.data import DATASETS, HOST_FED
from resnet_jax.models import create_model, parse_model_name

PAPER_CIFAR_STEPS = 64_000

# What each config field means (`resnet-jax train --help` prints these beside the defaults).
FIELD_DOCS = {
    "model": "net: cifar_resnetN / cifar_plainN (N = 6n+2), imagenet_resnetN / imagenet_plainN",
    "shortcut": "A: zero-padding identity shortcuts; B: projections on dimension changes; "
                "C: all projections (ImageNet)",
    "stride_on_3x3": 'True = "v1.5" bottlenecks, stride on the 3x3 conv (not the paper\'s model)',
    "input_convention": "what the first conv expects of the RGB input image/255 - mean: paper (as is), "
                        "caffe (x255, BGR: the authors' released models), torchvision (/ per-channel "
                        "std); set by `resnet-jax import`",
    "input_std": "torchvision convention: the per-channel std (R, G, B) the input is divided by, if "
                 "not ImageNet's (CIFAR nets trained in PyTorch: their dataset's); set by "
                 "`resnet-jax import`",
    "zero_pad": "option A: where the zero channels go, after the identity's (ours) or half on each "
                "side (both: akamaster's CIFAR ResNets); set by `resnet-jax import`",
    "conv1_bias": "conv1 has a bias (the authors' Caffe models; redundant before BN)",
    "pool_ceil_mode": "pool1 as Caffe's: no padding, ceil-mode output size (the authors' Caffe models)",
    "init_from": "start training from these weights: a run folder or a released model's file "
                 "(.caffemodel, .safetensors, .pth); a new fc when the class count differs",
    "imported_from": "provenance of imported weights (format, file, SHA-256); empty for nets trained here",
    "dtype": "compute dtype, float32 or bfloat16 (params, BN statistics and loss stay float32)",
    "dataset": 'cifar10 (archive or tfds), digits (offline, scikit-learn; digits32/digits64: resized), '
               'synthetic (benchmarks), imagenet',
    "data_dir": ("cifar10: cifar-10-*.tar.gz, its extracted folder or a tfds data_dir; imagenet: a "
                 "folder of train/ + val/, of the ILSVRC2012 tars, or a tfds data_dir; "
                 "unset: ~/tensorflow_datasets"),
    "eval_split": 'CIFAR "test", or "val": train on 45k, evaluate on 5k held out; ImageNet "validation"',
    "image_size": "training crop and centre-crop test size",
    "scale_range": "shorter side drawn uniformly from this range (scale augmentation)",
    "eval_resize": "shorter side before the centre crop / 10 crops",
    "test_scales": "shorter sides of the fully-convolutional multi-scale test",
    "pca_lighting": "std of the AlexNet PCA colour noise coefficients",
    "mean_images": "training images averaged for the cached per-pixel mean",
    "mean_cache_dir": "where the per-pixel mean is cached; unset: data_dir, else the workdir",
    "image_backend": "host decode + resampling: fast (simplejpeg + OpenCV bilinear, no antialiasing "
                     "when shrinking; the `fast` extra), pil (Pillow, the reference's filter), or auto: "
                     "fast where it imports, else pil; a run records what auto resolved to",
    "num_workers": "grain decoding processes per host; -1: one per core, less one for training",
    "max_eval_images": ">0: periodic validation on the first N images only (faster curves)",
    "batch_size": "global batch, over all devices and hosts",
    "bn_group_size": "images per BN statistics group (as one GPU's batch in the paper); 0 = whole batch",
    "steps": "SGD iterations",
    "lr": "learning rate",
    "lr_schedule": "fixed: lr drops at lr_boundaries; plateau (ImageNet): /lr_decay when the validation "
                   "error stops improving",
    "lr_boundaries": "lr drops at these fractions of steps",
    "lr_decay": "lr factor at each drop",
    "plateau_patience": "evaluations without a better validation error before an lr drop",
    "plateau_min_delta": "smaller validation error improvements do not count",
    "plateau_max_drops": "lr drops at most",
    "momentum": "SGD momentum",
    "momentum_form": "caffe: v = m*v + lr*g, w -= v (the paper's); optax: v = m*v + g, w -= lr*v",
    "weight_decay": "L2 penalty on all parameters",
    "warmup": "train at warmup_lr until the training error is below warmup_until_error "
              "(on for ResNet-110/1202)",
    "warmup_lr": "learning rate of the warm-up",
    "warmup_steps": ">0: train at warmup_lr for exactly these first steps (the follow-up paper's 400 "
                    "iterations); with warmup also on, the lr is warmup_lr until both have ended",
    "warmup_until_error": "training error that ends the warm-up",
    "warmup_error_ema": "decay of the training error's moving average over batches (decided on device)",
    "seed": "random seed of init, data order and augmentation",
    "num_seeds": ">1: seeds seed..seed+num_seeds-1 trained together, each logged in workdir/seed{s}/",
    "seeds_mode": "how several seeds run: loop, vmap or devices (a seed mesh axis)",
    "conv_impl": "xla, or im2col: convs as patch matmuls (same math; a speed choice for seeds_mode=vmap)",
    "steps_per_call": "steps fused in one jit call (lax.scan; host-fed data: batches stacked per call)",
    "scan_blocks": "blocks 2..n of each stage under one nn.scan (compile time and memory independent "
                   "of depth); False unrolls them. Same function and checkpoints either way",
    "scan_conv_impl": "conv_impl inside the scanned blocks; auto: im2col on CPU (XLA:CPU runs convs "
                      "inside a loop several times slower than matmuls), conv_impl elsewhere",
    "remat": "block: each block's activations recomputed in the backward pass instead of stored; "
             "auto: block on CPU (faster and leaner there), none on accelerators",
    "log_every": "steps between metrics.jsonl records",
    "eval_every": "steps between evaluations",
    "eval_batch_size": "images per evaluation batch (x10 views for 10-crop)",
    "checkpoint_every": "steps between checkpoints",
    "keep_checkpoints": "newest checkpoints kept",
    "progress": "show a progress bar",
}

PAPER_CIFAR_STEPS = 64_000
PAPER_IMAGENET_STEPS = 600_000  # "up to 60e4 iterations" = 120 epochs of 1.28M images at 256

LR_SCHEDULES = ("fixed", "plateau")
MOMENTUM_FORMS = ("caffe", "optax")
SEEDS_MODES = ("loop", "vmap", "devices")
# Fields only the host-fed ImageNet pipeline reads: elsewhere they keep base_config()'s values.
HOST_FED_FIELDS = ("image_size", "scale_range", "eval_resize", "test_scales", "pca_lighting",
                   "mean_images", "mean_cache_dir", "image_backend", "num_workers", "max_eval_images",
                   "plateau_patience", "plateau_min_delta", "plateau_max_drops")

# What a config.json or checkpoint written before a field existed meant by its absence, where that
# differs from (or, in a checkpoint's meta, has no) base_config() value: optax's momentum was the
# only form, a run trained one seed, and ImageNet images were decoded and resized by Pillow (a
# host-fed field: only runs that read it get it). Absent speed choices (scan_blocks, scan_conv_impl,
# remat, conv_impl) take today's values: same function, and the checkpoints convert (models/layout.py).
LEGACY_DEFAULTS = {"momentum_form": "optax", "num_seeds": 1, "image_backend": "pil"}
# image_backend: "auto" resolves to one of the others when a run starts (`resolve_image_backend`).
IMAGE_BACKENDS = ("auto", "fast", "pil")
FAST_HINT = "pip install 'resnet-jax[fast]'"


class ConfigError(ValueError):
    """An invalid configuration, reported before anything is written."""


def base_config() -> ml_collections.ConfigDict:
    """Every field, with the values both recipes share; the fields a recipe sets are empty here
    (a bare base config does not validate), and the ImageNet pipeline's are neutral."""
    c = ml_collections.ConfigDict()
    c.model = ""
    c.shortcut = ""
    c.stride_on_3x3 = False
    c.input_convention = "paper"
    c.input_std = ()  # (): the convention's own
    c.zero_pad = "after"
    c.conv1_bias = False
    c.pool_ceil_mode = False
    c.init_from = ""
    c.imported_from = ""
    c.dtype = "float32"

    c.dataset = ""
    c.data_dir = ml_collections.config_dict.placeholder(str)
    c.eval_split = ""
    c.image_size = 0
    c.scale_range = ()
    c.eval_resize = 0
    c.test_scales = ()
    c.pca_lighting = 0.0
    c.mean_images = 0
    c.mean_cache_dir = ml_collections.config_dict.placeholder(str)
    c.image_backend = "auto"
    c.num_workers = 0
    c.max_eval_images = 0

    c.batch_size = 0
    c.bn_group_size = 0
    c.steps = 0
    c.lr = 0.1
    c.lr_schedule = "fixed"
    c.lr_boundaries = ()
    c.lr_decay = 0.1
    c.plateau_patience = 0
    c.plateau_min_delta = 0.0
    c.plateau_max_drops = 0
    c.momentum = 0.9
    c.momentum_form = "caffe"
    c.weight_decay = 1e-4
    c.warmup = False
    c.warmup_lr = 0.0
    c.warmup_steps = 0
    c.warmup_until_error = 1.0
    c.warmup_error_ema = 0.9

    c.seed = 0
    c.num_seeds = 1
    c.seeds_mode = "loop"
    c.conv_impl = "xla"
    c.steps_per_call = 0
    c.scan_blocks = True
    c.scan_conv_impl = "auto"
    c.remat = "auto"
    c.log_every = 0
    c.eval_every = 0
    c.eval_batch_size = 0
    c.checkpoint_every = 0
    c.keep_checkpoints = 2
    c.progress = True
    return c


def cifar_config(model: str = "cifar_resnet20") -> ml_collections.ConfigDict:
    """Sec 4.2: SGD 0.9, wd 1e-4, batch 128 (BN over 64 per GPU), lr 0.1 /10 at 32k and 48k, 64k steps."""
    try:
        depth = parse_model_name(model).depth
    except ValueError:
        depth = 0  # reported as one line by validate, not as a flag-parsing traceback
    c = base_config()
    c.update(model=model, shortcut="A", dataset="cifar10", eval_split="test",
             batch_size=128, bn_group_size=64,  # the paper: 128 on 2 GPUs
             steps=PAPER_CIFAR_STEPS, lr_boundaries=(0.5, 0.75),  # 32k and 48k of 64k
             warmup=depth >= 110, warmup_lr=0.01, warmup_until_error=0.8,  # ResNet-110/1202
             steps_per_call=50, log_every=100, eval_every=1_000, eval_batch_size=1_000,
             checkpoint_every=4_000)
    return c


def imagenet_config(model: str = "imagenet_resnet34", schedule: str = "plateau",
                    shortcut: str = "B") -> ml_collections.ConfigDict:
    """Sec 3.4: batch 256 (BN over 32 per GPU of 8), SGD 0.9, wd 1e-4, lr 0.1 /10 on plateaus, 60e4 steps.

    schedule "plateau": lr /10 when the centre-crop validation error stops improving (the paper);
    "fixed": /10 at epochs 30, 60 and 90 of 120 (the usual reproducible stand-in).
    """
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown ImageNet schedule {schedule!r}: expected one of {LR_SCHEDULES}")
    parse_model_name(model)
    c = base_config()
    c.update(model=model, shortcut=shortcut,  # Table 2 / Fig 4 use A
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
    return c


def scaled_steps(config: ml_collections.ConfigDict, steps: int) -> ml_collections.ConfigDict:
    """Shorter run with the schedule's shape (milestones are fractions of `steps`); a fixed warm-up,
    log, eval and checkpoint intervals shrink with it."""
    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}")
    ratio = steps / config.steps
    config.steps = steps
    # at least every 10 steps for curves; checkpoints (not free on CPU) at least 100 apart
    for field, floor in (("log_every", 10), ("eval_every", 10), ("checkpoint_every", 100)):
        scaled = max(floor, round(getattr(config, field) * ratio))
        setattr(config, field, min(scaled, steps))
    if config.warmup_steps > 0:  # a fixed warm-up is part of the schedule's shape
        config.warmup_steps = max(1, round(config.warmup_steps * ratio))
    return config


def override(config: ml_collections.ConfigDict, **fields) -> ml_collections.ConfigDict:
    """`config` with `fields` (by their flat names, e.g. lr=0.01, dataset="digits") set; an
    experiment's way to change its recipe."""
    config.update(fields)
    return config


def imagenet_net_config(net: str, default_shortcut: str = "B") -> ml_collections.ConfigDict:
    """A net of the ImageNet tables by short name: `plain34`, `resnet50`, `resnet34_C`, `resnet50:fixed`.

    `_X` picks shortcut option X; a `:fixed` suffix the fixed 30/60/90-epoch schedule instead of the
    validation-plateau rule.
    """
    net, _, schedule = net.partition(":")
    kind_depth, _, shortcut = net.partition("_")
    return imagenet_config(f"imagenet_{kind_depth}", schedule or "plateau", shortcut or default_shortcut)


def from_saved(saved: dict) -> ml_collections.ConfigDict:
    """The config a run's config.json describes: its fields over its family's recipe, a field it
    lacks (written before the field existed) as that release meant it (LEGACY_DEFAULTS)."""
    try:
        family = parse_model_name(saved["model"]).family
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"no valid model: {e}") from None
    config = cifar_config(saved["model"]) if family == "cifar" else imagenet_config(saved["model"])
    for field, value in LEGACY_DEFAULTS.items():
        if field not in HOST_FED_FIELDS or saved.get("dataset") in HOST_FED:
            config[field] = value
    if unknown := sorted(set(saved) - set(config)):
        raise ConfigError(f"unknown config fields {', '.join(unknown)}")
    try:
        config.update(saved)
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from None
    return config


def resolve_image_backend(config: ml_collections.ConfigDict) -> str:
    """The transform backend a host-fed run decodes and resamples with: `image_backend`, "auto" as
    this machine resolves it (fast where simplejpeg and OpenCV import, else pil). ConfigError if
    "fast" is named and cannot import. A run calls this once, when it starts, and records the
    result (config.json, the checkpoints' identity): resumed elsewhere it keeps its pixels or stops.

    Not part of `validate`, which also vets saved configs opened where no images are read."""
    from resnet_jax.data import imagenet_transforms  # noqa: PLC0415 (OpenCV only where images are)

    backend = config.image_backend
    if backend == "fast" and imagenet_transforms.default_backend() != "fast":
        raise ConfigError(f"image_backend 'fast' needs simplejpeg and opencv-python-headless, which "
                          f"do not import here: {FAST_HINT}, or use image_backend=pil")
    return imagenet_transforms.check_backend(backend)


def model_options(config: ml_collections.ConfigDict) -> dict:
    """The options that describe a released model's files (models/imagenet.py), for create_model."""
    return {"input_convention": config.input_convention, "input_std": tuple(config.input_std) or None,
            "zero_pad": config.zero_pad, "conv1_bias": config.conv1_bias,
            "pool_ceil_mode": config.pool_ceil_mode}


def seed_groups(num_seeds: int, mode: str, num_devices: int) -> int:
    """Size of a multi-seed run's seed mesh axis (train/seeds.py): gcd(N, D) device groups in mode
    "devices", else 1."""
    return math.gcd(num_seeds, num_devices) if mode == "devices" else 1


def validate(config: ml_collections.ConfigDict, num_devices: int | None = None) -> None:
    """Every check of a config, before anything runs: ConfigError with one clear sentence (model
    options, dataset, schedule, several seeds, batch over devices, hosts and BN groups).

    The model's options (shortcut, dtype, conv_impl, scan_conv_impl, remat, stride_on_3x3) are
    checked by building the model (models.create_model, whose checks serve direct library use too).
    """
    import jax  # noqa: PLC0415 (device and host counts; importing this module stays cheap)

    num_devices = num_devices or jax.device_count()
    try:
        family = parse_model_name(config.model).family
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if config.dataset not in (*DATASETS, *HOST_FED):
        raise ConfigError(f"unknown dataset {config.dataset!r}: expected one of "
                          f"{', '.join((*DATASETS, *HOST_FED))}")
    fine_tune = family == "imagenet" and config.init_from and config.dataset in DATASETS
    if (family == "imagenet") != (config.dataset in HOST_FED) and not fine_tune:
        raise ConfigError(f"{config.model} cannot train on {config.dataset}: ImageNet nets train on "
                          "imagenet (experiments/table2.py etc.) or fine-tune from init_from on any dataset, "
                          "CIFAR nets train on the other datasets")
    try:
        create_model(config.model, shortcut=config.shortcut, bn_group_size=config.bn_group_size,
                     dtype=config.dtype, stride_on_3x3=config.stride_on_3x3,
                     conv_impl=config.conv_impl, scan_blocks=config.scan_blocks,
                     scan_conv_impl=None if config.scan_conv_impl == "auto" else config.scan_conv_impl,
                     remat="none" if config.remat == "auto" else config.remat,
                     **model_options(config))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    for field in ("scan_blocks", "conv1_bias", "pool_ceil_mode"):
        if not isinstance(config[field], bool):
            raise ConfigError(f"{field} must be True or False, got {config[field]!r}")
    for field in ("init_from", "imported_from"):
        if not isinstance(config[field], str):
            raise ConfigError(f"{field} must be a path or empty, got {config[field]!r}")
    if config.init_from and config.num_seeds > 1:
        raise ConfigError("init_from starts one net from given weights: use num_seeds=1")
    for field, options in (("lr_schedule", LR_SCHEDULES), ("momentum_form", MOMENTUM_FORMS),
                           ("seeds_mode", SEEDS_MODES), ("image_backend", IMAGE_BACKENDS)):
        if config[field] not in options:
            raise ConfigError(f"unknown {field} {config[field]!r}: expected one of {', '.join(options)}")
    if int(config.warmup_steps) < 0:
        raise ConfigError(f"warmup_steps must be >= 0 (0 = no fixed warm-up), got {config.warmup_steps}")
    for field in ("steps", "batch_size", "log_every", "eval_every", "checkpoint_every",
                  "eval_batch_size", "steps_per_call", "num_seeds", "keep_checkpoints"):
        if int(config[field]) <= 0:
            raise ConfigError(f"{field} must be positive, got {config[field]}")
    if config.num_seeds > 1 and config.dataset not in DATASETS:
        raise ConfigError(f"several seeds per run need a device-resident dataset "
                          f"({', '.join(DATASETS)}), not {config.dataset!r}")
    if config.dataset in HOST_FED:
        _validate_host_fed(config, jax.process_count())
    else:
        base = base_config()
        if config.lr_schedule == "plateau":
            raise ConfigError(f"lr_schedule 'plateau' is the ImageNet pipeline's (it follows the "
                              f"validation error), not {config.dataset}'s: use lr_boundaries")
        if changed := [f for f in HOST_FED_FIELDS if config[f] != base[f]]:
            raise ConfigError(f"{', '.join(changed)}: ImageNet pipeline settings, not read for "
                              f"{config.dataset}")
    # Each seed's batch is split over the mesh's data axis: every device, or with seeds_mode
    # "devices" the devices that seed gets.
    data_devices = num_devices // seed_groups(config.num_seeds, config.seeds_mode, num_devices)
    devices = (f"{data_devices} devices each seed gets" if data_devices != num_devices
               else f"{num_devices} devices")
    for field in ("batch_size", "eval_batch_size"):
        if config[field] % data_devices:
            raise ConfigError(f"{field} {config[field]} is not divisible by the {devices}")
    if config.bn_group_size < 0:
        raise ConfigError(f"bn_group_size must be >= 0 (0 = whole batch), got {config.bn_group_size}")
    if config.bn_group_size and config.batch_size % config.bn_group_size:
        raise ConfigError(f"batch_size {config.batch_size} is not divisible by bn_group_size "
                          f"{config.bn_group_size}")


def _validate_host_fed(config: ml_collections.ConfigDict, num_processes: int) -> None:
    """The host-fed pipeline's own checks: every host takes an equal share of each batch."""
    for field in ("batch_size", "eval_batch_size"):
        if config[field] % num_processes:
            raise ConfigError(f"{field} {config[field]} is not divisible by the {num_processes} hosts")
    if config.num_workers < -1:
        raise ConfigError(f"num_workers must be >= 0, or -1 for one per core; got {config.num_workers}")
    if (not config.scale_range or min(config.scale_range) < config.image_size
            or config.eval_resize < config.image_size):
        raise ConfigError(f"scale_range {tuple(config.scale_range)} and eval_resize "
                          f"{config.eval_resize} must not be below image_size {config.image_size}")
