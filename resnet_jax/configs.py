"""Paper recipes as ml_collections configs; `experiments/*.py` pick one per table or figure."""

from __future__ import annotations

import ml_collections

from resnet_jax.models import parse_model_name

PAPER_CIFAR_STEPS = 64_000

# What each config field means (`resnet-jax train --help` prints these beside the defaults).
FIELD_DOCS = {
    "model": "net: cifar_resnetN / cifar_plainN (N = 6n+2), imagenet_resnetN / imagenet_plainN",
    "shortcut": "A: zero-padding identity shortcuts; B: projections on dimension changes; "
                "C: all projections (ImageNet)",
    "stride_on_3x3": 'True = "v1.5" bottlenecks, stride on the 3x3 conv (not the paper\'s model)',
    "dtype": "compute dtype, float32 or bfloat16 (params, BN statistics and loss stay float32)",
    "dataset": 'cifar10 (tfds), digits (offline, scikit-learn), synthetic (benchmarks), imagenet',
    "data_dir": "tfds data_dir holding the dataset (cifar10, imagenet only); unset: ~/tensorflow_datasets",
    "eval_split": 'CIFAR "test", or "val": train on 45k, evaluate on 5k held out; ImageNet "validation"',
    "image_size": "training crop and centre-crop test size",
    "scale_range": "shorter side drawn uniformly from this range (scale augmentation)",
    "eval_resize": "shorter side before the centre crop / 10 crops",
    "test_scales": "shorter sides of the fully-convolutional multi-scale test",
    "pca_lighting": "std of the AlexNet PCA colour noise coefficients",
    "mean_images": "training images averaged for the cached per-pixel mean",
    "mean_cache_dir": "where the per-pixel mean is cached; unset: data_dir, else the workdir",
    "num_workers": "grain decoding processes per host",
    "max_eval_images": ">0: periodic validation on the first N images only (faster curves)",
    "batch_size": "global batch, over all devices and hosts",
    "bn_group_size": "images per BN statistics group (as one GPU's batch in the paper); 0 = whole batch",
    "steps": "SGD iterations",
    "lr": "learning rate",
    "lr_schedule": "plateau: /lr_decay when the validation error stops improving; fixed: at lr_boundaries",
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



def cifar_config(model: str = "cifar_resnet20") -> ml_collections.ConfigDict:
    """Sec 4.2: SGD 0.9, wd 1e-4, batch 128 (BN over 64 per GPU), lr 0.1 /10 at 32k and 48k, 64k steps."""
    try:
        _, _, depth = parse_model_name(model)
    except ValueError:
        depth = 0  # reported as one line by validate_config, not as a flag-parsing traceback
    c = ml_collections.ConfigDict()
    c.model = model
    c.shortcut = "A"
    c.dtype = "float32"

    c.dataset = "cifar10"
    c.data_dir = ml_collections.config_dict.placeholder(str)
    c.eval_split = "test"

    c.batch_size = 128
    c.bn_group_size = 64  # the paper: 128 on 2 GPUs
    c.steps = PAPER_CIFAR_STEPS
    c.lr = 0.1
    c.lr_boundaries = (0.5, 0.75)  # 32k and 48k of 64k
    c.lr_decay = 0.1
    c.momentum = 0.9
    c.momentum_form = "caffe"
    c.weight_decay = 1e-4
    c.warmup = depth >= 110  # ResNet-110/1202 (Sec 4.2)
    c.warmup_lr = 0.01
    c.warmup_until_error = 0.8
    c.warmup_error_ema = 0.9

    c.seed = 0
    c.num_seeds = 1
    c.seeds_mode = "loop"
    c.conv_impl = "xla"
    c.steps_per_call = 50
    c.scan_blocks = True
    c.scan_conv_impl = "auto"
    c.remat = "auto"
    c.log_every = 100
    c.eval_every = 1_000
    c.eval_batch_size = 1_000
    c.checkpoint_every = 4_000
    c.keep_checkpoints = 2
    c.progress = True
    return c


def scaled_steps(config: ml_collections.ConfigDict, steps: int) -> ml_collections.ConfigDict:
    """Shorter run with the schedule's shape (milestones are fractions of `steps`); log, eval and
    checkpoint intervals shrink with it."""
    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}")
    ratio = steps / config.steps
    config.steps = steps
    # at least every 10 steps for curves; checkpoints (not free on CPU) at least 100 apart
    for field, floor in (("log_every", 10), ("eval_every", 10), ("checkpoint_every", 100)):
        scaled = max(floor, round(getattr(config, field) * ratio))
        setattr(config, field, min(scaled, steps))
    return config


PAPER_IMAGENET_STEPS = 600_000  # "up to 60e4 iterations" = 120 epochs of 1.28M images at 256
IMAGENET_SCHEDULES = ("plateau", "fixed")


def imagenet_config(model: str = "imagenet_resnet34", schedule: str = "plateau",
                    shortcut: str = "B") -> ml_collections.ConfigDict:
    """Sec 3.4: batch 256 (BN over 32 per GPU of 8), SGD 0.9, wd 1e-4, lr 0.1 /10 on plateaus, 60e4 steps.

    schedule "plateau": lr /10 when the centre-crop validation error stops improving (the paper);
    "fixed": /10 at epochs 30, 60 and 90 of 120 (the usual reproducible stand-in).
    """
    if schedule not in IMAGENET_SCHEDULES:
        raise ValueError(f"unknown ImageNet schedule {schedule!r}: expected one of {IMAGENET_SCHEDULES}")
    parse_model_name(model)
    c = ml_collections.ConfigDict()
    c.model = model
    c.shortcut = shortcut  # Table 2 / Fig 4 use A
    c.stride_on_3x3 = False
    c.dtype = "float32"

    c.dataset = "imagenet"
    c.data_dir = ml_collections.config_dict.placeholder(str)
    c.eval_split = "validation"
    c.image_size = 224
    c.scale_range = (256, 480)
    c.eval_resize = 256
    c.test_scales = (224, 256, 384, 480, 640)
    c.pca_lighting = 0.1
    c.mean_images = 10_000
    c.mean_cache_dir = ml_collections.config_dict.placeholder(str)
    c.num_workers = 12
    c.max_eval_images = 0

    c.batch_size = 256
    c.bn_group_size = 32  # 8 GPUs x 32 images
    c.steps = PAPER_IMAGENET_STEPS
    c.lr = 0.1
    c.lr_decay = 0.1
    c.lr_schedule = schedule
    c.lr_boundaries = () if schedule == "plateau" else (0.25, 0.5, 0.75)  # epochs 30/60/90 of 120
    c.plateau_patience = 3
    c.plateau_min_delta = 0.001
    c.plateau_max_drops = 3  # 0.1 -> 1e-4 at most
    c.momentum = 0.9
    c.momentum_form = "caffe"
    c.weight_decay = 1e-4
    c.warmup = False
    c.warmup_lr = 0.1
    c.warmup_until_error = 1.0
    c.warmup_error_ema = 0.9

    c.seed = 0
    c.steps_per_call = 10
    c.scan_blocks = True
    c.scan_conv_impl = "auto"
    c.remat = "auto"
    c.log_every = 500
    c.eval_every = 5_000  # about one epoch (5,005 steps)
    c.eval_batch_size = 200  # divides 50,000 and 8 devices
    c.checkpoint_every = 5_000
    c.keep_checkpoints = 2
    c.progress = True
    return c


def imagenet_net_config(net: str, default_shortcut: str = "B") -> ml_collections.ConfigDict:
    """A net of the ImageNet tables by short name: `plain34`, `resnet50`, `resnet34_C`, `resnet50:fixed`.

    `_X` picks shortcut option X; a `:fixed` suffix the fixed 30/60/90-epoch schedule instead of the
    validation-plateau rule.
    """
    net, _, schedule = net.partition(":")
    kind_depth, _, shortcut = net.partition("_")
    return imagenet_config(f"imagenet_{kind_depth}", schedule or "plateau", shortcut or default_shortcut)
