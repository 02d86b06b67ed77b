"""One config schema: every field in every recipe, every check in configs.validate, and run folders
written by earlier releases (config.json without the newer fields) read back as they meant."""

import json
import subprocess
import sys

import pytest

from resnet_jax import configs
from resnet_jax.configs import ConfigError, base_config, cifar_config, from_saved, imagenet_config, validate

# config.json of a CIFAR run as the first release wrote it: no momentum_form (optax's was the only
# form), num_seeds, seeds_mode, conv_impl, scan_blocks, scan_conv_impl, remat, nor ImageNet fields.
OLD_CIFAR = {
    "model": "cifar_resnet20", "shortcut": "A", "dtype": "float32", "dataset": "cifar10",
    "data_dir": None, "eval_split": "test", "batch_size": 128, "bn_group_size": 64, "steps": 64000,
    "lr": 0.1, "lr_boundaries": [0.5, 0.75], "lr_decay": 0.1, "momentum": 0.9, "weight_decay": 0.0001,
    "warmup": False, "warmup_lr": 0.01, "warmup_until_error": 0.8, "warmup_error_ema": 0.9, "seed": 3,
    "steps_per_call": 50, "log_every": 100, "eval_every": 1000, "eval_batch_size": 1000,
    "checkpoint_every": 4000, "keep_checkpoints": 2, "progress": True,
}
# config.json of an ImageNet run before several seeds, Caffe momentum and scanned blocks.
OLD_IMAGENET = {
    "model": "imagenet_resnet34", "shortcut": "A", "stride_on_3x3": False, "dtype": "float32",
    "dataset": "imagenet", "data_dir": "/data/tfds", "eval_split": "validation", "image_size": 224,
    "scale_range": [256, 480], "eval_resize": 256, "test_scales": [224, 256, 384, 480, 640],
    "pca_lighting": 0.1, "mean_images": 10000, "mean_cache_dir": None, "num_workers": 12,
    "max_eval_images": 0, "batch_size": 256, "bn_group_size": 32, "steps": 600000, "lr": 0.1,
    "lr_decay": 0.1, "lr_schedule": "fixed", "lr_boundaries": [0.25, 0.5, 0.75], "plateau_patience": 3,
    "plateau_min_delta": 0.001, "plateau_max_drops": 3, "momentum": 0.9, "weight_decay": 0.0001,
    "warmup": False, "warmup_lr": 0.1, "warmup_until_error": 1.0, "warmup_error_ema": 0.9, "seed": 0,
    "steps_per_call": 10, "log_every": 500, "eval_every": 5000, "eval_batch_size": 200,
    "checkpoint_every": 5000, "keep_checkpoints": 2, "progress": True,
}


def test_every_recipe_has_every_field_in_its_section_and_each_field_a_meaning():
    base = base_config()
    assert set(base) == set(configs.SECTIONS)
    for config in (cifar_config("cifar_resnet110"), imagenet_config("imagenet_resnet50", "fixed"),
                   imagenet_config("imagenet_plain18", "plateau", "A")):
        assert config.to_dict().keys() == base.to_dict().keys()
        for section in configs.SECTIONS:
            assert set(config[section]) == set(base[section])
        assert set(configs.flat_items(config)) == set(configs.FIELDS)
    assert all(f.doc and "\n" not in f.doc for f in configs.FIELDS.values())
    assert sum(len(base[s]) for s in configs.SECTIONS) == len(configs.FIELDS)  # flat names unique


def test_recipes_validate_and_a_bare_base_does_not():
    validate(cifar_config("cifar_resnet1202"), num_devices=8)
    validate(imagenet_config("imagenet_resnet152"), num_devices=8)
    with pytest.raises(ConfigError, match="unknown model ''"):
        validate(base_config())


@pytest.mark.parametrize("saved", [OLD_CIFAR, OLD_IMAGENET], ids=["cifar", "imagenet"])
def test_old_config_json_reads_as_its_release_meant(saved, tmp_path):
    config = from_saved(json.loads(json.dumps(saved)))
    for field, value in saved.items():
        assert configs.get(config, field) == (tuple(value) if isinstance(value, list) else value), field
    # absent: what that release did (optax momentum, one seed) or today's speed choices
    assert config.optim.momentum_form == "optax" and config.run.num_seeds == 1
    assert (config.run.seeds_mode, config.model.conv_impl, config.model.scan_blocks) == ("loop", "xla", True)
    assert (config.model.scan_conv_impl, config.model.remat) == ("auto", "auto")
    if saved is OLD_CIFAR:  # step decay at lr_boundaries; ImageNet's pipeline fields stay neutral
        assert config.optim.lr_schedule == "fixed"
        assert config.data.image_size == 0 and config.data.test_scales == ()
    # ImageNet images went through Pillow before image_backend existed; CIFAR never reads it
    assert config.data.image_backend == ("pil" if saved is OLD_IMAGENET else "auto")
    validate(config, num_devices=8)

    from resnet_jax.analysis.load import read_config  # noqa: PLC0415 (the run-folder reader uses it)

    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert read_config(str(tmp_path)).to_dict() == config.to_dict()


def test_from_saved_rejects_what_no_release_wrote():
    with pytest.raises(ConfigError, match="unknown config fields colour"):
        from_saved({**OLD_CIFAR, "colour": "red"})
    with pytest.raises(ConfigError, match="no valid model"):
        from_saved({"dataset": "cifar10"})


@pytest.mark.parametrize("overrides,match", [
    ({"lr_schedule": "plateau"}, "lr_schedule 'plateau' is the ImageNet pipeline's"),
    ({"lr_schedule": "cosine"}, "unknown lr_schedule 'cosine'"),
    ({"image_size": 64, "pca_lighting": 0.1}, "image_size, pca_lighting: ImageNet pipeline settings"),
    ({"image_backend": "pil"}, "image_backend: ImageNet pipeline settings"),
    ({"image_backend": "cv2"}, "unknown image_backend 'cv2': expected one of auto, fast, pil"),
    ({"remat": "all"}, "unknown remat 'all'"),
    ({"scan_conv_impl": "fft"}, "unknown scan_conv_impl 'fft'"),
    ({"dtype": "float16"}, "unknown dtype 'float16'"),
    ({"stride_on_3x3": True}, "stride_on_3x3"),
    ({"keep_checkpoints": 0}, "keep_checkpoints must be positive"),
    ({"bn_group_size": -1}, "bn_group_size must be >= 0"),
])
def test_each_check_rejects_a_cifar_config(overrides, match):
    config = cifar_config()
    configs.override(config, **overrides)
    with pytest.raises(ConfigError, match=match):
        validate(config, num_devices=1)


def test_imagenet_checks():
    config = imagenet_config("imagenet_resnet18")
    config.data.image_backend = "opencv"
    with pytest.raises(ConfigError,
                       match="^unknown image_backend 'opencv': expected one of auto, fast, pil$"):
        validate(config, num_devices=1)
    config = imagenet_config("imagenet_resnet18")
    config.model.conv_impl = "im2col"
    with pytest.raises(ConfigError, match="im2col"):
        validate(config, num_devices=1)
    config = imagenet_config("imagenet_resnet18")
    config.run.num_seeds = 2
    with pytest.raises(ConfigError, match="device-resident dataset"):
        validate(config, num_devices=1)


def test_a_field_set_outside_its_section_is_named():
    """An experiment file written for the flat config (setting `lr` on the config itself) adds a
    stray key."""
    config = cifar_config()
    setattr(config, "lr", 0.05)  # noqa: B010 (spelled so: rewrite_config.py nests attribute accesses)
    with pytest.raises(ConfigError, match="unknown config fields lr: each field lives in its section"):
        validate(config, num_devices=1)
    config = cifar_config()
    config.optim.lrr = 0.05
    with pytest.raises(ConfigError, match="unknown config fields optim.lrr"):
        configs.check_fields(config)


def test_nested_config_json_reads_back_and_what_no_release_wrote_is_refused():
    config = cifar_config("cifar_resnet56")
    configs.override(config, lr=0.05, dataset="digits", remat="block")
    assert from_saved(json.loads(config.to_json())).to_dict() == config.to_dict()
    with pytest.raises(ConfigError, match="unknown config fields optim.colour"):
        from_saved({**json.loads(config.to_json()), "optim": {"colour": "red"}})
    with pytest.raises(ValueError, match="unknown config field 'lrr'; did you mean 'lr'"):
        configs.override(config, lrr=0.1)


def test_schema_choices_are_the_models_options():
    """The model section is checked from the schema before flax loads; its choices must be the
    ones create_model accepts."""
    from resnet_jax.models import DTYPES, layers  # noqa: PLC0415
    from resnet_jax.models.inputs import INPUT_CONVENTIONS  # noqa: PLC0415

    fields = configs.FIELDS
    assert set(fields["shortcut"].choices) == set(layers.SHORTCUT_OPTIONS)
    assert set(fields["conv_impl"].choices) == set(layers.CONV_IMPLS)
    assert set(fields["scan_conv_impl"].choices) == {"auto", *layers.CONV_IMPLS}
    assert set(fields["remat"].choices) == {"auto", *layers.REMAT_OPTIONS}
    assert set(fields["dtype"].choices) == set(DTYPES)
    assert set(fields["input_convention"].choices) == set(INPUT_CONVENTIONS)


def test_checking_a_config_imports_no_jax():
    """Every mistake `check_fields` finds is reported before JAX (or flax) is imported."""
    code = ("import sys\nfrom resnet_jax import configs\nc = configs.cifar_config()\nc.optim.lr = -1.0\n"
            "try:\n    configs.check_fields(c)\nexcept configs.ConfigError as e:\n    print(e)\n"
            "print(sorted(m for m in ('jax', 'flax', 'optax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.splitlines() == ["lr must be positive, got -1.0", "[]"], out.stderr


def test_auto_is_resolved_once_for_the_platform_and_the_engine_builds_that():
    from resnet_jax.train.engine import create_engine  # noqa: PLC0415

    config = cifar_config("cifar_resnet8")
    cpu, gpu = configs.resolve(config, "cpu"), configs.resolve(config, "gpu")
    assert (cpu.model.scan_conv_impl, cpu.model.remat) == ("im2col", "block")
    assert (gpu.model.scan_conv_impl, gpu.model.remat) == ("xla", "none")
    assert config.model.remat == "auto"  # a copy: the caller's config is untouched
    assert configs.resolve(cpu, "gpu").to_dict() == cpu.to_dict()  # a recorded choice stays
    engine = create_engine(config, 0, 10)  # tests run on CPU
    assert (engine.model.scan_conv_impl, engine.model.remat) == ("im2col", "block")
    assert engine.config.to_dict() == cpu.to_dict()
    with pytest.raises(ValueError, match="resolve"):
        configs.build_model(config)


def test_steps_keeps_typed_intervals():
    config = configs.scaled_steps(cifar_config(), 600, keep=("eval_every", "checkpoint_every"))
    assert (config.run.steps, config.run.eval_every, config.run.checkpoint_every) == (600, 1_000, 4_000)
    assert config.run.log_every == 10  # derived: 100 * 600/64000, at least 10


def test_resume_changes_name_fields_that_change_results_only():
    saved, config = cifar_config(), cifar_config()
    configs.override(config, lr=0.05, progress=False, keep_checkpoints=5, log_every=7, steps=100)
    assert configs.resume_changes(saved, config) == ["lr 0.1 -> 0.05"]
