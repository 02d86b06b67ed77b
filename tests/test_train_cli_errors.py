"""Bad inputs to `resnet-jax train`: one line on stderr, exit 2, nothing written (all run at once)."""

from __future__ import annotations

import json
import os
import sys

import pytest

import scaleout_helpers as h


def _cases(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    read_only = tmp_path / "read_only"
    read_only.mkdir(mode=0o555)
    cases = {
        "unknown model": ({"model": "vgg16"}, [], "unknown model 'vgg16'"),
        "depth not 6n+2": ({"model": "cifar_resnet21"}, [], "6n+2"),
        "unknown dataset": ({"dataset": "mnist"}, [], "unknown dataset 'mnist'"),
        "negative steps": ({"steps": -5}, [], "steps must be positive"),
        "workdir is a file": ({}, [f"--workdir={a_file}"], "not a writable directory"),
        "workdir under a file": ({}, [f"--workdir={a_file}/run"], "not a writable directory"),
        "batch not divisible by devices": ({"batch_size": 36, "bn_group_size": 0}, [],
                                           "batch_size 36 is not divisible by the 8 devices"),
        "half the multi-process flags": ({}, ["--num_processes=2"], "missing coordinator, process_id"),
        "unknown seeds mode": ({"seeds_mode": "pmap"}, ["--seeds=2"], "unknown seeds_mode 'pmap'"),
        "no seeds": ({}, ["--seeds=0"], "num_seeds must be positive"),
        "unknown conv impl": ({"conv_impl": "fft"}, [], "unknown conv_impl 'fft'"),
    }
    if os.geteuid() != 0:  # root writes anywhere
        cases["read-only workdir"] = ({}, [f"--workdir={read_only}/run"], "not a writable directory")
    return cases


def test_bad_inputs_fail_with_one_line_and_exit_2(tmp_path):
    """All cases through the CLI entry point in one 8-device process (tests/cli_runner.py; the exit
    status of a real `resnet-jax train` process is checked in test_train.py)."""
    cases = _cases(tmp_path)
    argvs = [h.train_cmd(str(tmp_path / name.replace(" ", "_")), *extra, **overrides)[3:]
             for name, (overrides, extra, _) in cases.items()]
    runner = h.run([sys.executable, "tests/cli_runner.py"], h.env(8), input=json.dumps(argvs))
    assert runner.returncode == 0 and not runner.stderr.strip(), runner.stderr
    for (name, (_, _, expected)), result in zip(cases.items(), json.loads(runner.stdout)):
        lines = [line for line in result["stderr"].splitlines() if line.strip()]
        assert result["code"] == 2, (name, result)
        assert len(lines) == 1, (name, result)
        assert lines[0].startswith("resnet-jax train: error: ") and expected in lines[0], (name, lines)
        assert not (tmp_path / name.replace(" ", "_")).exists(), f"{name}: the workdir was created"


@pytest.mark.parametrize("bad", ["a_file", "a_file/run"])
def test_check_workdir_rejects_non_directories(tmp_path, bad):
    from resnet_jax.train.loop import ConfigError, check_workdir

    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ConfigError, match="not a writable directory"):
        check_workdir(str(tmp_path / bad))
    check_workdir(str(tmp_path / "new" / "run"))  # creatable: fine, and not created yet
    assert not (tmp_path / "new").exists()
