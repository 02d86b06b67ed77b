import os
import sys
import tempfile

import pytest
from resnet_jax import configs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Compilation dominates the suite on CPU and many tests (and their subprocesses) compile the same
# tiny programs: share XLA executables through JAX's persistent cache. Set before jax is imported;
# subprocesses inherit it. The cache is keyed on the program, flags and versions, so it is safe.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), f"resnet_jax_tests_xla_cache_{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")


@pytest.fixture
def cli_env():
    """Environment for running the CLI/scripts in a subprocess with this interpreter."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    env["RESNET_JAX_NO_UV"] = "1"
    env.setdefault("JAX_PLATFORMS", "cpu")
    return env


@pytest.fixture(scope="session")
def tiny_digits_run(tmp_path_factory):
    """Workdir of a cifar_resnet8 trained 3 steps on digits (config.json, checkpoint, results)."""
    from tiny_runs import train_tiny

    return train_tiny(tmp_path_factory, "tiny_digits_run")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A short digits run through the CLI (scaleout_helpers.reference_run), once per test module."""
    import scaleout_helpers as h

    return h.reference_run(tmp_path_factory)


@pytest.fixture
def environ(tmp_path_factory):
    """The environment of a one-device CLI subprocess sharing the suite's compilation cache."""
    import scaleout_helpers as h

    return h.env(1, h.cache_dir(tmp_path_factory))


@pytest.fixture(scope="module")
def digits_engine():
    """(engine, dataset, device data) of a cifar_resnet8 on digits at the paper's batch 128, BN
    over 64."""
    from resnet_jax.configs import cifar_config
    from resnet_jax.data import load_dataset
    from resnet_jax.train.engine import create_engine, put_dataset

    config = cifar_config("cifar_resnet8")
    configs.override(config, dataset="digits", batch_size=128, bn_group_size=64)
    ds = load_dataset("digits")
    engine = create_engine(config, ds.crop_padding, ds.num_classes)
    return engine, ds, put_dataset(ds, engine.mesh, 360)


@pytest.fixture
def no_fast_backend(monkeypatch):
    """A machine without simplejpeg/OpenCV (the GPU host has no registry to install them from)."""
    from resnet_jax.data import imagenet_transforms

    monkeypatch.setattr(imagenet_transforms, "simplejpeg", None)
    monkeypatch.setattr(imagenet_transforms, "cv2", None)
