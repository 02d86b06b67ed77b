"""The built wheel is the tool: installed away from this checkout, its `resnet-jax` names the
shipped experiments and trains one from another directory, and its other commands work on the run.
The locked install that docs/install.md gives holds exactly uv.lock's versions.

A full install of the wheel's dependencies (JAX, TensorFlow Datasets, ...) would take minutes, so
the wheel goes alone (`--no-deps`) into a fresh venv that sees the project venv's packages through
a .pth path entry. Path entries are not site directories: the project's editable-install .pth in
there is not processed, so the only resnet_jax that can be imported is the wheel's (checked).
"""

from __future__ import annotations

import json
import os
import shutil
import re
import subprocess
import sys
import sysconfig
import tomllib

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = ["--workdir=runs/r8", "--config.dataset=digits", "--steps=3", "--config.batch_size=32",
         "--config.bn_group_size=0"]


def _uv() -> list[str]:
    uv = os.environ.get("UV") or shutil.which("uv")  # `uv run` names itself in $UV
    return [uv] if uv else [sys.executable, "-m", "uv"]


def _run(cmd: list[str], cwd, env=None) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, (cmd, result.stdout[-2000:], result.stderr[-3000:])
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> str:
    """A venv holding the wheel built from this checkout; returns its bin/ folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    env = dict(os.environ, UV_PYTHON_DOWNLOADS="never")
    _run([*_uv(), "build", "--wheel", "--quiet", "--out-dir", str(tmp / "dist"), REPO], REPO, env)
    [wheel] = (tmp / "dist").glob("resnet_jax-*.whl")
    venv = tmp / "venv"
    _run([*_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], tmp, env)
    _run([*_uv(), "pip", "install", "--quiet", "--no-deps", "--python", str(venv / "bin" / "python"),
          str(wheel)], tmp, env)
    purelib = _run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
                    "['purelib'])"], tmp).stdout.strip()
    with open(os.path.join(purelib, "project_dependencies.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")  # the project venv's site-packages
    return str(venv / "bin")


def test_the_installed_tool_trains_a_shipped_experiment_from_another_directory(installed, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=installed + os.pathsep + env["PATH"], JAX_PLATFORMS="cpu")
    where = json.loads(_run(["python", "-c", "import json, resnet_jax, sys; "
                             "print(json.dumps([resnet_jax.__file__, sys.path]))"], tmp_path, env).stdout)
    assert where[0].startswith(os.path.dirname(installed)), where  # the wheel's, not the checkout's
    assert REPO not in where[1], where[1]

    train = _run(["resnet-jax", "train", "--experiment", "table6:8", *TRAIN], tmp_path, env)
    assert "done: test error" in train.stderr
    run = tmp_path / "runs" / "r8"
    assert json.loads((run / "config.json").read_text())["model"]["name"] == "cifar_resnet8"
    assert json.loads((run / "results.json").read_text())["steps"] == 3
    assert [r["step"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())] == [3]
    assert list(run.glob("events.out.tfevents.*"))

    # Other commands on that run, in one process of the installed package (tests/cli_runner.py).
    # (Each has its own tests; here they show that none needs the checkout.)
    argvs = [["train", "--help"], ["summary", "cifar_resnet8"],
             ["report", "table6", "--runs", "runs", "--out", "report"],
             ["plot", "curves", "--runs", "r8=runs/r8", "--out", "curves.png"]]
    runner = subprocess.run(["python", os.path.join(REPO, "tests", "cli_runner.py")], cwd=tmp_path, env=env,
                            input=json.dumps(argvs), capture_output=True, text=True, timeout=240)
    assert runner.returncode == 0, runner.stderr[-3000:]
    results = json.loads(runner.stdout)
    for argv, result in zip(argvs, results):
        assert result["code"] == 0, (argv, result)
    assert "table6:DEPTH" in results[0]["stdout"] and "fig6:NET" in results[0]["stdout"]
    assert (tmp_path / "report" / "table6.md").is_file() and (tmp_path / "curves.png").is_file()


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_locked_install_holds_the_locked_versions_and_runs_from_anywhere(tmp_path):
    """docs/install.md's install of the tool with uv.lock's versions (`uv tool install .` resolves
    anew and ignores the lock): `uv sync --frozen --no-dev --no-editable` into its own environment,
    rebuilding this package (uv reuses a cached build of a local project until pyproject.toml
    changes, so without it the install can hold an older checkout's code)."""
    tool = tmp_path / "resnet-jax-env"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(UV_PYTHON_DOWNLOADS="never", UV_PROJECT_ENVIRONMENT=str(tool))
    _run([*_uv(), "sync", "--quiet", "--frozen", "--no-dev", "--no-editable", "--reinstall-package",
          "resnet-jax"], REPO, env)

    with open(os.path.join(REPO, "uv.lock"), "rb") as f:
        locked = {_name(p["name"]): p["version"] for p in tomllib.load(f)["package"]}
    listing = ("import importlib.metadata as m, json, resnet_jax; print(json.dumps([resnet_jax.__file__, "
               "{d.metadata['Name']: d.version for d in m.distributions()}]))")
    where, installed = json.loads(_run([str(tool / "bin" / "python"), "-c", listing], tmp_path).stdout)
    installed = {_name(k): v for k, v in installed.items()}
    assert where.startswith(str(tool)), where  # a copy, not the checkout's files
    assert {"jax", "jaxlib", "flax", "numpy", "resnet-jax"} <= set(installed)
    assert {k: v for k, v in installed.items() if locked.get(k) != v} == {}

    version = _run([str(tool / "bin" / "resnet-jax"), "--version"], tmp_path).stdout
    assert version.startswith(f"resnet-jax {locked['resnet-jax']} (jax {locked['jax']}, "), version
