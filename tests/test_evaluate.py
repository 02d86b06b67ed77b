"""`resnet-jax eval`: a saved run's test error without training; broken workdirs exit 2."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from resnet_jax.cli import evaluate


def _eval(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(["resnet-jax eval", *argv])
        raise SystemExit(0)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def test_eval_reproduces_the_runs_test_error(tiny_digits_run, tmp_path, capsys):
    code, out, _ = _eval(["--workdir", tiny_digits_run, "--json", str(tmp_path / "e.json")], capsys)
    assert code == 0
    results = json.loads((pathlib.Path(tiny_digits_run) / "results.json").read_text())
    got = json.loads((tmp_path / "e.json").read_text())
    assert got["step"] == results["steps"] and got["num_images"] == 360  # digits test split
    assert got["test_error"] == pytest.approx(results["test_error"], abs=1e-6)
    assert f"test error {100 * results['test_error']:.2f}%" in out


def test_missing_run_is_a_one_line_error(tmp_path, capsys):
    code, _, err = _eval(["--workdir", str(tmp_path / "nothing")], capsys)
    assert code == 2 and "no config.json" in err and len(err.strip().splitlines()) == 1


def test_corrupt_checkpoint_is_a_one_line_error(tiny_digits_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)  # eval replaces it; restore
    workdir = tmp_path / "run"
    shutil.copytree(tiny_digits_run, workdir)
    array_files = [f for f in (workdir / "checkpoints").rglob("*")
                   if f.is_file() and f.parent.name == "d"]  # OCDBT data files
    assert array_files
    for f in array_files:
        f.write_bytes(b"")  # truncate every array file
    code, out, err = _eval(["--workdir", str(workdir), "--json", str(tmp_path / "e.json")], capsys)
    assert code == 2 and "cannot restore the checkpoint" in err
    assert len(err.strip().splitlines()) == 1 and not out
    assert not (tmp_path / "e.json").exists()


@pytest.fixture(scope="module")
def two_seed_run(tmp_path_factory):
    """A cifar_resnet8 trained 3 steps on digits with seeds 0 and 1 together (`--seeds 2`)."""
    from tiny_runs import train_tiny

    return train_tiny(tmp_path_factory, "two_seeds", num_seeds=2)


def test_eval_of_a_run_of_several_seeds_tests_each_seed(two_seed_run, tmp_path, cli_env):
    """The real tool on the run's folder (its checkpoint stacks both seeds): each seed's test error,
    as its own results.json says, never 'damaged'; the checkpoint is left alone."""
    out = tmp_path / "e.json"
    result = subprocess.run([sys.executable, "-m", "resnet_jax.cli", "eval", "--workdir", two_seed_run,
                             "--json", str(out)], env=cli_env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "damaged" not in result.stderr
    got = json.loads(out.read_text())
    assert got["workdir"] == two_seed_run and len(got["runs"]) == 2
    for seed, run in zip((0, 1), got["runs"]):
        expected = json.loads((pathlib.Path(two_seed_run) / f"seed{seed}" / "results.json").read_text())
        assert run["step"] == 3 and run["test_error"] == pytest.approx(expected["test_error"], abs=1e-6)
        assert f"seed{seed}: cifar_resnet8 on digits" in result.stdout
    assert os.listdir(pathlib.Path(two_seed_run) / "checkpoints") == ["3"]
