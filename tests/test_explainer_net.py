"""The explainer article's small ResNet (models/explainer.py) and recipe (experiments/explainer.py):
its layers as the article lists them, with the choices the experiment names (3x3/1 stem of 64, 3x3/2
max pool, a 64 -> 256 projection), its recipe's numbers, and a table row that is not the paper's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from resnet_jax import configs, experiments
from resnet_jax.analysis import report
from resnet_jax.models import create_model, parse_model_name
from resnet_jax.models.complexity import model_complexity
from resnet_jax.train.schedule import step_decay

# (kernel, in, out) of every conv, in order: stem; basic unit; bottleneck unit; its projection
CONVS = [(3, 3, 64), (3, 64, 64), (3, 64, 64), (1, 64, 64), (3, 64, 64), (1, 64, 256), (1, 64, 256)]


def test_parameter_count_and_cost_follow_the_layer_list():
    """Conv weights (no bias), BN scale and shift per conv, fc 256 -> 10 with bias; every conv runs
    at 16x16 after the stem's pool, the stem at 32x32."""
    params = sum(k * k * i * o + 2 * o for k, i, o in CONVS) + 256 * 10 + 10
    macs = 32 * 32 * 3 * 3 * 3 * 64 + sum(16 * 16 * k * k * i * o for k, i, o in CONVS[1:]) + 256 * 10
    c = model_complexity("explainer_resnet7")
    assert (c.params, c.mult_adds) == (params, macs)
    assert params == 153_418  # the number the experiment's table prints


def test_units_run_at_16x16_and_the_basic_units_shortcut_is_an_identity():
    model = create_model("explainer_resnet7")
    x = jnp.zeros((2, 32, 32, 3))
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    logits, state = jax.eval_shape(
        lambda v: model.apply(v, x, capture_intermediates=True, mutable=["intermediates"]), variables)
    assert logits.shape == (2, 10)
    inter = state["intermediates"]
    assert inter["stage1_block1"]["__call__"][0].shape == (2, 16, 16, 64)
    assert inter["stage2_block1"]["__call__"][0].shape == (2, 16, 16, 256)
    assert "shortcut" not in variables["params"]["stage1_block1"]
    assert variables["params"]["stage2_block1"]["shortcut"]["proj_conv"]["kernel"].shape == (1, 1, 64, 256)


@pytest.mark.parametrize("bad", ["explainer_resnet8", "explainer_resnet", "explainer7"])
def test_other_depths_are_rejected(bad):
    with pytest.raises(ValueError, match="unknown model"):
        parse_model_name(bad)


@pytest.mark.numerics
def test_forward_is_the_articles_sequence_of_layers():
    """The net in evaluation mode against the same layers written out with lax ops: conv -> BN ->
    ReLU -> max pool; conv3x3-BN-ReLU-conv3x3-BN-add-ReLU; 1x1-BN-ReLU-3x3-BN-ReLU-1x1-BN, added
    to the projection (1x1 conv + BN), ReLU; mean over positions; fc. BN with epsilon 1e-5 and
    running variances of 1e-4..1e-3, so another epsilon (Keras' 1e-3, say) shows."""
    model = create_model("explainer_resnet7")
    x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
    with jax.threefry_partitionable(False):
        variables = jax.jit(model.init)(jax.random.key(0), x)
    rng = np.random.default_rng(0)
    stats = jax.tree_util.tree_map_with_path(
        lambda p, v: jnp.asarray(rng.uniform(1e-4, 1e-3, v.shape) if p[-1].key == "var"
                                 else rng.normal(0, 0.01, v.shape), jnp.float32), variables["batch_stats"])
    params = jax.tree.map(lambda v: v + jnp.asarray(rng.normal(0, 0.1, v.shape), jnp.float32),
                          variables["params"])
    out = model.apply({"params": params, "batch_stats": stats}, x)

    def conv(p, y):
        return jax.lax.conv_general_dilated(y, p["kernel"], (1, 1), "SAME", precision="highest",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def bn(p, s, y):
        return (y - s["mean"]) / jnp.sqrt(s["var"] + 1e-5) * p["scale"] + p["bias"]

    relu = jax.nn.relu
    y = relu(bn(params["bn1"], stats["bn1"], conv(params["conv1"], x)))
    y = jax.lax.reduce_window(y, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1),
                              ((0, 0), (1, 1), (1, 1), (0, 0)))
    p, s = params["stage1_block1"], stats["stage1_block1"]
    r = relu(bn(p["bn1"], s["bn1"], conv(p["conv1"], y)))
    y = relu(bn(p["bn2"], s["bn2"], conv(p["conv2"], r)) + y)
    p, s = params["stage2_block1"], stats["stage2_block1"]
    r = relu(bn(p["bn1"], s["bn1"], conv(p["conv1"], y)))
    r = relu(bn(p["bn2"], s["bn2"], conv(p["conv2"], r)))
    r = bn(p["bn3"], s["bn3"], conv(p["conv3"], r))
    q, t = p["shortcut"], s["shortcut"]
    y = relu(r + bn(q["proj_bn"], t["proj_bn"], conv(q["proj_conv"], y)))
    expected = y.mean(axis=(1, 2)) @ params["fc"]["kernel"] + params["fc"]["bias"]
    # float32 sums of up to 576 terms through 7 layers (BN scales relative errors, not adds them):
    # relative to the logits' scale
    scale = float(jnp.abs(expected).max())
    tol = scale * np.sqrt(576) * 7 * np.finfo(np.float32).eps
    np.testing.assert_allclose(out, expected, rtol=0, atol=tol)


def test_the_experiments_recipe_is_the_articles():
    """SGD 0.9, lr 0.1 dropped once to 0.01 (at half of training: the experiment's named choice),
    weight decay 5e-4, batch 128, 150 epochs of CIFAR-10's 50,000 images, scaling and rotation on;
    the rest the paper's CIFAR recipe (crop and flip, BN over 64, no warm-up)."""
    config = experiments.get("explainer").get_config("resnet7")
    configs.validate(config)
    optim, run = config.optim, config.run
    model, data = config.model, config.data
    assert (model.name, model.shortcut, data.name) == ("explainer_resnet7", "B", "cifar10")
    assert (optim.momentum, optim.lr, optim.weight_decay, run.batch_size) == (0.9, 0.1, 5e-4, 128)
    assert abs(run.steps * run.batch_size / 50_000 - 150) < 0.5 / 50_000 * run.batch_size
    schedule = step_decay(optim.lr, run.steps, tuple(optim.lr_boundaries), optim.lr_decay)
    lrs = np.asarray(jax.vmap(schedule)(jnp.arange(run.steps)))
    np.testing.assert_allclose(sorted(set(lrs.round(8))), [0.01, 0.1])
    assert np.argmin(lrs > 0.05) == round(run.steps / 2) and not optim.warmup
    assert configs.scale_rotation(config) == {"scale_range": (0.9, 1.1), "max_degrees": 15.0}


def test_its_table_row_says_the_recipe_is_not_the_papers():
    experiment = experiments.get("explainer")
    run = {"model": "explainer_resnet7", "test_error": 0.25, "dataset": "digits", "eval_split": "test",
           "steps": 300, "wall_time": 60.0, "params": 153_418, "workdir": "runs/resnet7"}
    table = experiment.tables[0]
    text = report.markdown(report.rows([run], table, experiment), table, experiment)
    row = next(line for line in text.splitlines() if line.startswith("| ResNet-7"))
    assert "153,418" in row and "25.00" in row and "not the paper's" in row
