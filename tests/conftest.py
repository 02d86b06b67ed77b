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
