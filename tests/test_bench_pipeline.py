"""`resnet-jax bench --parts pipeline`: the host transforms' records and tables, tiny."""

import json
import math

import pytest

from resnet_jax.bench import pipeline
from resnet_jax.cli import bench
from resnet_jax.data import imagenet_transforms as T


def test_natural_jpegs_have_imagenet_shapes_and_quality():
    low, high = pipeline.natural_jpegs(6, quality=50, seed=1), pipeline.natural_jpegs(6, quality=95, seed=1)
    assert [T.image_shape(j) for j in low] == [T.image_shape(j) for j in high]
    assert all(T.image_shape(j) in pipeline.IMAGENET_SHAPES for j in low)
    assert sum(map(len, high)) > 2 * sum(map(len, low))  # re-encoded at the quality asked for


def test_quick_pipeline_bench_writes_consistent_records_and_tables(tmp_path, capsys):
    out, md = tmp_path / "bench.jsonl", tmp_path / "bench.md"
    bench.main(["resnet-jax bench", "--parts", "pipeline", "--quick", "--pipeline_images", "3",
                "--pipeline_rounds", "1", "--pipeline_qualities", "90", "--pipeline_workers", "0",
                "--pipeline_seconds", "0.2", "--model_rate", "1000", "--out", str(out),
                "--summary", str(md)])
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == [json.loads(line) for line in out.read_text().splitlines()]
    rows = [r for r in printed if r["kind"] == "pipeline"]
    impls = ["reference", "pil"] + (["fast"] if T.simplejpeg is not None else [])
    assert {(r["transform"], r["impl"]) for r in rows} == (
        {(t, i) for t in pipeline.TRANSFORMS for i in impls}
        | {("decode", f"decode_{i}") for i in impls if i != "reference"})
    rate = {(r["transform"], r["impl"]): r["images_per_sec_per_core"] for r in rows}
    for r in rows:
        assert r["quality"] == 90 and r["images"] == 3 and r["quick"] and r["host_cpus"] >= 1
        assert r["images_per_sec_per_core"] > 0
        assert r["workers_to_feed"] == math.ceil(1000 / r["images_per_sec_per_core"])
        if r["transform"] != "decode":
            ours, ref = r["images_per_sec_per_core"], rate[(r["transform"], "reference")]
            # the ratio is of the unrounded rates; the records round rates to 0.1, ratios to 0.001
            assert r["speedup_over_reference"] == pytest.approx(
                ours / ref, rel=0.05 / ours + 0.05 / ref + 0.0005 / r["speedup_over_reference"])
    (grain,) = [r for r in printed if r["kind"] == "pipeline_grain"]
    assert grain["workers"] == 0 and grain["images_per_sec"] > 0 and grain["impl"] == T.default_backend()
    table = md.read_text()
    for r in rows:
        assert f"| 90 | {r['transform']} | {r['impl']} | {r['images_per_sec_per_core']:,.0f} |" in table
    assert "| 0 workers |" in table
    # the speed targets name the training and centre-crop transforms of the default backend
    targets = [t for t in pipeline.targets(printed)]
    assert {t["what"].split()[0] for t in targets} == {"train", "center"}
    assert all(f"| {t['what']} | {t['value']} |" in table for t in targets)


@pytest.mark.parametrize("args,message", [
    (["--pipeline_qualities", "90,101"], "not a JPEG quality"),
    (["--pipeline_workers", "2,x"], "comma-separated integers"),
    (["--pipeline_images", "0"], "--pipeline_images must be positive"),
])
def test_bad_pipeline_arguments_exit_2_with_one_line(capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(["resnet-jax bench", "--parts", "pipeline", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
