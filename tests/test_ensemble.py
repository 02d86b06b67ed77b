"""`resnet-jax eval --workdir A --workdir B ...`: an ensemble's scores are the members' softmax
averaged per image (and per view); each member is fed its own inputs; Table 5 renders."""

import json
import pathlib
import shutil

import numpy as np
import pytest

from test_evaluate import _eval  # `resnet-jax eval ...` in-process: (code, stdout, stderr)

# Scores are float32 softmax rows; two programs that compute the same mean of the same rows agree to
# a few float32 roundings of values <= 1.
EPS = 4 * np.finfo(np.float32).eps


def _errors(labels, scores):
    """Top-1/top-5 error written out here: the label's rank among the scores, a tie ranked by
    class index (as lax.top_k breaks it: random nets' softmax underflows to many exact zeros)."""
    label_scores = np.take_along_axis(scores, labels[:, None], 1)
    lower = np.arange(scores.shape[1])[None] < labels[:, None]
    rank = ((scores > label_scores) | ((scores == label_scores) & lower)).sum(1)
    return float(np.mean(rank >= 1)), float(np.mean(rank >= 5))


@pytest.fixture(scope="module")
def second_digits_run(tmp_path_factory):
    """A cifar_resnet14 trained 3 steps on digits, another seed: the tiny run's partner."""
    from tiny_runs import train_tiny

    return train_tiny(tmp_path_factory, "second_digits_run", "cifar_resnet14", seed=1)


def test_digits_ensemble_is_the_numpy_average_of_the_members_saved_scores(
        tiny_digits_run, second_digits_run, tmp_path, capsys):
    from resnet_jax.data import load_dataset

    members = [tiny_digits_run, second_digits_run]
    saved = []
    for i, run in enumerate(members):  # each member tested alone, its scores saved
        code, out, err = _eval(["--workdir", run, "--scores", str(tmp_path / f"m{i}.npz")], capsys)
        assert code == 0, err
        saved.append(np.load(tmp_path / f"m{i}.npz")["members"][0])
    code, out, err = _eval(["--workdir", members[0], "--workdir", members[1], "--scores",
                            str(tmp_path / "e.npz"), "--json", str(tmp_path / "e.json"),
                            "--table", str(tmp_path / "t.md")], capsys)
    assert code == 0, err
    got = np.load(tmp_path / "e.npz")
    labels = load_dataset("digits", "test").eval_labels
    assert got["ensemble"].shape == (360, 10) and (got["labels"] == labels).all()
    np.testing.assert_allclose(got["ensemble"], (saved[0] + saved[1]) / 2, rtol=0, atol=EPS)
    np.testing.assert_allclose(got["members"], np.stack(saved), rtol=0, atol=EPS)
    result = json.loads((tmp_path / "e.json").read_text())
    assert (result["ensemble"]["test_error"], result["ensemble"]["test_top5_error"]) == pytest.approx(
        _errors(labels, (saved[0] + saved[1]) / 2))
    for member, run in zip(result["members"], members):  # each as the training loop tested it
        trained = json.loads((pathlib.Path(run) / "results.json").read_text())
        assert member["test_error"] == pytest.approx(trained["test_error"], abs=1e-6)
        # the scores are the net's softmax: -log(score of the label) is the loop's cross-entropy
        # (float32 sums over 360 images)
        assert member["test_loss"] == pytest.approx(trained["test_loss"], rel=1e-5)
    assert out.splitlines()[-1].startswith("ensemble of 2 on digits (test, 360 images, single view, "
                                           f"softmax averaged): top-1 error "
                                           f"{100 * result['ensemble']['test_error']:.2f}%")
    table = (tmp_path / "t.md").read_text()
    assert "| ResNet (ILSVRC'15) | 3.57 | – |" in table and "| VGG (v5) | 6.8 | – |" in table
    assert "test server" in table
    assert f"| ours: ensemble of 2 (cifar_resnet8, cifar_resnet14) | " \
           f"{100 * result['ensemble']['test_top5_error']:.2f} |" in table


def test_members_on_other_data_are_refused_in_one_line(tiny_digits_run, tmp_path, capsys):
    other = tmp_path / "synthetic_run"
    shutil.copytree(tiny_digits_run, other)
    config = json.loads((other / "config.json").read_text())
    config["data"]["name"] = "synthetic"
    (other / "config.json").write_text(json.dumps(config))
    code, out, err = _eval(["--workdir", tiny_digits_run, "--workdir", str(other),
                            "--json", str(tmp_path / "e.json")], capsys)
    assert code == 2 and not out and len(err.strip().splitlines()) == 1
    assert "synthetic (test, 10 classes)" in err and "must agree" in err
    assert not (tmp_path / "e.json").exists()


def test_table5_declares_the_papers_numbers():
    from resnet_jax import experiments

    experiment = experiments.get("table5")
    assert {m: n["top5"].value for m, n in experiment.paper.items()} == {
        "VGG (ILSVRC'14)": 7.32, "GoogLeNet (ILSVRC'14)": 6.66, "VGG (v5)": 6.8, "PReLU-net": 4.94,
        "BN-inception": 4.82, "ResNet (ILSVRC'15)": 3.57}
    assert all("test set" in n["top5"].source for n in experiment.paper.values())
    assert experiment.get_config("resnet152").model.name == "imagenet_resnet152"


# ---- ImageNet: imported released models (random weights), each on its own input convention ------

SIZE, RESIZE = 64, 72  # small views: the nets are fully convolutional


def _import(tmp_path_factory, name, write):
    """`resnet-jax import` of a fake released file, its run tested at SIZE in-process."""
    from resnet_jax.cli import main

    folder = tmp_path_factory.mktemp(name)
    source = write(folder)
    run = folder / "run"
    with pytest.raises(SystemExit) as exit_info:
        main(["resnet-jax", "import", str(source), str(run)])
        raise SystemExit(0)
    assert exit_info.value.code == 0
    config = json.loads((run / "config.json").read_text())
    config["data"].update(num_workers=0, image_size=SIZE, eval_resize=RESIZE, test_scales=[SIZE, 80])
    config["run"]["eval_batch_size"] = 4
    (run / "config.json").write_text(json.dumps(config))
    return run


def _torchvision18(tmp_path_factory, seed):
    import released_fakes as fakes

    net = fakes.random_net(18, seed=seed)

    def write(folder):
        fakes.write_safetensors(folder / "resnet18.safetensors", fakes.torchvision_state(net))
        return folder / "resnet18.safetensors"

    return net, _import(tmp_path_factory, f"tv18_{seed}", write)


@pytest.fixture(scope="module")
def torchvision18(tmp_path_factory):
    return _torchvision18(tmp_path_factory, 3)


@pytest.fixture(scope="module")
def another_torchvision18(tmp_path_factory):
    return _torchvision18(tmp_path_factory, 4)


MEAN_BGR = (104.0, 117.0, 123.0)  # a flat mean image: resized to the views, it stays itself


@pytest.fixture(scope="module")
def caffe50(tmp_path_factory):
    import released_fakes as fakes

    net = fakes.random_net(50, seed=5, conv1_bias=True)

    def write(folder):
        mean = np.broadcast_to(np.asarray(MEAN_BGR, np.float32)[:, None, None], (3, 224, 224))
        (folder / "ResNet_mean.binaryproto").write_bytes(fakes.mean_binaryproto(mean))
        (folder / "ResNet-50-model.caffemodel").write_bytes(fakes.caffemodel_bytes(net, 50))
        return folder / "ResNet-50-model.caffemodel"

    return net, _import(tmp_path_factory, "caffe50", write)


@pytest.fixture
def fake_val(monkeypatch):
    from imagenet_fakes import fake_records

    from resnet_jax.data import imagenet

    records = fake_records(3, seed=1)
    monkeypatch.setattr(imagenet, "open_split", lambda split, data_dir: records)
    return records


def _softmax(logits):
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


@pytest.mark.numerics
def test_a_caffe_and_a_torchvision_member_each_get_their_own_inputs(torchvision18, caffe50, fake_val,
                                                                      tmp_path, capsys):
    """The ensemble's members against numpy forward passes in each framework's own convention
    (released_fakes): RGB/255 minus torchvision's mean over its std, and BGR 0-255 minus the mean
    image, on the same centre crops."""
    import released_fakes as fakes

    from resnet_jax.data import imagenet_transforms as T

    (tv_net, tv_run), (caffe_net, caffe_run) = torchvision18, caffe50
    code, out, err = _eval(["--workdir", str(tv_run), "--workdir", str(caffe_run), "--scores",
                            str(tmp_path / "e.npz")], capsys)
    assert code == 0, err
    assert "input torchvision" in out and "input caffe" in out
    crop = T.CenterCrop(SIZE, RESIZE, T.default_backend())
    views = np.stack([crop(dict(r))["image"] for r in fake_val])
    mean = np.broadcast_to(np.asarray(MEAN_BGR)[:, None, None], (3, SIZE, SIZE))
    reference = np.stack([
        _softmax(fakes.forward(tv_net, fakes.torchvision_input(views), caffe=False, stride_on_3x3=False)),
        _softmax(fakes.forward(caffe_net, fakes.caffe_input(views, mean), caffe=True, stride_on_3x3=False))])
    got = np.load(tmp_path / "e.npz")
    # float32 nets against float64 numpy (test_released's bound on the logits), through the softmax
    np.testing.assert_allclose(got["members"], reference, rtol=0, atol=1e-4)
    np.testing.assert_allclose(got["ensemble"], reference.mean(0), rtol=0, atol=1e-4)
    # fed the other member's inputs, a net's scores move far past that bound
    swapped = _softmax(fakes.forward(tv_net, fakes.caffe_input(views, mean), caffe=False,
                                     stride_on_3x3=False))
    assert np.abs(swapped - reference[0]).max() > 1e-2


@pytest.mark.parametrize("mode", ["center", "ten_crop", "multi_scale"])
def test_every_imagenet_mode_averages_the_members_per_image(torchvision18, another_torchvision18, fake_val,
                                                            mode, tmp_path, capsys):
    """Each member's per-image scores reproduce its own `eval` (same views, same view rule), and
    the ensemble's are their mean. (Two ResNet-18s: one compile per view shape.)"""
    runs = [str(torchvision18[1]), str(another_torchvision18[1])]
    alone = []
    for i, run in enumerate(runs):
        code, _, err = _eval(["--workdir", run, "--mode", mode, "--json", str(tmp_path / f"{i}.json")],
                             capsys)
        assert code == 0, err
        alone.append(json.loads((tmp_path / f"{i}.json").read_text()))
    code, out, err = _eval(["--workdir", runs[0], "--workdir", runs[1], "--mode", mode, "--scores",
                            str(tmp_path / "e.npz"), "--json", str(tmp_path / "e.json")], capsys)
    assert code == 0, err
    got, result = np.load(tmp_path / "e.npz"), json.loads((tmp_path / "e.json").read_text())
    labels = np.asarray([r["label"] for r in fake_val])
    assert (got["labels"] == labels).all() and result["mode"] == mode
    for member, single, scores in zip(result["members"], alone, got["members"]):
        assert (member["test_error"], member["test_top5_error"]) == pytest.approx(
            (single["test_error"], single["test_top5_error"]))
        assert member["test_loss"] == pytest.approx(single["test_loss"], rel=1e-5)
        assert _errors(labels, scores) == pytest.approx((member["test_error"], member["test_top5_error"]))
    np.testing.assert_allclose(got["ensemble"], got["members"].mean(0), rtol=0, atol=EPS)
    assert (result["ensemble"]["test_error"], result["ensemble"]["test_top5_error"]) == pytest.approx(
        _errors(labels, got["members"].mean(0)))
