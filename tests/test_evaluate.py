"""`resnet-jax eval`: a saved run's test error without training; broken workdirs exit 2."""

import json
import pathlib
import shutil
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
