import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
    from resnet_jax.configs import cifar_config
    from resnet_jax.train.loop import train_and_evaluate

    config = cifar_config("cifar_resnet8")
    config.update(dataset="digits", steps=3, batch_size=32, bn_group_size=0, log_every=3,
                  eval_every=3, checkpoint_every=3, progress=False)
    workdir = str(tmp_path_factory.mktemp("tiny_digits_run"))
    train_and_evaluate(config, workdir)
    return workdir
