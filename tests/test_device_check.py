"""`resnet-jax bench --device-check` (scripts/device_check.sh): the one-call accelerator check, run
here on the CPU in its --quick form, its budget, its report and the imports the device lacks."""

import json
import os
import subprocess
import sys

import pytest

from resnet_jax.bench import device_check, device_report
from resnet_jax.cli import bench

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _main(argv):
    with pytest.raises(SystemExit) as exit_:
        bench.main(["resnet-jax bench", "--device-check", *argv])
    return exit_.value.code


@pytest.mark.parametrize("args, message", [
    (["--parts", "train,warp"], "unknown part 'warp'"),
    (["--budget", "-5"], "--budget must be positive"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, args, message):
    assert _main([*args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / "out")


def test_unwritable_out_exits_3_with_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert _main(["--out", str(tmp_path / "file" / "out")]) == 3
    err = capsys.readouterr().err
    assert "cannot write" in err and len(err.strip().splitlines()) == 1


def test_a_spent_budget_skips_every_part_and_still_reports(tmp_path, capsys):
    assert _main(["--budget", "1", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "device_check.json").read_text())
    assert [p["name"] for p in report["parts"]] == [p.name for p in device_check.PARTS]
    assert {p["status"] for p in report["parts"]} == {"skipped-budget"}
    md = (tmp_path / "device_check.md").read_text()
    assert md.count("skipped-budget") == len(device_check.PARTS) and "no part measured" in md


def _compile_record(form, step_ms, auto):
    return {"kind": "compile", "model": "cifar_resnet110", "dtype": "float32", "form": form,
            "program": "chunk", "steps_per_call": 50, "compile_s": 3.0, "peak_gb": 1.0,
            "step_ms": step_ms, "device_peak_gb": None, "auto": auto}


ACCELERATOR_AUTO = {"scan_blocks": True, "scan_conv_impl": "xla", "remat": "none"}


@pytest.mark.parametrize("times, auto_wins, best", [
    ({"scan+xla": 10.0, "scan+remat+xla": 12.0, "unrolled": 11.0}, True, "scan+xla"),
    ({"scan+xla": 10.0, "scan+remat+xla": 12.0, "unrolled": 9.0}, False, "unrolled"),
    ({"scan+remat+xla": 12.0, "unrolled": 9.0}, None, "unrolled"),  # auto's form not measured
])
def test_forms_verdict_compares_the_auto_form_with_the_fastest(times, auto_wins, best):
    records = [_compile_record(f, ms, ACCELERATOR_AUTO) for f, ms in times.items()]
    (verdict,) = device_report.forms_verdicts(records)
    assert verdict["auto_wins"] is auto_wins and verdict["best_form"] == best
    assert verdict["auto_form"] == ("scan+xla" if "scan+xla" in times else None)
    md = "\n".join(device_report.forms_markdown(records))
    assert ("LOSES" in md) is (auto_wins is False) and "n/a" in md  # no device statistics


def test_the_digits_route_imports_neither_tfds_nor_grain():
    """The accelerator image lacks tensorflow-datasets, grain and array-record: training and
    benchmarking on digits or synthetic data must not need them (nor tensorboardX, optional)."""
    code = ("import sys\n"
            "for m in ('tensorflow_datasets', 'grain', 'array_record', 'tensorboardX'):\n"
            "    sys.modules[m] = None  # import fails, as where it is not installed\n"
            "import resnet_jax.cli.train, resnet_jax.train.loop, resnet_jax.cli.report\n"
            "import resnet_jax.cli.bench, resnet_jax.bench.suite, resnet_jax.bench.e2e\n"
            "from resnet_jax.data import load_dataset\n"
            "load_dataset('digits'), load_dataset('synthetic')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.slow
def test_quick_check_runs_every_part_on_the_cpu(tmp_path):
    """The whole check in its --quick form: about 3 minutes on 2 idle cores, 10 under heavy load.
    The budget is a ceiling, generous so that a loaded machine still runs every part; a part it
    does cut is reported so, never as a failure."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "resnet_jax.cli", "bench", "--device-check", "--quick",
                           "--budget", "1500", "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    report = json.loads((out / "device_check.json").read_text())
    statuses = {p["name"]: p["status"] for p in report["parts"]}
    assert list(statuses) == [p.name for p in device_check.PARTS]
    assert set(statuses.values()) <= set(device_check.STATUSES) - {"failed"}, (statuses, proc.stderr[-3000:])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert statuses["train"] == "ran", "the first part gets the budget it needs"
    parts = {p["name"]: p for p in report["parts"]}
    train = parts["train"]["result"]
    assert train["first_exit"] == 0 and train["resume_exit"] == 0 and train["steps"] in train["checkpoints"]
    if train["preempted_at"] is not None:  # stopped mid-run by SIGTERM, then resumed from there
        assert train["resumed"] and train["preempted_at"] < train["steps"]
    md = (out / "device_check.md").read_text()
    for p in device_check.PARTS:
        assert f"| {p.key} {p.name} |" in md
    kinds = {"reference": {"step", "reference", "ratio"}, "forms": {"compile"}, "e2e": {"e2e"},
             "seeds": {"step", "seeds"}, "r50": {"step"}}
    for name, expected in kinds.items():
        if statuses[name] == "ran":
            assert {r["kind"] for r in parts[name]["records"]} == expected, name
    if statuses["forms"] == "ran":
        assert "auto = scan_conv_impl im2col, remat block" in md  # the CPU's defaults, as the records say
