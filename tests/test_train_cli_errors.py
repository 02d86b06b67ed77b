"""Bad inputs to `resnet-jax train`: one line on stderr, exit 2, nothing written (all run at once)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from resnet_jax import experiments

import scaleout_helpers as h


def _cases(tmp_path):
    """name -> (argv after `resnet-jax`, expected part of the message); the workdir of each case is
    tmp_path/<name with underscores>."""
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    garbage = tmp_path / "cifar-10-python.tar.gz"  # found only when the data are opened
    garbage.write_bytes(b"<html>not found</html>")
    read_only = tmp_path / "read_only"
    read_only.mkdir(mode=0o555)
    cases = {
        "unknown model": ({"model": "vgg16"}, [], "unknown model 'vgg16'"),
        "depth not 6n+2": ({"model": "cifar_resnet21"}, [], "6n+2"),
        "unknown dataset": ({"dataset": "mnist"}, [], "unknown dataset 'mnist'"),
        "negative steps": ({"steps": -5}, [], "steps must be positive"),
        "workdir is a file": ({}, [f"--workdir={a_file}"], "is not a directory"),
        "workdir under a file": ({}, [f"--workdir={a_file}/run"], "is not a directory"),
        "batch not divisible by devices": ({"batch_size": 36, "bn_group_size": 0}, [],
                                           "batch_size 36 is not divisible by the 8 devices"),
        "half the multi-process flags": ({}, ["--num_processes=2"], "missing coordinator, process_id"),
        "unknown seeds mode": ({"seeds_mode": "pmap"}, ["--seeds=2"], "unknown seeds_mode 'pmap'"),
        "no seeds": ({}, ["--seeds=0"], "--seeds must be positive, got 0"),
        "batch not divisible by BN groups": ({"batch_size": 100, "bn_group_size": 64}, [],
                                             "use a multiple of 64, or set bn_group_size"),
        "unknown conv impl": ({"conv_impl": "fft"}, [], "unknown conv_impl 'fft'"),
        "unknown momentum form": ({"momentum_form": "nesterov"}, [], "unknown momentum_form 'nesterov'"),
        "unknown config field": ({"weight_decy": 0.1}, [],
                                 "unknown config field 'weight_decy'; did you mean 'weight_decay'?"),
        "experiment argument as a field": ({"depth": 21}, [], "the depth is the experiment's argument"),
        "non-numeric value": ({"lr": "fast"}, [], "--config.lr=fast: lr expects a number (default 0.1)"),
        "non-numeric nested": ({"optim.lr": "fast"}, [], "--config.optim.lr=fast: lr expects a number"),
        "non-integer value": ({"steps": 1.5}, [], "--config.steps=1.5: steps expects an integer"),
        "non-boolean value": ({"progress": "maybe"}, [],
                              "--config.progress=maybe: progress expects true or false"),
        "value out of range": ({"lr": -1}, [], "--config.lr=-1: lr must be positive, got -1.0"),
        "value not a choice": ({"model.remat": "all"}, [],
                               "unknown remat 'all': expected one of auto, none, block"),
        "unknown nested field": ({"optim.lrr": 0.1}, [],
                                 "unknown config field 'optim.lrr'; did you mean 'optim.lr'?"),
        "unknown flag": ({}, ["--stpes=3"], "unknown flag --stpes; did you mean --steps?"),
        "bad flag value": ({}, ["--steps=many"], "--steps=many"),
        "positional argument": ({}, ["extra"], "unexpected arguments: extra"),
        "missing data_dir": ({"dataset": "cifar10", "data_dir": "/nonexistent"}, [],
                             "data_dir '/nonexistent': no such file or directory"),
        "corrupt CIFAR archive": ({"dataset": "cifar10", "data_dir": str(garbage)}, [],
                                  "not a CIFAR-10 archive"),
        "data_dir for digits": ({"data_dir": str(tmp_path)}, [], "dataset 'digits' does not read a data_dir"),
        "data_dir for synthetic": ({"dataset": "synthetic", "data_dir": str(tmp_path)}, [],
                                   "dataset 'synthetic' does not read a data_dir"),
    }
    if os.geteuid() != 0:  # root writes anywhere
        cases["read-only workdir"] = ({}, [f"--workdir={read_only}/run"], "not a writable directory")
    argvs = {name: (h.train_cmd(_workdir(tmp_path, name), *extra, **overrides)[3:], expected)
             for name, (overrides, extra, expected) in cases.items()}
    for name, config, expected in [
            ("missing experiment file", "experiments/nonexist.py:20", "no experiment file "
             "'experiments/nonexist.py' (the experiments, by --experiment: cifar10:NET"),
            ("bad experiment argument", "experiments/table2.py:resnet35", "experiments/table2.py:resnet35: "
             "ValueError: Table 2 trains")]:
        argvs[name] = (["train", f"--config={config}", f"--workdir={_workdir(tmp_path, name)}"], expected)
    for name, experiment, expected in [
            ("unknown experiment", "tabel6:20", "no experiment 'tabel6'; did you mean 'table6'? "
             f"(the experiments: {', '.join(experiments.names())})"),
            ("bad shipped experiment argument", "table2:resnet35",
             "table2:resnet35: ValueError: Table 2 trains"),
            ("shipped experiment argument as a field", "table6 --config.depth=21",
             "the depth is the experiment's argument: --experiment table6:VALUE")]:
        argvs[name] = (["train", "--experiment", *experiment.split(),
                        f"--workdir={_workdir(tmp_path, name)}"], expected)
    argvs["experiment and config"] = (["train", "--experiment=table6:20", "--config=experiments/table6.py:20",
                                       f"--workdir={_workdir(tmp_path, 'experiment and config')}"],
                                      "--experiment and --config both name an experiment: give one")
    argvs["missing workdir"] = (["train", "--config=experiments/table6.py:20"], "missing --workdir")
    argvs["missing experiment"] = (["train", f"--workdir={_workdir(tmp_path, 'missing experiment')}"],
                                   "missing --experiment NAME[:ARG]")
    return argvs


def _workdir(tmp_path, name: str) -> str:
    return str(tmp_path / name.replace(" ", "_"))


def _run_in_one_process(argvs: list[list[str]]) -> list[dict]:
    runner = h.run([sys.executable, "tests/cli_runner.py"], h.env(8), input=json.dumps(argvs))
    assert runner.returncode == 0 and not runner.stderr.strip(), runner.stderr
    return json.loads(runner.stdout)


def test_bad_inputs_fail_with_one_line_and_exit_2(tmp_path):
    """All cases through the CLI entry point in one 8-device process (tests/cli_runner.py; the exit
    status of a real `resnet-jax train` process is checked in test_train.py)."""
    cases = _cases(tmp_path)
    results = _run_in_one_process([argv for argv, _ in cases.values()])
    for (name, (_, expected)), result in zip(cases.items(), results):
        lines = [line for line in result["stderr"].splitlines() if line.strip()]
        assert result["code"] == 2, (name, result)
        assert len(lines) == 1, (name, result)
        assert lines[0].startswith("resnet-jax train: error: ") and expected in lines[0], (name, lines)
        assert not os.path.exists(_workdir(tmp_path, name)), f"{name}: the workdir was created"


def test_help_lists_experiments_flags_and_every_config_field():
    from resnet_jax.configs import FIELDS, cifar_config, flat_items, imagenet_config

    [result] = _run_in_one_process([["train", "--help"]])
    assert result["code"] == 0 and not result["stderr"], result
    lines = result["stdout"].splitlines()
    for path in sorted(os.listdir(os.path.join(h.REPO, "resnet_jax", "experiments"))):
        if path.endswith(".py") and not path.startswith("_"):
            assert any(line.strip().startswith(f"{path.removesuffix('.py')}:") for line in lines), path
    assert any(line.strip().startswith("table6:DEPTH ") and "default 20" in line and "Table 6" in line
               for line in lines)
    assert any(line.strip().startswith("--workdir ") for line in lines)
    fields = {line.split()[0]: line for line in lines
              if line.startswith("  ") and line.split()[0] in FIELDS}
    assert set(fields) == set(flat_items(cifar_config())) | set(flat_items(imagenet_config()))
    assert "0.1" in fields["lr"] and FIELDS["lr"].doc in fields["lr"]
    assert "'caffe'" in fields["momentum_form"] and "64 [32]" in fields["bn_group_size"]
    assert "(--config.model.name)" in fields["model"] and "(--config.data.name)" in fields["dataset"]
    assert any(line.strip() == "optim: --config.optim.FIELD" for line in lines)


@pytest.mark.parametrize("bad", ["a_file", "a_file/run"])
def test_check_workdir_rejects_non_directories(tmp_path, bad):
    from resnet_jax.train.workdir import ConfigError, check_workdir

    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ConfigError, match="is not a directory"):
        check_workdir(str(tmp_path / bad))
    check_workdir(str(tmp_path / "new" / "run"))  # creatable: fine, and not created yet
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("argv", [["--help"], ["summary", "cifar_resnet20"]])
def test_a_closed_pipe_is_no_traceback(argv):
    """`resnet-jax ... | head` ends quietly with the shell's code for SIGPIPE (128 + 13)."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has left before the first write
    try:
        result = subprocess.run([sys.executable, "-m", "resnet_jax.cli", *argv], stdout=write_end,
                                stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert result.returncode == 141 and result.stderr == "", result.stderr[-2000:]


def test_flat_and_nested_overrides_reach_absl_by_their_section_and_are_recorded_as_typed():
    """--config.FIELD is rewritten to --config.SECTION.FIELD from the schema (no parsing of absl's
    text); the fields typed are what --steps leaves alone (the typed value wins)."""
    from resnet_jax.cli import train

    train._TYPED.clear()
    argv = ["resnet-jax", "--config.eval_every=7", "--config.optim.lr=0.05", "--noconfig.progress",
            "--config.seed", "3"]
    rewritten = train._config_overrides(argv, "experiments/table6.py:20", "table6:20")
    assert rewritten[1:] == [
        "--config.run.eval_every=7", "--config.optim.lr=0.05", "--noconfig.run.progress",
        "--config.run.seed", "3"]
    assert {"eval_every", "lr", "progress", "seed"} == train._TYPED
