"""Trained CIFAR ResNets from PyTorch files (akamaster's legacy .th, chenyaofo's zip .pt) as runs:
crafted files of every published net converted and compared with numpy forwards in the files' own
conventions, exported back bit for bit, refused when bad; the real akamaster ResNet-20 on the
first 1,017 real CIFAR-10 test images; fine-tuning from an imported run."""

import contextlib
import io
import json
import os
import re

import jax
import numpy as np
import pytest

import torch_fakes as fakes
from test_released import _cli, _refused  # `resnet-jax ...` in-process; a refusal's one line
from resnet_jax import configs
from resnet_jax.data import torch_files
from resnet_jax.models import create_model, layout, released, released_cifar
from resnet_jax.train import released as R
from resnet_jax.train import run_weights as W

needs_real = pytest.mark.skipif(not os.path.exists(fakes.REAL_RESNET20),
                                reason="../shared/real (akamaster's ResNet-20, CIFAR-10 images) is absent")


def _model(imported):
    f = imported.fields
    return create_model(f["model"], shortcut=f["shortcut"], num_classes=imported.num_classes,
                        zero_pad=f["zero_pad"], input_convention=f["input_convention"],
                        input_std=f["input_std"])


def _our_logits(imported, images, model=None):
    from resnet_jax.data.augment import normalize

    variables = layout.to_stacked(imported.variables)
    x = normalize(images, imported.input_mean)
    return np.asarray(jax.jit((model or _model(imported)).apply)(variables, x))


def _images(seed, n=4):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def _akamaster(depth, tmp_path, monkeypatch):
    state = fakes.cifar_state(depth, option="A", seed=depth, prefix="module.")
    path = tmp_path / f"resnet{depth}-0123abcd.th"
    path.write_bytes(fakes.legacy_bytes({"best_prec1": 92.25, "state_dict": state}, monkeypatch))
    monkeypatch.undo()
    return path, state


def _chenyaofo(depth, classes, tmp_path, monkeypatch):
    state = fakes.cifar_state(depth, option="B", num_classes=classes, seed=depth + classes, counters=True)
    path = tmp_path / f"cifar{classes}_resnet{depth}-0123abcd.pt"
    path.write_bytes(fakes.zip_bytes(state, monkeypatch))
    monkeypatch.undo()
    return path, state


def _compare(ours, reference):
    # float32 (XLA, BN as (x - mean) * rsqrt(var + eps), the input divided by the std after the
    # mean is taken off) against float64 numpy: only rounding separates them, a few 1e-7 of the
    # logits' scale; 2e-5 leaves room for other instruction sets' summation orders, while a
    # semantic slip (channel placement, std, fc layout) moves logits by a large fraction of it.
    scale = np.abs(reference).max()
    np.testing.assert_allclose(ours, reference, rtol=0, atol=2e-5 * scale)
    assert (ours.argmax(-1) == reference.argmax(-1)).all()


@pytest.mark.numerics
@pytest.mark.parametrize("depth", [20, 56])
def test_akamaster_nets_match_a_numpy_forward_in_their_conventions(depth, tmp_path, monkeypatch):
    path, state = _akamaster(depth, tmp_path, monkeypatch)
    imported = R.read_weights(str(path))
    f = imported.fields
    assert (f["model"], f["shortcut"], f["zero_pad"], f["dataset"]) == (f"cifar_resnet{depth}", "A", "both",
                                                                       "cifar10")
    assert f["input_std"] == fakes.AKAMASTER_STD
    np.testing.assert_array_equal(imported.input_mean.ravel(), np.float32(fakes.AKAMASTER_MEAN))
    images = _images(depth)
    x = fakes.normalize(images, fakes.AKAMASTER_MEAN, fakes.AKAMASTER_STD)
    reference = fakes.forward(state, x, option="A", prefix="module.")
    _compare(_our_logits(imported, images), reference)
    # the zeros after the identity (ours) are another function of the same weights
    after = _our_logits(imported, images, create_model(f["model"], shortcut="A", zero_pad="after",
                                                       input_convention="torchvision",
                                                       input_std=f["input_std"]))
    assert np.abs(after - reference).max() > 0.05 * np.abs(reference).max()


@pytest.mark.numerics
@pytest.mark.parametrize("classes", [10, 100])
def test_chenyaofo_nets_match_a_numpy_forward_in_their_conventions(classes, tmp_path, monkeypatch):
    path, state = _chenyaofo(20, classes, tmp_path, monkeypatch)
    imported = R.read_weights(str(path))
    f = imported.fields
    assert (f["shortcut"], f["dataset"], imported.num_classes) == ("B", f"cifar{classes}", classes)
    mean, std = fakes.CHENYAOFO_NORM[classes]
    assert f["input_std"] == std
    images = _images(classes)
    reference = fakes.forward(state, fakes.normalize(images, mean, std), option="B")
    _compare(_our_logits(imported, images), reference)


def test_published_errors_are_the_publishers_numbers():
    """akamaster's README gives errors; chenyaofo's README gives top-1 accuracies."""
    assert released_cifar.PUBLISHED[("akamaster", 10)] == {20: 8.27, 32: 7.37, 44: 6.90, 56: 6.61,
                                                           110: 6.32, 1202: 6.18}
    accuracies = {10: (92.60, 93.53, 94.01, 94.37), 100: (68.83, 70.16, 71.63, 72.63)}
    for classes, accs in accuracies.items():
        errors = released_cifar.PUBLISHED[("chenyaofo", classes)]
        assert errors == {d: pytest.approx(100 - a, abs=1e-9) for d, a in zip((20, 32, 44, 56), accs)}


# ---- import -> export, bit for bit -----------------------------------------------------------------

def _same_file(a, b):
    """Two torch files hold the same tensors (bytes, dtypes, shapes, names, order), wrapper, form."""
    ra, rb = torch_files.read_torch(str(a)), torch_files.read_torch(str(b))
    assert (ra.form, ra.rebuild, ra.wrapper) == (rb.form, rb.rebuild, rb.wrapper)
    assert list(ra.state) == list(rb.state)
    for key, value in ra.state.items():
        assert (value.dtype, value.shape) == (rb.state[key].dtype, rb.state[key].shape), key
        assert value.tobytes() == rb.state[key].tobytes(), key


def _round_trip_in_memory(path):
    """import then export without a run folder (the folder's checkpoint holds float32 as is:
    test_import_export_through_run_folders)."""
    from resnet_jax.data import torch_write
    from resnet_jax.train import released_cifar as cifar_files

    imported = R.read_weights(str(path))
    config = W.run_config(imported)
    file = cifar_files.to_torch_file(config, imported.variables, imported.input_mean, imported.record)
    data = torch_write.legacy_bytes(file) if file.form == torch_files.LEGACY else torch_write.zip_bytes(file)
    back = path.parent / ("back" + path.suffix)
    back.write_bytes(data)
    _same_file(path, back)


@pytest.mark.parametrize("depth", fakes.AKAMASTER_DEPTHS_FAST)
def test_every_akamaster_depth_round_trips_bit_exact(depth, tmp_path, monkeypatch):
    path, _ = _akamaster(depth, tmp_path, monkeypatch)
    _round_trip_in_memory(path)


@pytest.mark.parametrize("depth,classes", fakes.CHENYAOFO_MODELS)
def test_every_chenyaofo_model_round_trips_bit_exact(depth, classes, tmp_path, monkeypatch):
    path, _ = _chenyaofo(depth, classes, tmp_path, monkeypatch)
    _round_trip_in_memory(path)


def test_import_export_through_run_folders(tmp_path, monkeypatch, capsys):
    """`resnet-jax import` then `resnet-jax export`: the files' own forms, names, wrapper, prefix
    and BN counters come back, every tensor bit for bit; eval prints the published error."""
    for path in (_akamaster(32, tmp_path, monkeypatch)[0], _chenyaofo(20, 100, tmp_path, monkeypatch)[0]):
        run = tmp_path / f"run_{path.stem}"
        code, out, err = _cli(["import", str(path), str(run)], capsys)
        assert code == 0, err
        config = json.loads((run / "config.json").read_text())
        record = json.loads((run / W.RECORD).read_text())
        assert config["run"]["imported_from"] == (f"{record['family']} torch {record['form']} {path.name} "
                                           f"sha256:{record['sha256']}")
        back = tmp_path / f"back{path.suffix}"
        code, out, err = _cli(["export", str(run), str(back)], capsys)
        assert code == 0, err
        name = config["model"]["name"]
        assert out.startswith(f"{name} from {run} -> {back} (torch {record['form']} format)")
        _same_file(path, back)


# ---- bad files: one line, exit 2, nothing written -------------------------------------------------

def test_a_malicious_legacy_file_runs_nothing(tmp_path, capsys):
    import pickle

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    head = b"".join(pickle.dumps(v, protocol=2)
                    for v in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}))
    path = tmp_path / "resnet20-evil.th"
    path.write_bytes(head + pickle.dumps({"state_dict": {"module.conv1.weight": Payload()}}, protocol=2))
    _refused(["import", str(path)], tmp_path / "out", capsys, r"refusing to load (posix|os)\.system")
    assert not marker.exists()


def test_bad_cifar_files_name_their_first_bad_tensor(tmp_path, monkeypatch, capsys):
    path, state = _akamaster(20, tmp_path, monkeypatch)
    _refused(["import", str(path), "--model", "cifar_resnet32"], tmp_path / "out", capsys,
             r"layer1\.3\.conv1\.weight is missing \(a ResNet-32 has it\)")
    data = path.read_bytes()
    cut = tmp_path / "resnet20-cut.th"
    cut.write_bytes(data[:len(data) - 40_000])
    _refused(["import", str(cut)], tmp_path / "out", capsys,
             r"cut\.th: tensor 'module\.[\w.]+' has no data: the file is truncated")
    bad = dict(state)
    bad["module.layer2.1.conv2.weight"] = bad["module.layer2.1.conv2.weight"][:, :16]
    (tmp_path / "misshaped.th").write_bytes(fakes.legacy_bytes({"state_dict": bad}, monkeypatch))
    monkeypatch.undo()
    _refused(["import", str(tmp_path / "misshaped.th")], tmp_path / "out", capsys,
             r"module\.layer2\.1\.conv2\.weight has shape \[32, 16, 3, 3\], expected \[32, 32, 3, 3\]|"
             r"layer2\.1\.conv2\.weight has shape \[32, 16, 3, 3\], expected \[32, 32, 3, 3\]")
    del bad["module.layer2.1.conv2.weight"]
    bad.pop("module.layer3.0.bn1.bias")
    (tmp_path / "holed.th").write_bytes(fakes.legacy_bytes({"state_dict": bad}, monkeypatch))
    monkeypatch.undo()
    _refused(["import", str(tmp_path / "holed.th")], tmp_path / "out", capsys,
             r"layer2\.1\.conv2\.weight is missing \(a ResNet-20 has it\)")


def test_export_refuses_a_net_no_published_code_runs(tiny_digits_run, tmp_path, capsys):
    """A net trained here subtracts its per-pixel training mean: neither family's code does."""
    code, out, err = _cli(["export", tiny_digits_run, str(tmp_path / "x.th")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert re.search(r"akamaster's code cannot run this net as it is: zero_pad=after", err), err
    assert not (tmp_path / "x.th").exists()


# ---- the real file on real images -----------------------------------------------------------------

@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    if not os.path.exists(fakes.REAL_RESNET20):
        pytest.skip("../shared/real (akamaster's ResNet-20, CIFAR-10 images) is absent")
    from resnet_jax.cli import main

    run = tmp_path_factory.mktemp("real") / "resnet20"
    with pytest.raises(SystemExit) as e, contextlib.redirect_stdout(io.StringIO()):
        main(["resnet-jax", "import", fakes.REAL_RESNET20, str(run)])
        raise SystemExit(0)
    assert e.value.code == 0
    return run


@needs_real
def test_eval_of_the_real_resnet20_on_the_real_subset_prints_the_published_error(real_run, capsys,
                                                                                  tmp_path):
    """`resnet-jax eval` reads the 1,017-image test batch alone (an evaluation subset, no training
    batches: the imported net brings its input mean), says n, and puts akamaster's 8.27 % beside."""
    folder = os.path.dirname(fakes.REAL_CIFAR10_TEST)
    code, out, err = _cli(["eval", "--workdir", str(real_run), "--data_dir", folder,
                           "--json", str(tmp_path / "eval.json")], capsys)
    assert code == 0, err
    lines = out.strip().splitlines()
    # the line names the form it read (here the extracted binary folder) and the images it counted
    assert lines[0].startswith("cifar_resnet20 on cifar10 from cifar-10-batches-bin/ (extracted folder) "
                               "(test, 1017 images, single view) at step 0: "), lines[0]
    assert lines[1] == ("published (akamaster/pytorch_resnet_cifar10 README, the whole test set): "
                        "test error 8.27%")
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["num_images"] == 1017 and result["published"]["test_error"] == 0.0827
    # one standard error on 1,017 images is 0.87 points: 2 points is over two
    assert abs(result["test_error"] - 0.0827) < 0.02, result["test_error"]


@pytest.mark.slow  # the numpy forward: tens of seconds of float64 on a loaded 2-core machine
@pytest.mark.numerics
@needs_real
def test_the_imported_real_resnet20_predicts_as_a_numpy_forward_in_akamasters_conventions(real_run):
    """Every one of the 1,017 real images gets the class the file's own conventions give (numpy,
    float64, written from resnet.py/trainer.py: NCHW, zeros on both sides of the option-A identity,
    x/255 minus (0.485, 0.456, 0.406) over (0.229, 0.224, 0.225)), and the error is near akamaster's
    published 8.27 % (on all 10,000; one standard error on 1,017 images is
    sqrt(0.083 * 0.917 / 1017) = 0.87 points, so 2 points is over two). With our zeros-after
    placement instead the same weights lose most of their accuracy (a shape-correct transplant's
    trap)."""
    images, labels = fakes.read_cifar_bin(fakes.REAL_CIFAR10_TEST)
    assert len(labels) == 1017 and list(labels[:10]) == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]  # its README
    state = torch_files.read_torch(fakes.REAL_RESNET20).state
    reference = fakes.forward(state, fakes.normalize(images, fakes.AKAMASTER_MEAN, fakes.AKAMASTER_STD),
                              option="A", prefix="module.")
    imported = R.read_weights(fakes.REAL_RESNET20)
    ours = _our_logits(imported, images)
    _compare(ours, reference)
    assert abs((ours.argmax(-1) != labels).mean() - 0.0827) < 0.02
    f = imported.fields
    after = create_model(f["model"], shortcut="A", zero_pad="after", input_convention="torchvision",
                         input_std=f["input_std"])
    assert (_our_logits(imported, images, after).argmax(-1) == labels).mean() < 0.5


# ---- fine-tuning from an imported CIFAR run -------------------------------------------------------

def test_init_from_an_imported_cifar100_run_starts_digits_with_a_new_fc(tmp_path, monkeypatch, capsys):
    """chenyaofo's CIFAR-100 ResNet-20 imported, then `init_from` it on digits (32x32, 10 classes):
    the backbone is the file's, the 100-class fc is replaced by a fresh 10-class one; the
    file's model options are required (one line names the flags)."""
    from resnet_jax.configs import ConfigError, cifar_config
    from resnet_jax.data import load_dataset
    from resnet_jax.train.engine import create_engine

    path, _ = _chenyaofo(20, 100, tmp_path, monkeypatch)
    run = tmp_path / "c100"
    assert _cli(["import", str(path), str(run)], capsys)[0] == 0
    config = cifar_config("cifar_resnet20")
    configs.override(config, dataset="digits32", init_from=str(run), batch_size=32, bn_group_size=0)
    with pytest.raises(ConfigError, match=r"shortcut='B'.*--config\.shortcut=B --config\.input_convention="
                                          r"torchvision --config\.input_std=\(0\.2673,0\.2564,0\.2761\)$"):
        W.load_init(config)
    configs.override(config, shortcut="B", input_convention="torchvision", input_std=(0.2673, 0.2564, 0.2761))
    ds = load_dataset("digits32")
    engine = create_engine(config, ds.crop_padding, ds.num_classes)
    fresh = engine.init_state(ds.image_shape)
    state = W.start_from(fresh, config, W.load_init(config))
    ours = layout.to_per_block({"params": state.params, "batch_stats": state.batch_stats})
    theirs = R.read_weights(str(path)).variables
    np.testing.assert_array_equal(ours["params"]["stage3_block1"]["shortcut"]["proj_conv"]["kernel"],
                                  theirs["params"]["stage3_block1"]["shortcut"]["proj_conv"]["kernel"])
    np.testing.assert_array_equal(ours["batch_stats"]["stage2_block3"]["bn2"]["var"],
                                  theirs["batch_stats"]["stage2_block3"]["bn2"]["var"])
    assert ours["params"]["fc"]["kernel"].shape == (64, 10)
    np.testing.assert_array_equal(ours["params"]["fc"]["kernel"], np.asarray(fresh.params["fc"]["kernel"]))
    assert released.variable_shapes(engine.model, 32)[("params", "fc", "kernel")] == (64, 10)
