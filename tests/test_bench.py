"""`resnet-jax bench`: JSON records, the ours/reference ratio, the full-run projection, bad input."""

import json

import pytest

from resnet_jax.bench import e2e, summary
from resnet_jax.cli import bench


def test_projection_uses_the_steady_window_after_the_first_evaluation():
    # 10 s of compiling before step 100; then 50 steps/s, each evaluation costing 1 s more.
    records = [{"step": 100, "wall_time": 12.0, "loss": 1.0},
               {"step": 200, "wall_time": 14.0, "loss": 1.0, "test_error": 0.5},  # + eval compile
               {"step": 300, "wall_time": 16.0, "loss": 1.0},
               {"step": 400, "wall_time": 19.0, "loss": 1.0, "test_error": 0.4}]
    p = e2e.project_full_run(records, elapsed_s=20.0, total_steps=1_000, eval_every=200)
    assert p["steady_steps_per_sec"] == pytest.approx(200 / 5.0)
    assert p["overhead_s"] == pytest.approx(20.0 - 400 / 40.0)
    assert p["projected_full_run_s"] == pytest.approx(10.0 + 1_000 / 40.0)
    with pytest.raises(ValueError, match="two evaluations"):
        e2e.project_full_run(records[:2], elapsed_s=20.0, eval_every=200)


@pytest.mark.parametrize("args,message", [
    (["--parts", "step,warp"], "unknown part"),
    (["--models", "cifar_resnet21"], "6n+2"),
    (["--steps", "0"], "--steps must be positive"),
    (["--e2e_steps", "100", "--e2e_eval_every", "100"], "two evaluations"),
    (["--seeds_modes", "loop,vmap+fft"], "unknown seeds formulation 'vmap+fft'"),
    (["--conv_impls", "winograd"], "unknown conv impl"),
])
def test_bad_arguments_exit_2_with_one_line(capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(["resnet-jax bench", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_tiny_bench_writes_one_json_line_per_measurement(tmp_path, capsys):
    out = tmp_path / "bench.jsonl"
    bench.main(["resnet-jax bench", "--models", "cifar_resnet8", "--dtypes", "float32",
                "--parts", "step,reference", "--image_size", "8", "--batch_size", "32",
                "--steps", "2", "--repeats", "2", "--out", str(out)])
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == [json.loads(line) for line in out.read_text().splitlines()]
    ours, ref, ratio = printed
    assert (ours["kind"], ours["impl"], ref["impl"], ratio["kind"]) == ("step", "ours", "reference",
                                                                         "ratio")
    for r in (ours, ref):
        assert r["model"] == "cifar_resnet8" and r["batch_size"] == 32 and r["image_size"] == 8
        assert r["compile_s"] > 0 and r["images_per_sec"] > 0 and r["windows"] == 2
        # the fastest window is never slower than the median one
        assert r["images_per_sec"] >= r["images_per_sec_median"]
        assert r["images_per_sec"] == pytest.approx(32 / (r["step_ms"] / 1e3), rel=1e-3)
        assert "load_avg_1m" in r and r["backend"] == "cpu"
    assert ratio["ours_over_reference"] == pytest.approx(
        ours["images_per_sec"] / ref["images_per_sec"], rel=1e-2)


def test_targets_compare_each_measurement_with_its_speed_target():
    env = {"num_devices": 1}
    records = [
        {"kind": "ratio", "model": "cifar_resnet20", "dtype": "bfloat16", "batch_size": 128,
         "ours_over_reference": 1.7, "ours_over_reference_scan": 1.2},
        {"kind": "ratio", "model": "cifar_resnet56", "dtype": "bfloat16", "batch_size": 128,
         "ours_over_reference_scan": 0.9},
        {"kind": "e2e", "model": "cifar_resnet110", "dtype": "bfloat16", "projected_full_run_s": 640.0},
        {"kind": "seeds", "model": "cifar_resnet20", "dtype": "bfloat16", "num_seeds": 5,
         "impl": "vmap", "speedup_over_one_model": 0.7, **env},
        {"kind": "seeds", "model": "cifar_resnet20", "dtype": "bfloat16", "num_seeds": 5,
         "impl": "vmap+im2col", "speedup_over_one_model": 2.4, **env},
        {"kind": "seeds", "model": "cifar_resnet20", "dtype": "bfloat16", "num_seeds": 4,
         "impl": "devices", "speedup_over_one_model": 3.5, "num_devices": 4},
        {"kind": "step", "model": "imagenet_resnet50", "dtype": "float32", "impl": "ours",
         "batch_size": 256, "images_per_sec": 3_000.0},
        {"kind": "step", "model": "imagenet_resnet50", "dtype": "bfloat16", "impl": "ours",
         "batch_size": 256, "images_per_sec": 7_000.0},
    ]
    got = {t["what"]: (t["value"], t["met"]) for t in summary.targets(records)}
    assert got == {
        "cifar_resnet20 bfloat16: ours / scanned reference": ("1.20x", True),
        "cifar_resnet56 bfloat16: ours / scanned reference": ("0.90x", False),
        "cifar_resnet110 bfloat16: projected 64k-step run": ("640 s", False),
        "cifar_resnet20 bfloat16: 5 seeds on one device, best (vmap+im2col)": ("2.40x one model", True),
        "cifar_resnet20 bfloat16: 4 seeds over 4 devices": ("3.50x one model", False),
        "imagenet_resnet50 bfloat16 (ours): images/s": ("7,000", True),
    }


def test_summarize_tabulates_appended_runs_with_the_targets(tmp_path, capsys):
    env = {"backend": "gpu", "device": "NVIDIA H100", "num_devices": 1, "jax": "0.11.2",
           "load_avg_1m": 0.5}
    step = {**env, "model": "cifar_resnet20", "dtype": "bfloat16", "batch_size": 128, "image_size": 32,
            "steps_per_call": 50, "compile_s": 9.0}
    records = [{**step, "kind": "step", "impl": "ours", "images_per_sec": 90_000.0, "step_ms": 1.42},
               {**step, "kind": "reference", "impl": "reference_scan", "images_per_sec": 72_000.0,
                "step_ms": 1.78},
               {**env, "kind": "ratio", "model": "cifar_resnet20", "dtype": "bfloat16",
                "batch_size": 128, "image_size": 32, "ours_over_reference_scan": 1.25}]
    path = tmp_path / "bench.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    bench.main(["resnet-jax bench", "--summarize", str(path)])
    out = capsys.readouterr().out
    assert "NVIDIA H100 x1 (gpu)" in out and "| 90,000 |" in out
    assert "| cifar_resnet20 bfloat16: ours / scanned reference | 1.25x | >= 1.0x (aim 1.5x) | yes |" in out


def test_compile_part_measures_each_program_in_its_own_process(tmp_path, capsys):
    out = tmp_path / "bench.jsonl"
    bench.main(["resnet-jax bench", "--parts", "compile", "--dtypes", "float32",
                "--compile_models", "cifar_resnet8", "--unrolled_max_depth", "7",
                "--image_size", "8", "--batch_size", "16", "--steps", "2", "--repeats", "1",
                "--compile_chunk", "2", "--out", str(out)])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    got = [(r["model"], r["form"], r["program"]) for r in records]
    # unrolled only up to --unrolled_max_depth (8 > 7: scanned only); init, one step and a chunk
    assert got == [("cifar_resnet8", "scan", p) for p in ("init", "step", "chunk")]
    for r in records:
        assert "error" not in r, r
        assert r["kind"] == "compile" and r["compile_s"] > 0 and r["peak_gb"] >= r["base_gb"] > 0
        assert r["steps_per_call"] == (2 if r["program"] == "chunk" else 1)
        assert ("step_ms" in r) == (r["program"] == "step")
    markdown = capsys.readouterr().err
    assert "| cifar_resnet8 | float32 | 8 | 16 | scan |" in markdown


def test_compile_part_records_a_failed_process_instead_of_stopping(monkeypatch):
    from resnet_jax.bench import compile as compile_bench

    monkeypatch.setattr(compile_bench.sys, "executable", "/bin/false")
    result = compile_bench.run_probe({"program": "init"}, timeout_s=10)
    assert result["error"].startswith("exit status 1")
    assert bench.parse_args(["b", "--compile_forms", "scan,unrolled+remat"]).compile_forms == [
        "scan", "unrolled+remat"]
    with pytest.raises(SystemExit):
        bench.parse_args(["b", "--compile_forms", "scan+fft"])
