"""The ImageNet transforms' backend is a named config field, `image_backend`: "auto" is resolved
once when a run starts and recorded (config.json, the checkpoints' identity), every transform the
run builds gets it, and a resume or test that would switch it stops with one line. No JAX compiles:
the device steps are stubbed where a path would reach them."""

from __future__ import annotations

import types

import numpy as np
import pytest
from imagenet_fakes import fake_records

from resnet_jax import configs
from resnet_jax.configs import ConfigError, cifar_config, imagenet_config
from resnet_jax.data import imagenet, open_dataset
from resnet_jax.data import imagenet_transforms as T
from resnet_jax.train import checkpoint, feeds, imagenet_eval, loop
from resnet_jax.train.engine import create_engine, make_mesh

FAST_HINT = "pip install 'resnet-jax[fast]'"


@pytest.fixture
def records(monkeypatch):
    splits = {"train": fake_records(8, seed=0), "validation": fake_records(4, seed=1)}
    monkeypatch.setattr(imagenet, "open_split", lambda split, data_dir: splits[split])
    return splits


def small_config(**overrides):
    c = imagenet_config("imagenet_resnet18", schedule="fixed")
    configs.override(c, image_size=32, scale_range=(36, 48), eval_resize=36, test_scales=(32, 40),
                        mean_images=8, num_workers=0, batch_size=4, bn_group_size=0, eval_batch_size=4,
                        steps=4, steps_per_call=1, log_every=2, eval_every=4, checkpoint_every=4,
                        progress=False)
    configs.override(c, **overrides)
    return c


def test_auto_is_what_imports_and_fast_without_its_packages_is_one_line(no_fast_backend, monkeypatch):
    config = small_config()
    assert configs.resolve_image_backend(config) == "pil"
    config.data.image_backend = "fast"
    with pytest.raises(ConfigError) as error:
        configs.resolve_image_backend(config)
    message = str(error.value)
    assert FAST_HINT in message and "image_backend=pil" in message and "\n" not in message
    monkeypatch.setattr(T, "simplejpeg", object())  # (only whether it imported is asked)
    config.data.image_backend = "auto"
    assert configs.resolve_image_backend(config) == "fast"


def test_a_run_records_what_auto_resolved_to(no_fast_backend, monkeypatch, tmp_path):
    started = []
    monkeypatch.setattr(loop, "_train_and_evaluate",
                        lambda config, workdir, dataset, init: started.append(config))
    monkeypatch.setattr(loop, "open_dataset", lambda *args: types.SimpleNamespace(train_images=range(10**6)))
    config = small_config()
    loop.train_and_evaluate(config, str(tmp_path / "run"))
    assert started[0].data.image_backend == "pil" and config.data.image_backend == "auto"  # the caller's kept
    assert loop.run_identity(started[0])["image_backend"] == "pil"  # what the checkpoints carry
    assert "image_backend" not in loop.run_identity(cifar_config())  # not read there, not compared

    # fast named where it cannot run: one line, before the workdir exists
    with pytest.raises(ConfigError, match=r"pip install 'resnet-jax\[fast\]'"):
        loop.train_and_evaluate(small_config(image_backend="fast"), str(tmp_path / "fast"))
    assert len(started) == 1 and not (tmp_path / "fast").exists()


def test_a_fast_run_resumed_where_fast_cannot_run_stops_in_one_line(no_fast_backend):
    """Its checkpoints say fast; "auto" here is pil: resuming would change every crop's pixels."""
    here = small_config()
    here.data.image_backend = configs.resolve_image_backend(here)
    saved = {**loop.run_identity(here), "image_backend": "fast"}
    with pytest.raises(checkpoint.CheckpointError) as error:
        checkpoint._check_identity(saved, loop.run_identity(here), "W/checkpoints/4")
    message = str(error.value)
    assert "image_backend='fast', not 'pil'" in message and FAST_HINT in message
    assert "\n" not in message
    # a checkpoint from before the field: its images went through Pillow, so pil resumes it
    old = {k: v for k, v in saved.items() if k != "image_backend"}
    checkpoint._check_identity(old, loop.run_identity(here), "W/checkpoints/4")


def _record_backends(monkeypatch, module, names, seen):
    for name in names:
        cls = getattr(T, name)

        def make(*args, _cls=cls, **kwargs):
            transform = _cls(*args, **kwargs)
            seen.append((_cls.__name__, transform.backend))
            return transform

        monkeypatch.setattr(module, name, make)


def test_every_transform_a_run_builds_gets_its_backend(records, monkeypatch, tmp_path):
    """The host feed's mean, training batches and validation, and the 10-crop and multi-scale
    tests, each build their transform with the run's image_backend, not the machine's default."""
    monkeypatch.setattr(T, "default_backend", lambda: "fast")  # what a transform left unset gets
    seen = []
    _record_backends(monkeypatch, imagenet, ["TrainTransform", "CenterCrop"], seen)
    _record_backends(monkeypatch, imagenet_eval, ["CenterCrop", "TenCrop", "MultiScale"], seen)
    # the device side stubbed: no compiles (the images are still decoded and resampled)
    monkeypatch.setattr(feeds, "train_on_batches", _stop)
    monkeypatch.setattr(imagenet_eval, "evaluate_batches", lambda *args: {})
    monkeypatch.setattr(imagenet_eval, "view_scores",
                        lambda model, variables, images, mean: np.zeros((len(images), 4), np.float32))
    monkeypatch.setattr(imagenet_eval, "error_sums", lambda scores, labels, mask: dict.fromkeys(
        ("count", "top1", "top5", "loss"), 0.0))

    config = small_config(image_backend="pil")
    engine = create_engine(config, 0, imagenet.NUM_CLASSES, mesh=make_mesh())
    dataset = open_dataset("imagenet", config.data.eval_split, None, config.data.image_size)
    feed = feeds.HostFeed(engine, dataset, str(tmp_path))
    with pytest.raises(_Stopped):
        feed.train_chunk(types.SimpleNamespace(step=np.int32(0), seed=np.int32(0)), 1)
    feed.evaluate(types.SimpleNamespace(params={}, batch_stats={}))
    for mode in ("ten_crop", "multi_scale"):
        imagenet_eval.evaluate(mode, engine.model, {}, records["validation"], feed.pixel_mean,
                               engine.mesh, batch_size=4, crop_size=32, resize=36, scales=(32, 40),
                               backend=config.data.image_backend)
    assert seen == [("CenterCrop", "pil"), ("TrainTransform", "pil"), ("CenterCrop", "pil"),
                    ("TenCrop", "pil"), ("MultiScale", "pil")]
    assert list(tmp_path.glob("imagenet2012_mean_32_36_8_8.npy"))  # pil's cache name


class _Stopped(Exception):
    pass


def _stop(*args):
    raise _Stopped


def test_the_mean_cache_is_per_backend(no_fast_backend, tmp_path):
    """A "pil" mean keeps the name Pillow-only releases gave it; a "fast" one is cached apart and
    read back even where fast cannot recompute it."""
    train = fake_records(4, seed=0)
    kw = {"crop_size": 32, "resize": 36, "num_images": 4, "cache_dir": str(tmp_path)}
    pil = imagenet.mean_image(train, backend="pil", **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imagenet2012_mean_32_36_4_4.npy"]
    with pytest.raises(ValueError, match=r"pip install 'resnet-jax\[fast\]'"):
        imagenet.mean_image(train, backend="fast", **kw)
    np.save(tmp_path / "imagenet2012_mean_32_36_4_4_fast.npy", pil + 1)  # as a fast machine wrote
    np.testing.assert_array_equal(imagenet.mean_image(train, backend="fast", **kw), pil + 1)
    np.testing.assert_array_equal(imagenet.mean_image(train, **kw), pil)  # auto is pil here
