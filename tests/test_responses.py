"""Fig 7 responses: which layers are collected, and that their std is the one computed directly."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from resnet_jax.cli import fig7
from resnet_jax.analysis import responses as resp
from resnet_jax.data import ArrayDataset
from resnet_jax.data.augment import normalize
from resnet_jax.models import create_model, layout
from resnet_jax.train.engine import make_mesh, put_dataset


def _response_names(model):
    x = jnp.zeros((1, 8, 8, 3))
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    captured = jax.eval_shape(lambda v: resp.capture_responses(model, v, x), variables)
    return variables, captured


@pytest.mark.parametrize("name, shortcut, n", [("cifar_resnet8", "A", 1), ("cifar_plain14", "A", 2),
                                               ("cifar_resnet20", "B", 3),
                                               ("cifar_resnet110", "A", 18)])
def test_one_response_per_3x3_conv(name, shortcut, n):
    variables, captured = _response_names(create_model(name, shortcut=shortcut))
    assert len(captured) == 2 * n * 3 + 1 == resp.expected_num_layers(6 * n + 2)
    per_block = layout.to_per_block(variables["params"])
    convs_3x3 = [p for p, k in jax.tree_util.tree_flatten_with_path(per_block)[0]
                 if p[-1].key == "kernel" and k.shape[:2] == (3, 3)]
    assert len(captured) == len(convs_3x3)
    if shortcut == "B":  # projection BNs exist but follow 1x1 convs: not responses
        flat = jax.tree_util.tree_flatten_with_path(variables["params"])[0]
        assert any("proj_bn" in str(p) for p, _ in flat)
        assert not any("proj_bn" in k for k in captured)


def _random_setup(num_eval=10, eval_batch=4):
    """A resnet8 with non-trivial BN scale/bias/running statistics and an eval split whose size is
    not a multiple of the batch (so padding must be masked out)."""
    model = create_model("cifar_resnet8")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (num_eval, 8, 8, 3), dtype=np.uint8)
    ds = ArrayDataset("rand", images, np.zeros(num_eval, np.int32), images,
                      np.zeros(num_eval, np.int32), 10, 1, "test")
    # Random values from numpy (XLA:CPU takes ~10 s to compile jax.random init for this net).
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 8, 8, 3)))

    def draw(path, x):
        name = path[-1].key
        if name == "kernel":  # He init scale keeps responses O(1)
            return rng.normal(0, np.sqrt(2 / np.prod(x.shape[:-1])), x.shape).astype(np.float32)
        base = {"scale": 1.0, "var": 1.0}.get(name, 0.0)
        value = base + 0.3 * rng.normal(size=x.shape)
        return np.abs(value).astype(np.float32) if name == "var" else value.astype(np.float32)

    variables = jax.tree_util.tree_map_with_path(draw, shapes)
    data = put_dataset(ds, make_mesh(), eval_batch)
    return model, variables, ds, data, eval_batch


def _conv_bn(x, params, stats, conv, bn, stride=1):
    """Direct reference: 3x3 conv (pad 1) then BN with running statistics (eps 1e-5)."""
    y = jax.lax.conv_general_dilated(x, params[conv]["kernel"], (stride, stride), ((1, 1), (1, 1)),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    p, s = params[bn], stats[bn]
    return (y - s["mean"]) / jnp.sqrt(s["var"] + 1e-5) * p["scale"] + p["bias"]


@pytest.mark.numerics
def test_std_matches_direct_computation():
    model, variables, ds, data, eval_batch = _random_setup()
    layers = resp.response_moments(model, variables, data, eval_batch)
    assert layers.names[:3] == ["bn1", "stage1_block1/bn1", "stage1_block1/bn2"]
    assert layers.count == 10 * 8 * 8
    assert np.all(layers.std > 0) and np.all(np.isfinite(layers.std))


    @jax.jit
    def first_two_layers(params, stats, images, pixel_mean):
        stem = _conv_bn(normalize(images, pixel_mean), params, stats, "conv1", "bn1")
        block = _conv_bn(jax.nn.relu(stem), params["stage1_block1"], stats["stage1_block1"],
                         "conv1", "bn1")
        return stem, block

    layer_outputs = first_two_layers(variables["params"], variables["batch_stats"],
                                     ds.eval_images, ds.pixel_mean())
    for i, y in enumerate(layer_outputs):
        y = np.asarray(y, np.float64)
        np.testing.assert_allclose(layers.std[i], y.std(), rtol=1e-4)
        np.testing.assert_allclose(layers.mean_channel_std[i], y.std(axis=(0, 1, 2)).mean(),
                                   rtol=1e-4)
    # the pooled std includes the spread of channel means, so it exceeds the mean channel std
    assert layers.std[0] > layers.mean_channel_std[0]


def test_fig7_figure_and_json_written(tiny_digits_run, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    os.symlink(tiny_digits_run, runs / "resnet8")
    out = tmp_path / "new" / "folder" / "fig7.png"  # made by the command
    fig7.main(["fig7", "--runs", str(runs), "--nets", "resnet8", "--out", str(out)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    doc = json.loads((out.parent / "fig7.json").read_text())
    (record,) = doc["runs"]
    assert record["label"] == "ResNet-8" and record["dataset"] == "digits"
    assert len(record["std"]) == len(record["layers"]) == 7
    assert all(s > 0 for s in record["std"])
    results = json.loads((runs / "resnet8" / "results.json").read_text())
    assert record["step"] == results["steps"] and record["test_error"] == results["test_error"]


def test_fig7_missing_run_exits_2_and_writes_nothing(tiny_digits_run, tmp_path, capsys):
    os.symlink(tiny_digits_run, tmp_path / "resnet8")
    with pytest.raises(SystemExit) as exit_info:
        fig7.main(["fig7", "--runs", str(tmp_path), "--nets", "resnet8", "plain20"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "plain20" in err and "no config.json" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "fig7.png").exists() and not (tmp_path / "fig7.json").exists()


@pytest.mark.parametrize("command", ["fig7", "table1"])
def test_an_output_that_cannot_be_written_is_exit_3_before_any_work(command, tmp_path, capsys):
    from resnet_jax import cli

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    out = blocker / "sub" / "out.png"
    argv = {"fig7": ["--runs", str(tmp_path / "no_runs"), "--out", str(out)],  # (no runs: exit 2 if read)
            "table1": ["--json", str(out)]}[command]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["resnet-jax", command, *argv])
    captured = capsys.readouterr()
    assert exit_info.value.code == 3 and captured.out == ""  # (table1 prints its table after the work)
    assert captured.err == f"resnet-jax {command}: error: cannot write {out} (Not a directory)\n"


def test_table1_json_into_a_new_folder_is_written(tmp_path, capsys):
    from resnet_jax import cli

    out = tmp_path / "new" / "table1.json"
    cli.main(["resnet-jax", "table1", "--json", str(out)])
    rows = json.loads(out.read_text())
    assert rows and all(r["agrees"] for r in rows)
