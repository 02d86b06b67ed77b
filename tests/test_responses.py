"""Fig 7 responses: which layers are collected, and that their std is the one computed directly."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numpy_resnet
from resnet_jax import configs
from resnet_jax.analysis import fig7 as fig7_analysis
from resnet_jax.cli import fig7
from resnet_jax.analysis import responses as resp
from resnet_jax.data import ArrayDataset
from resnet_jax.data.augment import normalize
from resnet_jax.models import create_model, layout, parse_model_name
from resnet_jax.train.engine import make_mesh, put_dataset


def _response_names(model):
    x = jnp.zeros((1, 8, 8, 3))
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    captured = jax.eval_shape(lambda v: resp.capture_responses(model, v, x), variables)
    return variables, captured


@pytest.mark.parametrize("name, shortcut, n, per_unit", [
    ("cifar_resnet8", "A", 1, 2), ("cifar_plain14", "A", 2, 2), ("cifar_resnet20", "B", 3, 2),
    ("cifar_resnet110", "A", 18, 2), ("cifar_preact20", "A", 3, 2), ("cifar_bottleneck11", "B", 1, 1),
    ("cifar_preact_bottleneck20", "B", 2, 1)])
def test_one_response_per_3x3_conv(name, shortcut, n, per_unit):
    variables, captured = _response_names(create_model(name, shortcut=shortcut))
    assert len(captured) == per_unit * n * 3 + 1 == resp.num_3x3_convs(variables["params"])
    per_block = layout.to_per_block(variables["params"])
    convs_3x3 = [p for p, k in jax.tree_util.tree_flatten_with_path(per_block)[0]
                 if p[-1].key == "kernel" and k.shape[:2] == (3, 3)]
    assert len(captured) == len(convs_3x3)
    assert not any("proj_bn" in k for k in captured)  # projection BNs follow 1x1 convs


def test_every_unit_kind_has_its_responses_named():
    """A unit added to the registry without its Fig 7 responses is refused, not measured wrong."""
    from resnet_jax.models import BLOCKS

    assert set(resp.RESPONSE_OF_3X3) == set(BLOCKS)
    model = create_model("cifar_resnet8")
    with pytest.raises(ValueError, match="not defined for 'novel' units"):
        resp.response_layers(model.clone(block="novel"))


def _random_setup(model=None, num_eval=10, eval_batch=4, size=8):
    """A net (default resnet8) with non-trivial BN scale/bias/running statistics and an eval split
    whose size is not a multiple of the batch (so padding must be masked out)."""
    model = model or create_model("cifar_resnet8")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (num_eval, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, num_eval).astype(np.int32)
    ds = ArrayDataset("rand", images, labels, images, labels, 10, 1, "test")
    # Random values from numpy (XLA:CPU takes ~10 s to compile jax.random init for this net).
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, size, size, 3)))

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


@pytest.mark.numerics
@pytest.mark.parametrize("name, options", [
    ("cifar_preact8", {}), ("cifar_preact_bottleneck11", {}), ("cifar_bottleneck11", {}),
    ("cifar_resnet8", {"zero_pad": "both", "input_convention": "torchvision",
                       "input_std": (0.2, 0.25, 0.3)})])
def test_stds_equal_a_numpy_forward_for_every_unit_kind(name, options):
    """Each net's stds and error equal those of numpy_resnet's float64 forward, which picks each 3x3
    conv's response from the papers' text by itself (pre-activation: the BN right after the conv,
    or the conv's raw output where it feeds the addition). float32 against float64 through at most
    11 convs differs by ~1e-6 of the std; 1e-4 separates that from any wrong layer by far."""
    spec = parse_model_name(name)
    model, variables, ds, data, eval_batch = _random_setup(create_model(name, **options))
    layers = resp.response_moments(model, variables, data, eval_batch)
    responses = []
    logits = numpy_resnet.forward(layout.to_per_block(variables), normalize(ds.eval_images, ds.pixel_mean()),
                                  block=spec.block, stage_sizes=spec.stage_sizes, option=model.shortcut,
                                  zero_pad=model.zero_pad, std=options.get("input_std"), responses=responses)
    assert len(responses) == len(layers.names) == resp.num_3x3_convs(variables["params"])
    np.testing.assert_allclose(layers.std, [np.std(y) for y in responses], rtol=1e-4)
    assert (layers.num_images, layers.errors) == (10, int((logits.argmax(-1) != ds.eval_labels).sum()))


def test_net_labels():
    assert [fig7_analysis.net_label(m) for m in ("cifar_plain20", "cifar_resnet56", "cifar_preact110",
                                                 "cifar_preact_bottleneck164")] == [
        "plain-20", "ResNet-56", "pre-act ResNet-110", "pre-act ResNet-164"]


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


# ---- trained CIFAR nets: imported and ours, on CIFAR test images ----------------------------------

@pytest.fixture(scope="module")
def cifar_runs(tmp_path_factory):
    """(CIFAR-10 bin folder of 4 images per batch, an imported crafted akamaster ResNet-20 run and its
    state dict, a cifar_resnet8 run of ours trained one step on that archive)."""
    import archive_fakes
    import torch_fakes
    from resnet_jax.cli import main
    from resnet_jax.configs import cifar_config
    from resnet_jax.train.loop import train_and_evaluate

    root = tmp_path_factory.mktemp("fig7_cifar")
    batches = archive_fakes.cifar_batches(per_file=4, seed=7)
    folder = archive_fakes.write_cifar(str(root), batches)["bin_folder"]
    state = torch_fakes.cifar_state(20, option="A", seed=20, prefix="module.")
    path = root / "resnet20-0123abcd.th"
    with pytest.MonkeyPatch.context() as mp:
        path.write_bytes(torch_fakes.legacy_bytes({"best_prec1": 91.73, "state_dict": state}, mp))
    imported = root / "akamaster20"
    with pytest.raises(SystemExit) as e:
        main(["resnet-jax", "import", str(path), str(imported)])
        raise SystemExit(0)
    assert e.value.code == 0
    config = cifar_config("cifar_resnet8")
    configs.override(config, dataset="cifar10", data_dir=folder, steps=1, batch_size=8, bn_group_size=0,
                     log_every=1, eval_every=1, checkpoint_every=1, progress=False)
    ours = str(root / "ours8")
    train_and_evaluate(config, ours)
    return folder, str(imported), state, ours


@pytest.mark.numerics
def test_fig7_of_an_imported_and_our_cifar_run_equals_numpy_forwards(cifar_runs, tmp_path, capsys):
    """`fig7 --workdir imported --workdir ours --data_dir CIFAR --out NEW/DIR`: each run measured on
    the archive's test images with its own input (akamaster's: torchvision std and mean colour, zeros
    on both sides; ours: the training images' per-pixel mean), stds and errors equal to float64 numpy
    forwards (the file's own NCHW code for the imported net, numpy_resnet for ours)."""
    import torch_fakes
    from resnet_jax.analysis.load import load_run
    from resnet_jax.data import load_dataset

    folder, imported, state, ours = cifar_runs
    out = tmp_path / "new" / "fig"
    fig7.main(["fig7", "--workdir", imported, "--workdir", ours, "--data_dir", folder, "--out", str(out)])
    assert (out / "fig7.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads((out / "fig7.json").read_text())
    aka, mine = doc["runs"]
    assert (aka["label"], mine["label"]) == ("ResNet-20 (akamaster)", "ResNet-8")
    assert aka["num_images"] == mine["num_images"] == 4 and aka["dataset"] == "cifar10"
    assert aka["published_test_error"] == 0.0827 and len(aka["std"]) == 19 and len(mine["std"]) == 7
    assert (aka["weights_of"], mine["weights_of"]) == ("akamaster", None)

    ds = load_dataset("cifar10", "test", folder)
    responses = []
    x = torch_fakes.normalize(ds.eval_images, torch_fakes.AKAMASTER_MEAN, torch_fakes.AKAMASTER_STD)
    logits = torch_fakes.forward(state, x, option="A", prefix="module.", responses=responses)
    np.testing.assert_allclose(aka["std"], [np.std(y) for y in responses], rtol=1e-4)
    assert aka["error_on_these_images"] == np.mean(logits.argmax(-1) != ds.eval_labels)

    run = load_run(ours, folder)
    responses = []
    logits = numpy_resnet.forward(layout.to_per_block(jax.device_get(run.variables)),
                                  normalize(ds.eval_images, ds.pixel_mean()), block="basic",
                                  stage_sizes=(1, 1, 1), option="A", responses=responses)
    np.testing.assert_allclose(mine["std"], [np.std(y) for y in responses], rtol=1e-4)
    assert mine["error_on_these_images"] == np.mean(logits.argmax(-1) != ds.eval_labels)
    assert "wrote" in capsys.readouterr().out


def test_fig7_usage_errors_are_one_line(tiny_digits_run, tmp_path, capsys):
    for argv, match in [([], "give --runs DIR"), (["--workdir", tiny_digits_run], "--out is required"),
                        (["--workdir", tiny_digits_run, "--nets", "x", "--out", str(tmp_path)], "--nets")]:
        with pytest.raises(SystemExit) as exit_info:
            fig7.main(["fig7", *argv])
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2 and match in err[-1]
    assert os.listdir(tmp_path) == []


@pytest.mark.numerics
def test_fig7_of_the_real_akamaster_resnet20_equals_a_numpy_forward_in_its_conventions(tmp_path):
    """The real file imported, measured on the first 64 real CIFAR-10 test images (a subset folder
    made here from the real test batch): its 19 stds equal those of the file's own NCHW float64
    forward (akamaster's resnet.py: BN output before ReLU/addition, zeros on both sides of the
    option-A identity, x/255 minus their mean over their std)."""
    import torch_fakes
    from resnet_jax.cli import main
    from resnet_jax.data import torch_files

    if not os.path.exists(torch_fakes.REAL_RESNET20):
        pytest.skip("../shared/real (akamaster's ResNet-20, CIFAR-10 images) is absent")
    subset = tmp_path / "cifar-10-batches-bin"
    subset.mkdir()
    real_folder = os.path.dirname(torch_fakes.REAL_CIFAR10_TEST)
    with open(torch_fakes.REAL_CIFAR10_TEST, "rb") as f:
        (subset / "test_batch.bin").write_bytes(f.read(64 * 3073))
    with open(os.path.join(real_folder, "batches.meta.txt"), "rb") as f:
        (subset / "batches.meta.txt").write_bytes(f.read())
    run = tmp_path / "resnet20"
    with pytest.raises(SystemExit) as e:
        main(["resnet-jax", "import", torch_fakes.REAL_RESNET20, str(run)])
        raise SystemExit(0)
    assert e.value.code == 0
    fig7.main(["fig7", "--workdir", str(run), "--data_dir", str(subset), "--out", str(tmp_path / "fig")])
    (record,) = json.loads((tmp_path / "fig" / "fig7.json").read_text())["runs"]
    assert record["num_images"] == 64 and record["label"] == "ResNet-20 (akamaster)"

    images, labels = torch_fakes.read_cifar_bin(str(subset / "test_batch.bin"))
    responses = []
    x = torch_fakes.normalize(images, torch_fakes.AKAMASTER_MEAN, torch_fakes.AKAMASTER_STD)
    logits = torch_fakes.forward(torch_files.read_torch(torch_fakes.REAL_RESNET20).state, x, option="A",
                                 prefix="module.", responses=responses)
    assert len(responses) == 19
    np.testing.assert_allclose(record["std"], [np.std(y) for y in responses], rtol=1e-4)
    assert record["error_on_these_images"] == np.mean(logits.argmax(-1) != labels)


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
