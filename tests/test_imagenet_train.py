"""ImageNet through the shared training loop (host-fed grain batches), and the test-time views."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from imagenet_fakes import fake_records, jpeg

from resnet_jax import configs
from resnet_jax import experiments
from resnet_jax.analysis import imagenet_tables
from resnet_jax.cli import imagenet as imagenet_cli
from resnet_jax.configs import imagenet_config, imagenet_net_config, validate
from resnet_jax.data import imagenet
from resnet_jax.data import imagenet_transforms as T
from resnet_jax.data.imagenet_transforms import TenCrop
from resnet_jax.models import create_model, layout
from resnet_jax.train import feeds, imagenet_eval
from resnet_jax.train.engine import make_mesh
from resnet_jax.train.schedule import PlateauRule
from resnet_jax.data import open_dataset
from resnet_jax.train import loop
from resnet_jax.train.engine import create_engine
from resnet_jax.train.loop import ConfigError, train_and_evaluate
from resnet_jax.train.preemption import Preempted, PreemptionWatcher


@pytest.fixture()
def fake_imagenet(monkeypatch):
    splits = {"train": fake_records(32, seed=0), "validation": fake_records(8, seed=1)}
    monkeypatch.setattr(imagenet, "open_split", lambda split, data_dir: splits[split])
    return splits


def small_config(**overrides):
    c = imagenet_config("imagenet_resnet18", schedule="fixed")
    configs.override(c, image_size=32, scale_range=(36, 48), eval_resize=36, mean_images=32, num_workers=0,
                        batch_size=8, bn_group_size=4, eval_batch_size=8, steps=8, steps_per_call=1,
                        log_every=1, eval_every=8, checkpoint_every=8, progress=False, lr=0.02)
    configs.override(c, **overrides)
    return c


def test_resnet18_training_steps_decrease_the_loss(fake_imagenet, tmp_path):
    compiled = feeds.train_on_batches._cache_size()
    results = train_and_evaluate(small_config(), str(tmp_path))
    assert feeds.train_on_batches._cache_size() - compiled == 1  # 8 host-fed steps, one program
    with open(tmp_path / "metrics.jsonl") as f:
        losses = [json.loads(line)["loss"] for line in f]
    assert len(losses) == 8 and np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < np.mean(losses[:2]) - 0.5  # from ~ln(1000) = 6.9
    assert results["dataset"] == "imagenet2012" and results["params"] == 11_689_512
    assert 0 <= results["test_error"] <= 1 and "test_top5_error" in results
    assert list(tmp_path.glob("imagenet2012_mean_32_*.npy"))  # the mean image was cached

    # evaluation-only from the checkpoint (what `--eval_only` does; centre crop: the 10-crop test
    # is below) reproduces the loop's final evaluation of the same state
    ours = imagenet_eval.evaluate_checkpoint(small_config(), str(tmp_path), "center")
    assert ours["step"] == 8 and ours["test_images"] == 8
    assert ours["test_error"] == pytest.approx(results["test_error"])
    assert 0 <= ours["test_top5_error"] <= ours["test_error"] <= 1
    row = {"net": "resnet18", "run": "resnet18_A", "paper": {"top1": 27.88}, "ours": ours}
    text = imagenet_tables.markdown(experiments.get("table2"), "ten_crop", [row])
    assert f"| 27.88 | {100 * ours['test_error']:.2f} |" in text

    # the run recorded what image_backend "auto" resolved to, and is tested with it; resuming it
    # with the other backend stops in one line, before anything is written
    recorded = json.loads((tmp_path / "config.json").read_text())["data"]["image_backend"]
    assert recorded == T.default_backend() == ours["image_backend"]
    files = lambda: sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.rglob("*")  # noqa: E731
                           if p.name != ".lock")  # (each start takes the workdir's lock)
    before = files()
    other = {"fast": "pil", "pil": "fast"}[recorded]  # fast where it cannot run: also one line
    with pytest.raises(ConfigError, match="image_backend") as error:
        train_and_evaluate(small_config(steps=16, image_backend=other), str(tmp_path))
    assert "\n" not in str(error.value)
    assert files() == before


def test_imagenet_configs_validate(fake_imagenet):
    validate(imagenet_net_config("resnet34_C"))  # option C is fine on ImageNet
    bad = [small_config(scale_range=(16, 96)), small_config(lr_schedule="cosine"),
           small_config(model="cifar_resnet20"),
           small_config(batch_size=10)]  # not divisible by bn_group_size 4
    for config in bad:
        with pytest.raises(ConfigError):
            validate(config, num_devices=1)


def test_plateau_rule_divides_lr_after_patience():
    rule = PlateauRule(patience=2, min_delta=0.01, factor=0.1, max_drops=2)
    for error in (0.9, 0.8, 0.795, 0.79):  # the last two improve by less than min_delta
        rule.update(error)
    assert rule.scale == pytest.approx(0.1)
    for error in (0.7, 0.7, 0.7, 0.7, 0.7, 0.7):
        rule.update(error)
    assert rule.scale == pytest.approx(0.01)  # capped at max_drops


def plateau_config():
    """An lr drop at every validation after the first (no improvement by 0.5 ever counts), every
    2 steps: the lr after step 4 depends on the rule's state when step 4 was checkpointed."""
    return small_config(lr_schedule="plateau", lr_boundaries=(), plateau_patience=1,
                        plateau_min_delta=0.5, plateau_max_drops=3, steps=6, eval_every=2,
                        checkpoint_every=2)


def _lrs(workdir) -> dict:
    return {r["step"]: r["lr"] for r in map(json.loads, open(workdir / "metrics.jsonl"))}


@pytest.mark.parametrize("saved_state", [True, False], ids=["checkpoint", "legacy_replay"])
def test_resumed_plateau_run_keeps_the_uninterrupted_lr(fake_imagenet, tmp_path, monkeypatch,
                                                        saved_state):
    """Preempted at step 4 and resumed, the plateau rule's state comes back (from the checkpoint,
    or for checkpoints without it from metrics.jsonl): steps 5-6 train at the same lr."""
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    train_and_evaluate(plateau_config(), str(whole))
    lrs = _lrs(whole)
    assert lrs[2] == lrs[4] == pytest.approx(0.02) and lrs[6] == pytest.approx(0.002)  # a drop at 4

    with monkeypatch.context() as m:
        m.setattr(PreemptionWatcher, "should_stop", lambda self, step: step == 4)
        if not saved_state:  # a checkpoint as written before the rule's state was kept in it
            m.setattr(loop, "PLATEAU_META", "not_read_on_resume")
        with pytest.raises(Preempted):
            train_and_evaluate(plateau_config(), str(resumed))
    assert max(_lrs(resumed)) == 4
    train_and_evaluate(plateau_config(), str(resumed))
    assert _lrs(resumed) == lrs


def test_evaluating_does_not_change_the_lr(fake_imagenet, tmp_path):
    config = plateau_config()
    rule = PlateauRule.from_config(config)
    rule.update(0.9)
    engine = create_engine(config, 0, imagenet.NUM_CLASSES)
    data = feeds.feed(open_dataset("imagenet", "validation", None, 32), engine, 8, str(tmp_path),
                      rule)
    state = engine.init_state((32, 32, 3))
    before = (rule.state(), data.lr_scale())
    for _ in range(2):  # the same state, the same error: a second update would drop the lr
        assert 0 <= data.evaluate(state)["test_error"] <= 1
    assert (rule.state(), data.lr_scale()) == before


class ViewRecorder(nn.Module):
    """Logits that encode the view: lets the test see which views were averaged."""

    dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train=False):
        scale = self.param("scale", nn.initializers.ones, ())
        return scale * jnp.stack([x[..., 0].mean((1, 2)), x[:, :, :8, 0].mean((1, 2))], -1)


def test_ten_crop_averages_the_scores_of_ten_views(fake_imagenet):
    model = ViewRecorder()
    variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    records = fake_imagenet["validation"]
    mean = np.zeros((32, 32, 3), np.float32)
    got = imagenet_eval.evaluate("ten_crop", model, variables, records, mean, make_mesh(),
                                 batch_size=4, crop_size=32, resize=40)
    # reference: score every one of the 10 views on its own, average the softmax scores
    wrong = 0
    for r in records:
        views = TenCrop(32, 40)(r)["image"]
        assert views.shape == (10, 32, 32, 3)
        logits = model.apply(variables, jnp.asarray(views, jnp.float32) / 255.0)
        wrong += int(jnp.argmax(jax.nn.softmax(logits).mean(0)) != r["label"])
    assert got["test_images"] == len(records)
    assert got["test_error"] == pytest.approx(wrong / len(records))


LAST = layout.stacked_name("conv5")


def test_multi_scale_runs_the_net_fully_convolutionally_at_each_scale(fake_imagenet, monkeypatch):
    model = create_model("imagenet_resnet18", num_classes=1000)
    with jax.threefry_partitionable(False):  # as Engine.init_state: a fast XLA:CPU compile
        variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
    seen = []

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        path = "/".join(context.module.path)
        # conv5_2 runs inside the scan over conv5's repeated blocks (models/layout.py)
        if context.method_name == "__call__" and path in ("conv1", "conv5_2", LAST):
            seen.append((path, args[0].shape[1:3], out.shape[1:3]))
        return out

    pixels = np.random.default_rng(0).integers(0, 255, (100, 150, 3), dtype=np.uint8)
    records = [{"image": jpeg(pixels), "label": 1}]  # 2:3, one compile per scale
    scales = (64, 128)  # each (scale, aspect) compiles once: keep them few on CPU
    imagenet_eval.view_scores.clear_cache()  # the interceptor sees traces, not cached executables
    with nn.intercept_methods(record):
        got = imagenet_eval.evaluate("multi_scale", model, variables, records,
                                     np.zeros((64, 64, 3), np.float32), make_mesh(), batch_size=2,
                                     scales=scales)
    assert got["test_images"] == 1 and 0 <= got["test_error"] <= 1
    inputs = {shape for name, shape, _ in seen if name == "conv1"}
    # every scale ran on the whole (non-square) image, once per traced shape
    assert {min(s) for s in inputs} == set(scales) and any(s[0] != s[1] for s in inputs)
    last = {out for name, _, out in seen if name in ("conv5_2", LAST)}
    # the 2:3 image at 128: a 128x160 input -> a 4x5 map of fc scores, then averaged
    assert inputs == {(64, 64), (128, 160)}  # at 64 the 96-pixel long side is cut to 4/3 -> 64
    assert last == {(2, 2), (4, 5)}


def test_fig4_eval_only_tabulates_and_draws_logged_curves(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    (runs / "plain18").mkdir(parents=True)
    records = [{"step": s, "train_error": 0.9 - s / 1000, "loss": 5.0} for s in (100, 200, 300)]
    records[-1]["test_error"] = 0.61
    # whole lines, as MetricsLog writes them (a last line without its newline is still being written)
    (runs / "plain18" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    imagenet_cli.main(["fig4", "--table", "fig4", "--eval_only", str(runs), "--out", str(out)])
    rows = json.loads((out / "fig4_imagenet.json").read_text())
    assert [r["net"] for r in rows] == ["plain18", "plain34", "resnet18", "resnet34"]
    assert rows[0]["ours"]["val_error"] == 0.61 and rows[0]["ours"]["curves"]["step"] == [100, 200, 300]
    assert all(r["ours"] is None for r in rows[1:])  # not trained: reported as missing
    assert "| plain18 | plain18 | 300 | — | 61.00 | — | — |" in (out / "fig4_imagenet.md").read_text()
    assert (out / "fig4_imagenet_plain.png").stat().st_size > 0
    assert not (out / "fig4_imagenet_resnet.png").exists()
