"""Every config field, once: its section, default, meaning, check, and what runs of older releases
meant by its absence.

A run's config is a nested ml_collections ConfigDict with four sections, `model` (the net: its
options are `create_model`'s keywords), `data`, `optim` and `run`. Each field also has a flat name,
unique over all sections (`lr` is `optim.lr`; `model` is `model.name`, `dataset` `data.name`): the
command line takes either (`--config.lr` or `--config.optim.lr`), `configs.override` takes flat
names, and checkpoints carry their identity by flat names, as every release so far wrote them.
`base_config()`, `--help`, the host-fed fields, the legacy defaults, the checkpoint identity and
the fields a resume may change are all read off `FIELDS`. Imports nothing heavy (no JAX), so a
mistake on the command line is reported before JAX loads.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
from typing import Any, Callable

import ml_collections

SECTIONS = ("model", "data", "optim", "run")
_ABSENT = object()  # Field.legacy: the field's absence meant the recipe's value


class ConfigError(ValueError):
    """An invalid configuration, reported before anything is written."""


def positive(value) -> str | None:
    return None if value > 0 else "must be positive"


def non_negative(value) -> str | None:
    return None if value >= 0 else "must be >= 0"


def _zoom_problem(value) -> str | None:
    ok = (len(value) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
          and 0 < value[0] <= value[1])
    return None if ok else "must be (min, max) with 0 < min <= max"


@dataclasses.dataclass(frozen=True)
class Field:
    """One config field. `type` where `default` is None (a placeholder); `choices` the values it
    takes; `check(value)` a problem in words or None; `legacy` what a config.json or checkpoint
    written before the field existed meant by its absence, where that is not the recipe's value;
    `identity`: a checkpoint carries it and a resume must match it; `host_fed`: only the ImageNet
    pipeline reads it; `resume="free"`: a resumed run may change it (it cannot change the trained
    weights); `name`: the name within the section, where it differs from the flat name."""
    section: str
    default: Any
    doc: str
    type: type | None = None
    choices: tuple = ()
    check: Callable[[Any], str | None] | None = None
    legacy: Any = _ABSENT
    identity: bool = False
    host_fed: bool = False
    resume: str = "fixed"
    name: str = ""

    @property
    def value_type(self) -> type:
        return self.type or type(self.default)


def _f(section, default, doc, **kw) -> Field:
    return Field(section, default, doc, **kw)


_FREE = {"resume": "free"}
FIELDS: dict[str, Field] = {
    # model: create_model's keywords (`configs.build_model`)
    "model": _f("model", "", "net: cifar_resnetN / cifar_plainN (N = 6n+2), imagenet_resnetN / "
                "imagenet_plainN", name="name", identity=True),
    "shortcut": _f("model", "", "A: zero-padding identity shortcuts; B: projections on dimension changes; "
                   "C: all projections (ImageNet)", choices=("A", "B", "C"), identity=True),
    "stride_on_3x3": _f("model", False, 'True = "v1.5" bottlenecks, stride on the 3x3 conv (not the '
                        "paper's model)"),
    "input_convention": _f("model", "paper", "what the first conv expects of the RGB input image/255 - "
                           "mean: paper (as is), caffe (x255, BGR: the authors' released models), "
                           "torchvision (/ per-channel std); set by `resnet-jax import`",
                           choices=("paper", "caffe", "torchvision")),
    "input_std": _f("model", (), "torchvision convention: the per-channel std (R, G, B) the input is divided "
                    "by, if not ImageNet's (CIFAR nets trained in PyTorch: their dataset's); (): the "
                    "convention's own; set by `resnet-jax import`"),
    "zero_pad": _f("model", "after", "option A: where the zero channels go, after the identity's (ours) or "
                   "half on each side (both: akamaster's CIFAR ResNets); set by `resnet-jax import`",
                   choices=("after", "both")),
    "conv1_bias": _f("model", False, "conv1 has a bias (the authors' Caffe models; redundant before BN)"),
    "pool_ceil_mode": _f("model", False, "pool1 as Caffe's: no padding, ceil-mode output size (the "
                         "authors' Caffe models)"),
    "dtype": _f("model", "float32", "compute dtype, float32 or bfloat16 (params, BN statistics and loss "
                "stay float32)", choices=("float32", "bfloat16")),
    "bn_group_size": _f("model", 0, "images per BN statistics group (as one GPU's batch in the paper); "
                        "0 = whole batch", check=non_negative, identity=True),
    "conv_impl": _f("model", "xla", "xla, or im2col: convs as patch matmuls (same math; a speed choice "
                    "for seeds_mode=vmap)", choices=("xla", "im2col"), **_FREE),
    "scan_blocks": _f("model", True, "blocks 2..n of each stage under one nn.scan (compile time and "
                      "memory independent of depth); False unrolls them. Same function and checkpoints "
                      "either way", **_FREE),
    "scan_conv_impl": _f("model", "auto", "conv_impl inside the scanned blocks; auto: im2col on CPU "
                         "(XLA:CPU runs convs inside a loop several times slower than matmuls), "
                         "conv_impl elsewhere; a run records what auto resolved to",
                         choices=("auto", "xla", "im2col"), **_FREE),
    "remat": _f("model", "auto", "block: each block's activations recomputed in the backward pass "
                "instead of stored; auto: block on CPU (faster and leaner there), none on "
                "accelerators; a run records what auto resolved to", choices=("auto", "none", "block"),
                **_FREE),
    # data
    "dataset": _f("data", "", "cifar10 (archive or tfds), digits (offline, scikit-learn; digits32/"
                  "digits64: resized), synthetic (benchmarks), imagenet", name="name", identity=True),
    "data_dir": _f("data", None, "cifar10: cifar-10-*.tar.gz, its extracted folder or a tfds data_dir; "
                   "imagenet: a folder of train/ + val/, of the ILSVRC2012 tars, or a tfds data_dir; "
                   "unset: ~/tensorflow_datasets", type=str, **_FREE),
    "eval_split": _f("data", "", 'CIFAR "test", or "val": train on 45k, evaluate on 5k held out; '
                     'ImageNet "validation"'),
    "image_size": _f("data", 0, "training crop and centre-crop test size", host_fed=True),
    "scale_range": _f("data", (), "shorter side drawn uniformly from this range (scale augmentation)",
                      host_fed=True),
    "eval_resize": _f("data", 0, "shorter side before the centre crop / 10 crops", host_fed=True),
    "test_scales": _f("data", (), "shorter sides of the fully-convolutional multi-scale test",
                      host_fed=True),
    "pca_lighting": _f("data", 0.0, "std of the AlexNet PCA colour noise coefficients", host_fed=True),
    "mean_images": _f("data", 0, "training images averaged for the cached per-pixel mean", host_fed=True),
    "mean_cache_dir": _f("data", None, "where the per-pixel mean is cached; unset: data_dir, else the "
                         "workdir", type=str, host_fed=True, **_FREE),
    # A run that read images before this field existed decoded them with Pillow.
    "image_backend": _f("data", "auto", "host decode + resampling: fast (simplejpeg + OpenCV bilinear, no "
                        "antialiasing when shrinking; the `fast` extra), pil (Pillow, the reference's "
                        "filter), or auto: fast where it imports, else pil; a run records what auto "
                        "resolved to", choices=("auto", "fast", "pil"), legacy="pil", identity=True,
                        host_fed=True),
    "num_workers": _f("data", 0, "grain decoding processes per host; -1: one per core, less one for "
                      "training", check=lambda v: None if v >= -1 else "must be >= 0, or -1 for one per core",
                      host_fed=True, **_FREE),
    "max_eval_images": _f("data", 0, ">0: periodic validation on the first N images only (faster curves)",
                          check=non_negative, host_fed=True),
    # Not the paper's (the explainer article's recipe): off by default, and off draws nothing.
    "zoom_range": _f("data", (1.0, 1.0), "device-resident data: zoom factor per image, uniform in "
                     "[min, max), bilinear about the centre, zeros (the mean pixel) outside; (1, 1) = "
                     "off, the paper", check=_zoom_problem),
    "rotation_degrees": _f("data", 0.0, "device-resident data: rotation per image, uniform in [-d, d) "
                           "degrees about the centre, bilinear, zeros outside; 0 = off, the paper",
                           check=lambda v: None if 0 <= v <= 180 else "must be in [0, 180]"),
    # optim
    "lr": _f("optim", 0.1, "learning rate", check=positive),
    "lr_schedule": _f("optim", "fixed", "fixed: lr drops at lr_boundaries; plateau (ImageNet): "
                      "/lr_decay when the validation error stops improving", choices=("fixed", "plateau")),
    "lr_boundaries": _f("optim", (), "lr drops at these fractions of steps"),
    "lr_decay": _f("optim", 0.1, "lr factor at each drop", check=positive),
    "plateau_patience": _f("optim", 0, "evaluations without a better validation error before an lr drop",
                           check=non_negative, host_fed=True),
    "plateau_min_delta": _f("optim", 0.0, "smaller validation error improvements do not count",
                            check=non_negative, host_fed=True),
    "plateau_max_drops": _f("optim", 0, "lr drops at most", check=non_negative, host_fed=True),
    "momentum": _f("optim", 0.9, "SGD momentum", check=non_negative),
    # Before the Caffe form existed, optax's was the only one.
    "momentum_form": _f("optim", "caffe", "caffe: v = m*v + lr*g, w -= v (the paper's); optax: "
                        "v = m*v + g, w -= lr*v", choices=("caffe", "optax"), legacy="optax", identity=True),
    "nesterov": _f("optim", False, "Nesterov momentum: the step adds m*v once more (w -= m*v + lr*g in the "
                   "caffe form, Caffe's NesterovSolver); False: the paper's plain momentum"),
    "weight_decay": _f("optim", 1e-4, "L2 penalty on all parameters", check=non_negative),
    "warmup": _f("optim", False, "train at warmup_lr until the training error is below "
                 "warmup_until_error (on for ResNet-110/1202)"),
    "warmup_lr": _f("optim", 0.0, "learning rate of the warm-up", check=non_negative),
    "warmup_steps": _f("optim", 0, ">0: train at warmup_lr for exactly these first steps (the follow-up "
                       "paper's 400 iterations); with warmup also on, the lr is warmup_lr until both have "
                       "ended", check=non_negative),
    "warmup_until_error": _f("optim", 1.0, "training error that ends the warm-up"),
    "warmup_error_ema": _f("optim", 0.9, "decay of the training error's moving average over batches "
                           "(decided on device)"),
    # run
    # A resume may change the length (documented: the lr milestones, fractions of steps, move).
    "steps": _f("run", 0, "SGD iterations", check=positive, **_FREE),
    "batch_size": _f("run", 0, "global batch, over all devices and hosts", check=positive, identity=True),
    "eval_batch_size": _f("run", 0, "images per evaluation batch (x10 views for 10-crop)", check=positive,
                          **_FREE),
    "seed": _f("run", 0, "random seed of init, data order and augmentation", identity=True),
    # Before several seeds per run existed, a run trained one.
    "num_seeds": _f("run", 1, ">1: seeds seed..seed+num_seeds-1 trained together, each logged in "
                    "workdir/seed{s}/", check=positive, legacy=1, identity=True),
    "seeds_mode": _f("run", "loop", "how several seeds run: loop, vmap or devices (a seed mesh axis)",
                     choices=("loop", "vmap", "devices"), **_FREE),
    "steps_per_call": _f("run", 0, "steps fused in one jit call (lax.scan; host-fed data: batches "
                         "stacked per call)", check=positive, **_FREE),
    "log_every": _f("run", 0, "steps between metrics.jsonl records", check=positive, **_FREE),
    # Free as steps is (`--steps N` scales it): it decides when the run is tested, and only under
    # lr_schedule "plateau" what it trains.
    "eval_every": _f("run", 0, "steps between evaluations", check=positive, **_FREE),
    "checkpoint_every": _f("run", 0, "steps between checkpoints", check=positive, **_FREE),
    "keep_checkpoints": _f("run", 2, "newest checkpoints kept", check=positive, **_FREE),
    "progress": _f("run", True, "show a progress bar in a terminal (false: one line per log interval "
                   "instead)", **_FREE),
    "init_from": _f("run", "", "start training from these weights: a run folder or a released model's "
                    "file (.caffemodel, .safetensors, .pth); a new fc when the class count differs"),
    "imported_from": _f("run", "", "provenance of imported weights (format, file, SHA-256); empty for "
                        "nets trained here"),
}

# Derived views of FIELDS.
PATHS = {flat: f"{f.section}.{f.name or flat}" for flat, f in FIELDS.items()}  # flat -> section.name
FLAT = {path: flat for flat, path in PATHS.items()}  # section.name -> flat
HOST_FED_FIELDS = tuple(flat for flat, f in FIELDS.items() if f.host_fed)
IDENTITY_FIELDS = tuple(flat for flat, f in FIELDS.items() if f.identity)
LEGACY_DEFAULTS = {flat: f.legacy for flat, f in FIELDS.items() if f.legacy is not _ABSENT}
RESUME_FREE = tuple(flat for flat, f in FIELDS.items() if f.resume == "free")


def base_config() -> ml_collections.ConfigDict:
    """Every field, in its section, with its schema default; the fields a recipe sets are empty
    here (a bare base config does not validate), and the ImageNet pipeline's are neutral."""
    c = ml_collections.ConfigDict({s: ml_collections.ConfigDict() for s in SECTIONS})
    for flat, f in FIELDS.items():
        c[f.section][f.name or flat] = (ml_collections.config_dict.placeholder(f.type)
                                        if f.default is None else f.default)
    return c


def get(config, flat: str):
    """The value of the field named `flat` in a nested config."""
    f = FIELDS[flat]
    return config[f.section][f.name or flat]


def put(config, flat: str, value) -> None:
    """Set the field named `flat` in a nested config."""
    f = FIELDS[flat]
    config[f.section][f.name or flat] = value


def flat_items(config) -> dict:
    """{flat name: value} of every field of a nested config."""
    return {flat: get(config, flat) for flat in FIELDS}


def lookup(name: str) -> str | None:
    """The flat name of a field given by its flat name or its `section.name`; None if neither."""
    return name if name in FIELDS else FLAT.get(name)


def suggest(name: str) -> str | None:
    """The field name closest to an unknown `name` (flat or section.name), for "did you mean"."""
    close = difflib.get_close_matches(name, [*FIELDS, *FLAT], n=1)
    return close[0] if close else None


def unknown_field(name: str) -> ValueError:
    """The error for a `name` no field has, with the closest one."""
    close = suggest(name)
    return ValueError(f"unknown config field {name!r}" + (f"; did you mean {close!r}?" if close else ""))


def field_problem(flat: str, value) -> str | None:
    """What is wrong with `value` for the field `flat` (its type, choices, check) in one sentence
    naming the field, or None."""
    f = FIELDS[flat]
    kind = f.value_type
    if value is None and f.default is None:
        return None
    expected = {bool: "True or False", int: "an integer", float: "a number", str: "a string",
                tuple: "a tuple, e.g. (0.5, 0.75)"}[kind]
    wrong_number = kind in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))
                                             or (kind is int and not isinstance(value, int)))
    if (wrong_number or (kind is bool and not isinstance(value, bool))
            or (kind is str and not isinstance(value, str))
            or (kind is tuple and not isinstance(value, (tuple, list)))):
        return f"{flat} must be {expected}, got {value!r}"
    if f.choices and value not in f.choices:
        return f"unknown {flat} {value!r}: expected one of {', '.join(map(str, f.choices))}"
    problem = f.check(value) if f.check else None
    return f"{flat} {problem}, got {value!r}" if problem else None


_TRUE, _FALSE = ("true", "t", "1", "yes"), ("false", "f", "0", "no")
_EXPECTS = {bool: "true or false", int: "an integer", float: "a number",
            tuple: "a tuple, e.g. (0.5,0.75)", str: "a string"}


def parse_value(flat: str, text: str):
    """A command-line value for the field `flat`, as its type reads it; ValueError saying what the
    field expects."""
    f = FIELDS[flat]
    kind = f.value_type
    try:
        if kind is bool:
            if text.lower() not in (*_TRUE, *_FALSE):
                raise ValueError
            value = text.lower() in _TRUE
        elif kind is tuple:
            value = ast.literal_eval(text) if text.strip() else ()
            value = tuple(value) if isinstance(value, (tuple, list)) else (value,)
        else:
            value = kind(text)
    except (ValueError, SyntaxError):
        default = "" if f.default in ("", None) else f" (default {f.default!r})"
        raise ValueError(f"{flat} expects {_EXPECTS[kind]}{default}") from None
    if problem := field_problem(flat, value):
        raise ValueError(problem)
    return value
