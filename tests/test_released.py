"""Released models (the authors' Caffe ResNet-50/101/152, torchvision's ResNet-18..152): files in
their exact formats with random weights, converted, and our logits against numpy forward passes in
each framework's own semantics; structure of every depth; bad files; export round trip."""

import contextlib
import io
import json
import os
import pickle
import re
import shutil
import sys
import zipfile

import jax
import numpy as np
import pytest

import released_fakes as fakes
from resnet_jax import configs
from resnet_jax.models import create_model, layout, released
from resnet_jax.train import released as R
from resnet_jax.train import run_weights as W

SIZE = 64  # conv1 -> 32, pool1 -> 16 (Caffe's ceil-mode window clipped at the edge), ..., 2x2


def _images(seed=0, n=2):
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def _our_logits(imported, images):
    from resnet_jax.data.lighting import normalize

    f = imported.fields
    model = create_model(f["model"], shortcut=f["shortcut"], num_classes=imported.num_classes,
                         stride_on_3x3=f["stride_on_3x3"], input_convention=f["input_convention"],
                         conv1_bias=f["conv1_bias"], pool_ceil_mode=f["pool_ceil_mode"])
    variables = layout.to_stacked(imported.variables)
    x = normalize(images, imported.input_mean)
    return np.asarray(jax.jit(model.apply)(variables, x))


def _compare(ours, reference):
    # Our float32 program (XLA convs, BN as (x - mean) * rsqrt(var + eps), the input adapted as
    # x*255 or x/std after subtracting the mean in [0, 1] units) against a float64 numpy one:
    # only float32 rounding separates them, measured at <= 6e-7 of the logits' scale for every
    # depth and format (AVX-512); 2e-5 leaves room for other instruction sets' summation orders,
    # while any semantic slip (channel order, BN factor, pooling windows, stride position) moves
    # the logits by a sizeable fraction of their scale.
    scale = np.abs(reference).max()
    np.testing.assert_allclose(ours, reference, rtol=0, atol=2e-5 * scale)
    assert (ours.argmax(-1) == reference.argmax(-1)).all()


def _torchvision_case(depth, tmp_path, fmt, monkeypatch):
    net = fakes.random_net(depth, seed=depth)
    state = fakes.torchvision_state(net)
    path = str(tmp_path / f"resnet{depth}.{fmt}")
    if fmt == "safetensors":
        fakes.write_safetensors(path, state)
    else:
        fakes.write_pth(path, state, monkeypatch)
        monkeypatch.undo()  # the stand-in torch modules are gone before we read
        assert "torch" not in sys.modules
    images = _images(depth)
    reference = fakes.forward(net, fakes.torchvision_input(images), caffe=False,
                              stride_on_3x3=depth >= 50)
    imported = R.read_weights(path)
    assert imported.fields["model"] == f"imagenet_resnet{depth}"
    assert imported.fields["stride_on_3x3"] == (depth >= 50)
    return _our_logits(imported, images), reference


def _caffe_case(depth, tmp_path):
    net = fakes.random_net(depth, seed=depth, conv1_bias=True)
    path = tmp_path / f"ResNet-{depth}-model.caffemodel"
    path.write_bytes(fakes.caffemodel_bytes(net, depth))
    mean_bgr = np.random.default_rng(7).uniform(90, 130, (3, SIZE, SIZE)).astype(np.float32)
    (tmp_path / "ResNet_mean.binaryproto").write_bytes(fakes.mean_binaryproto(mean_bgr))
    images = _images(depth)
    reference = fakes.forward(net, fakes.caffe_input(images, mean_bgr), caffe=True,
                              stride_on_3x3=False)
    imported = R.read_weights(str(path))
    assert imported.fields["model"] == f"imagenet_resnet{depth}"
    assert imported.fields["input_convention"] == "caffe"
    return _our_logits(imported, images), reference


@pytest.mark.numerics
@pytest.mark.parametrize("depth,fmt", [(18, "safetensors"), (34, "pth"), (50, "pth")])
def test_torchvision_logits_match_numpy(depth, fmt, tmp_path, monkeypatch):
    _compare(*_torchvision_case(depth, tmp_path, fmt, monkeypatch))


@pytest.mark.numerics
def test_caffe_resnet50_logits_match_numpy(tmp_path):
    _compare(*_caffe_case(50, tmp_path))


# The deeper nets: the same comparison, minutes of CPU among them (numpy and XLA); the
# structure test below covers every depth's names and shapes in the fast tier.
@pytest.mark.slow
@pytest.mark.numerics
@pytest.mark.parametrize("depth,fmt", [(101, "safetensors"), (152, "safetensors")])
def test_torchvision_deep_logits_match_numpy(depth, fmt, tmp_path, monkeypatch):
    _compare(*_torchvision_case(depth, tmp_path, fmt, monkeypatch))


@pytest.mark.slow
@pytest.mark.numerics
@pytest.mark.parametrize("depth", [101, 152])
def test_caffe_deep_logits_match_numpy(depth, tmp_path):
    _compare(*_caffe_case(depth, tmp_path))


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_every_depth_maps_names_one_to_one(depth):
    """torchvision's keys and the authors' Caffe layers of every depth map one to one onto the
    model's variables (the files themselves are converted in the logits tests)."""
    flags = dict(stride_on_3x3=depth >= 50, input_convention="torchvision")
    shapes = released.variable_shapes(create_model(f"imagenet_resnet{depth}", **flags))
    names = released.torchvision_names(depth)
    assert [p for _, p, _ in names if p in shapes] == [p for _, p, _ in names]
    assert {p for _, p, _ in names} == set(shapes)
    assert len({k for k, _, _ in names}) == len(names)
    params = sum(int(np.prod(s)) for p, s in shapes.items() if p[0] == "params")
    assert params == {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160,
                      152: 60_192_808}[depth]
    if depth < 50:
        with pytest.raises(released.ReleasedModelError, match="ResNet-50/101/152"):
            released.caffe_units(depth)
        return
    units = released.caffe_units(depth)
    convs = {u.conv for u in units}
    # the prototxts' names: a, b, c in ResNet-50; a, b1, b2, ... in the long stages of 101/152
    last = {50: ["res3d", "res4f"], 101: ["res3b3", "res4b22"], 152: ["res3b7", "res4b35"]}[depth]
    assert {f"{b}_branch2c" for b in last + ["res2c", "res5c"]} <= convs
    assert len(convs) == depth + 4  # the depth-1 convs, 4 projections, fc1000
    caffe_paths = set()
    for u in units:
        caffe_paths.add(("params", *u.ours, "kernel"))
        if u.ours_bn:
            caffe_paths |= {(c, *u.ours_bn, leaf) for c, leaf in
                            [("params", "scale"), ("params", "bias"), ("batch_stats", "mean"),
                             ("batch_stats", "var")]}
    caffe_paths |= {("params", "conv1", "bias"), ("params", "fc", "bias")}
    caffe_model = create_model(f"imagenet_resnet{depth}", input_convention="caffe", conv1_bias=True,
                               pool_ceil_mode=True)
    assert caffe_paths == set(released.variable_shapes(caffe_model))
    assert [u.stride for u in units if u.conv.endswith(("a_branch2a", "a_branch1"))] == \
        [1, 1, 2, 2, 2, 2, 2, 2]  # res2a's branch1 and 2a, then res3a..res5a's (v1)


# ---- the command line: import, export, bad files -------------------------------------------------

def _cli(argv, capsys):
    from resnet_jax.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["resnet-jax", *argv])
        raise SystemExit(0)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    net = fakes.random_net(18, seed=3)
    path = tmp_path_factory.mktemp("tv") / "resnet18.safetensors"
    fakes.write_safetensors(path, fakes.torchvision_state(net))
    return path


@pytest.fixture(scope="module")
def imported18(resnet18_file, tmp_path_factory):
    """`resnet-jax import` of resnet18_file: its run folder."""
    from resnet_jax.cli import main

    run = tmp_path_factory.mktemp("imported") / "run"
    printed = io.StringIO()
    with pytest.raises(SystemExit) as exit_info, contextlib.redirect_stdout(printed):
        main(["resnet-jax", "import", str(resnet18_file), str(run)])
        raise SystemExit(0)
    assert exit_info.value.code == 0
    assert printed.getvalue().startswith("imagenet_resnet18 (11,689,512 params, 1000 classes, "
                                         "input torchvision) from ")
    return run


def test_import_export_round_trip_is_exact(resnet18_file, imported18, tmp_path, capsys):
    from resnet_jax.data.weight_files import read_safetensors

    run = imported18
    config = json.loads((run / "config.json").read_text())
    assert [config["model"][k] for k in ("input_convention", "stride_on_3x3", "conv1_bias")] == \
        ["torchvision", False, False]
    assert config["run"]["imported_from"].startswith("torchvision safetensors resnet18.safetensors sha256:")
    code, out, err = _cli(["export", str(run), str(tmp_path / "back.safetensors")], capsys)
    assert code == 0, err
    assert out.startswith(f"imagenet_resnet18 from {run} -> ")
    original, _ = read_safetensors(str(resnet18_file))
    back, metadata = read_safetensors(str(tmp_path / "back.safetensors"))
    assert list(back) == list(original)  # torchvision's names, in its order, BN counters included
    for key, value in original.items():
        assert back[key].dtype == value.dtype and back[key].shape == value.shape
        np.testing.assert_array_equal(back[key], value, err_msg=key)
    assert metadata["resnet_jax.model"] == "imagenet_resnet18"
    # (so importing the exported file again gives the run's variables, bit for bit)


def _refused(argv, out_dir, capsys, match):
    parent_before = sorted(os.listdir(out_dir.parent))
    code, out, err = _cli([*argv, str(out_dir)], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert re.search(match, lines[0]), lines[0]
    assert not out_dir.exists()  # nothing written, no temporary folder left
    assert sorted(os.listdir(out_dir.parent)) == parent_before
    return lines[0]


def test_malicious_pth_is_refused_without_running_it(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "resnet18.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("resnet18/data.pkl", pickle.dumps({"conv1.weight": Payload()}, protocol=2))
    _refused(["import", str(path)], tmp_path / "out", capsys, r"refusing to load (posix|os)\.system")
    assert not marker.exists()


def test_truncated_safetensors_names_the_first_missing_tensor(resnet18_file, tmp_path, capsys):
    data = resnet18_file.read_bytes()
    cut = tmp_path / "resnet18.safetensors"
    cut.write_bytes(data[:len(data) // 2])
    _refused(["import", str(cut)], tmp_path / "out", capsys,
             r"truncated: tensor 'layer4\.0\.conv2\.weight' needs bytes")


def test_wrong_depth_names_the_first_bad_tensor(resnet18_file, tmp_path, capsys):
    _refused(["import", str(resnet18_file), "--model", "imagenet_resnet34"], tmp_path / "out",
             capsys, r"layer1\.2\.conv1\.weight is missing")
    _refused(["import", str(resnet18_file), "--model", "imagenet_resnet50"], tmp_path / "out",
             capsys, r"layer1\.0\.conv1\.weight has shape \[64, 64, 3, 3\], expected \[64, 64, 1, 1\]")


def test_existing_out_is_left_alone(resnet18_file, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep").write_text("x")
    code, _, err = _cli(["import", str(resnet18_file), str(out)], capsys)
    assert code == 2 and "exists" in err
    assert os.listdir(out) == ["keep"]


@pytest.fixture(scope="module")
def caffe50(tmp_path_factory):
    net = fakes.random_net(50, seed=5, conv1_bias=True)
    folder = tmp_path_factory.mktemp("caffe")
    (folder / "ResNet_mean.binaryproto").write_bytes(
        fakes.mean_binaryproto(np.full((3, 224, 224), 110, np.float32)))
    return net, folder


def test_caffe_truncated_or_v1_5_is_refused(caffe50, tmp_path, capsys):
    net, folder = caffe50
    data = fakes.caffemodel_bytes(net, 50)
    cut = folder / "ResNet-50-cut.caffemodel"
    cut.write_bytes(data[:len(data) * 2 // 3])
    _refused(["import", str(cut)], tmp_path / "out", capsys,
             r"truncated: it breaks off in layer 'res5b_branch2b'")
    v15 = folder / "ResNet-50-v15.caffemodel"
    v15.write_bytes(fakes.caffemodel_bytes(net, 50, v15=True))
    _refused(["import", str(v15)], tmp_path / "out", capsys,
             r"res3a_branch2a has stride 1, but the v1 net .* has 2 there")
    alone = tmp_path / "ResNet-50-model.caffemodel"  # a whole model, no mean image beside it
    alone.write_bytes(data)
    _refused(["import", str(alone)], tmp_path / "out", capsys, r"mean image; give it with --mean")
    # a missing model file is said first, whatever else is missing
    _refused(["import", str(tmp_path / "nothere.caffemodel")], tmp_path / "out", capsys,
             r"nothere\.caffemodel: No such file or directory$")


# ---- fine-tuning from an imported file -----------------------------------------------------------

def _fine_tune_config(init_from, steps, **overrides):
    """resnet_jax/experiments/finetune_digits.py's ResNet-18 recipe, shortened."""
    import importlib.util

    path = os.path.join(os.path.dirname(__file__), "..", "experiments", "finetune_digits.py")
    spec = importlib.util.spec_from_file_location("finetune_digits", path)
    experiment = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(experiment)
    config = experiment.get_config("resnet18,torchvision")
    configs.override(config, init_from=init_from, steps=steps, eval_every=10, checkpoint_every=steps,
                     progress=False, **overrides)
    return config


def test_init_from_needs_the_files_options(resnet18_file, tmp_path):
    from resnet_jax.configs import ConfigError
    from resnet_jax.train.loop import train_and_evaluate

    config = _fine_tune_config(str(resnet18_file), 10, input_convention="paper")
    with pytest.raises(ConfigError, match="input_convention='torchvision'; set "
                                          "--config.input_convention=torchvision"):
        train_and_evaluate(config, str(tmp_path / "ft"))
    assert not (tmp_path / "ft").exists()


@pytest.mark.slow
def test_fine_tuning_an_imported_resnet18_on_digits(resnet18_file, tmp_path):
    """ResNet-18 from a torchvision file, a new 10-class fc, digits resized to 64x64: the backbone
    starts as the file's, the head fresh, and the error falls."""
    from resnet_jax.data import load_dataset
    from resnet_jax.train.engine import create_engine
    from resnet_jax.train.loop import train_and_evaluate

    # digits at 32x32 (ResNet-18's last stage at 1x1) rather than the experiment's 64x64: the same
    # program at a quarter of the cost
    config = _fine_tune_config(str(resnet18_file), 20, dataset="digits32")
    ds = load_dataset("digits32")
    assert ds.image_shape == (32, 32, 3)
    engine = create_engine(config, ds.crop_padding, ds.num_classes)
    fresh = engine.init_state(ds.image_shape)
    state = W.start_from(fresh, config, W.load_init(config))
    file_vars = R.read_weights(str(resnet18_file)).variables
    ours = layout.to_per_block({"params": state.params, "batch_stats": state.batch_stats})
    np.testing.assert_array_equal(ours["params"]["conv2_2"]["conv1"]["kernel"],
                                  file_vars["params"]["conv2_2"]["conv1"]["kernel"])
    np.testing.assert_array_equal(ours["batch_stats"]["conv5_1"]["bn1"]["var"],
                                  file_vars["batch_stats"]["conv5_1"]["bn1"]["var"])
    np.testing.assert_array_equal(ours["params"]["fc"]["kernel"], fresh.params["fc"]["kernel"])
    assert ours["params"]["fc"]["kernel"].shape == (512, 10)

    results = train_and_evaluate(config, str(tmp_path / "ft"))
    records = [json.loads(line) for line in (tmp_path / "ft" / "metrics.jsonl").read_text().splitlines()]
    tests = [r["test_error"] for r in records if "test_error" in r]
    assert records[-1]["train_error"] < records[0]["train_error"]
    assert tests[-1] < tests[0] and results["test_error"] < 0.7

    # exported, the fine-tuned net takes its training mean (digits32's) along, and comes back whole
    config_, variables, _ = W.read_run(str(tmp_path / "ft"))
    out = str(tmp_path / "ft.safetensors")
    written = R.torchvision_file(config_, variables, W.run_input_mean(config_, str(tmp_path / "ft")), out)
    assert written == [out, str(tmp_path / "ft.mean.npy")]
    back = R.read_weights(out)
    np.testing.assert_array_equal(back.input_mean, ds.pixel_mean())
    assert back.num_classes == 10 and back.fields["input_convention"] == "torchvision"
    jax.tree.map(np.testing.assert_array_equal, back.variables, variables)


def test_eval_of_an_imported_model_prints_the_published_numbers(imported18, tmp_path, capsys,
                                                                 monkeypatch):
    """`resnet-jax eval` on an imported torchvision ResNet-18: the centre-crop protocol with the
    file's input convention, top-1/top-5, and torchvision's published numbers beside."""
    from imagenet_fakes import fake_records

    from resnet_jax.data import imagenet
    from resnet_jax.data import imagenet_transforms as T

    monkeypatch.setattr(imagenet, "open_split", lambda split, data_dir: fake_records(8, seed=1))
    run = tmp_path / "run"
    shutil.copytree(imported18, run)
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["num_workers"] == -1  # the recipe's (per core); 2 images decode quicker in-process
    config["data"]["num_workers"] = 0
    (run / "config.json").write_text(json.dumps(config))
    code, out, err = _cli(["eval", "--workdir", str(run), "--max_images", "2",
                           "--json", str(tmp_path / "eval.json")], capsys)
    assert code == 0, err
    # an imported net was not trained here: its folder keeps "auto", resolved (and named) when tested
    assert config["data"]["image_backend"] == "auto"
    backend = T.default_backend()
    assert (f"imagenet_resnet18 on imagenet (validation, 2 images, center views by {backend}) at "
            "step 0") in out
    assert "published (torchvision docs): top-1 30.24%, top-5 10.92%" in out
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["input_convention"] == "torchvision" and result["num_images"] == 2
    assert result["image_backend"] == backend
    assert 0 <= result["test_top5_error"] <= result["test_error"] <= 1


@pytest.mark.slow  # a kernel, JAX and matplotlib in it: ~12 s, half this file's fast tier
def test_released_model_notebook_executes(imported18, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    notebook = os.path.join(os.path.dirname(__file__), "..", "notebooks", "released_model.ipynb")
    nb = nbformat.read(notebook, as_version=4)
    assert all(not c.outputs for c in nb.cells if c.cell_type == "code")
    monkeypatch.setenv("RESNET_JAX_WORKDIR", str(imported18))
    monkeypatch.setenv("RESNET_JAX_CROP", "64")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for c in code for o in c.outputs if o.output_type == "stream")
    assert "imagenet_resnet18, input convention torchvision, from torchvision safetensors" in text
    assert "conv2_x     256 filters" in text  # Table 1: 2 blocks of two 3x3, 64 convs
    assert "20 layers; first bn1, last conv5_2/bn2" in text  # 16 3x3 convs, stem, 3 projections
    assert len([o for c in code for o in c.outputs if "image/png" in o.get("data", {})]) == 3
