"""One config schema: every field in every recipe, every check in configs.validate, and run folders
written by earlier releases (config.json without the newer fields) read back as they meant."""

import json

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


def test_every_recipe_has_every_field_and_each_field_a_meaning():
    fields = list(base_config())
    for config in (cifar_config("cifar_resnet110"), imagenet_config("imagenet_resnet50", "fixed"),
                   imagenet_config("imagenet_plain18", "plateau", "A")):
        assert list(config) == fields
    assert set(fields) == set(configs.FIELD_DOCS)


def test_recipes_validate_and_a_bare_base_does_not():
    validate(cifar_config("cifar_resnet1202"), num_devices=8)
    validate(imagenet_config("imagenet_resnet152"), num_devices=8)
    with pytest.raises(ConfigError, match="unknown model ''"):
        validate(base_config())


@pytest.mark.parametrize("saved", [OLD_CIFAR, OLD_IMAGENET], ids=["cifar", "imagenet"])
def test_old_config_json_reads_as_its_release_meant(saved, tmp_path):
    config = from_saved(json.loads(json.dumps(saved)))
    for field, value in saved.items():
        assert config[field] == (tuple(value) if isinstance(value, list) else value), field
    # absent: what that release did (optax momentum, one seed) or today's speed choices
    assert config.momentum_form == "optax" and config.num_seeds == 1
    assert (config.seeds_mode, config.conv_impl, config.scan_blocks, config.scan_conv_impl,
            config.remat) == ("loop", "xla", True, "auto", "auto")
    if saved is OLD_CIFAR:  # step decay at lr_boundaries; ImageNet's pipeline fields stay neutral
        assert config.lr_schedule == "fixed" and config.image_size == 0 and config.test_scales == ()
    # ImageNet images went through Pillow before image_backend existed; CIFAR never reads it
    assert config.image_backend == ("pil" if saved is OLD_IMAGENET else "auto")
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
    config.update(overrides)
    with pytest.raises(ConfigError, match=match):
        validate(config, num_devices=1)


def test_imagenet_checks():
    config = imagenet_config("imagenet_resnet18")
    config.image_backend = "opencv"
    with pytest.raises(ConfigError,
                       match="^unknown image_backend 'opencv': expected one of auto, fast, pil$"):
        validate(config, num_devices=1)
    config = imagenet_config("imagenet_resnet18")
    config.conv_impl = "im2col"
    with pytest.raises(ConfigError, match="im2col"):
        validate(config, num_devices=1)
    config = imagenet_config("imagenet_resnet18")
    config.num_seeds = 2
    with pytest.raises(ConfigError, match="device-resident dataset"):
        validate(config, num_devices=1)
