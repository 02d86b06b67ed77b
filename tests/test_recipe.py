"""The recipe's details: Caffe-form momentum (and the optax form as an option), the mean subtracted
before the zero padding, He init on the FC layer."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from resnet_jax import configs
from resnet_jax.configs import cifar_config
from resnet_jax.data.augment import normalize, pad_crop_flip
from resnet_jax.models import create_model
from resnet_jax.train import checkpoint
from resnet_jax.train.engine import make_optimizer
from resnet_jax.train.loop import run_identity

MOMENTUM, WEIGHT_DECAY = 0.9, 1e-4


def optimizer_steps(form: str, lrs, grads, w0, nesterov: bool = False) -> np.ndarray:
    """The weights after each step of make_optimizer's SGD, the lr injected per step as
    Engine.train_step does."""
    config = configs.override(cifar_config(), momentum_form=form, momentum=MOMENTUM,
                              weight_decay=WEIGHT_DECAY, lr=lrs[0], nesterov=nesterov)
    tx = make_optimizer(config)
    params = {"w": jnp.asarray(w0, jnp.float32)}
    state, weights = tx.init(params), []
    update = jax.jit(tx.update)
    for lr, g in zip(lrs, grads):
        state.hyperparams["learning_rate"] = jnp.asarray(lr, jnp.float32)
        updates, state = update({"w": jnp.asarray(g, jnp.float32)}, state, params)
        params = optax.apply_updates(params, updates)
        weights.append(np.asarray(params["w"], np.float64))
    return np.stack(weights)


def numpy_steps(form: str, lrs, grads, w0, nesterov: bool = False) -> np.ndarray:
    """The update rules in float64, as written in the papers' code (Nesterov: Caffe's
    NesterovSolver, w := w - ((1+m)*v_new - m*v_old); PyTorch's SGD(nesterov=True),
    w := w - lr*(g + m*v_new))."""
    w, v, weights = np.asarray(w0, np.float64), 0.0, []
    for lr, g in zip(lrs, grads):
        g = g + WEIGHT_DECAY * w
        if form == "caffe":  # Caffe's SGDSolver: v := m*v + lr*g; w := w - v
            v_old, v = v, MOMENTUM * v + lr * g
            w = w - ((1 + MOMENTUM) * v - MOMENTUM * v_old if nesterov else v)
        else:  # optax.sgd / PyTorch: v := m*v + g; w := w - lr*v
            v = MOMENTUM * v + g
            w = w - lr * (g + MOMENTUM * v if nesterov else v)
        weights.append(w)
    return np.stack(weights)


def step_sizes(w0, weights) -> np.ndarray:
    return -np.diff(np.concatenate([np.asarray(w0, np.float64)[None], weights]), axis=0)


# 40 steps at 0.01 (the ResNet-110 warm-up), 40 at 0.1, 40 at 0.01 (an lr drop).
LRS = [0.01] * 40 + [0.1] * 40 + [0.01] * 40
SWITCH, DROP = 40, 80


@pytest.mark.numerics
@pytest.mark.parametrize("nesterov", [False, True], ids=["momentum", "nesterov"])
@pytest.mark.parametrize("form", ["caffe", "optax"])
def test_momentum_forms_follow_their_update_rules(form, nesterov):
    rng = np.random.default_rng(0)
    grads = rng.normal(size=(len(LRS), 5)) + 1.0
    w0 = rng.normal(size=5)
    ours = optimizer_steps(form, LRS, grads, w0, nesterov)
    reference = numpy_steps(form, LRS, grads, w0, nesterov)
    # Nesterov is a different trajectory: the reference would catch a flag that did nothing
    assert np.abs(numpy_steps(form, LRS, grads, w0, not nesterov) - reference).max() > 1e-3
    # float32 against float64: a few roundings (eps 6e-8) per step, accumulated over 120 steps
    # and amplified at most 1/(1-m) = 10x by the velocity; 1e-5 of the weights is far above that
    # and far below the forms' difference (next test).
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-5 * np.abs(reference).max())


@pytest.mark.numerics
def test_caffe_form_carries_the_old_lr_through_a_switch_and_optax_form_jumps():
    """With a constant gradient (no weight decay, which only adds a tiny term) both forms reach the
    step lr*g/(1-m); at a change of lr the Caffe velocity still holds the old lr's steps and moves
    over ~1/(1-m) steps, while the optax velocity is rescaled by the new lr at once."""
    grads = np.ones((len(LRS), 1))
    caffe = step_sizes([0.0], optimizer_steps("caffe", LRS, grads, [0.0]))[:, 0]
    optax_ = step_sizes([0.0], optimizer_steps("optax", LRS, grads, [0.0]))[:, 0]
    for form, ours in (("caffe", caffe), ("optax", optax_)):
        weights = numpy_steps(form, LRS, grads, [0.0])
        # a step is a difference of float32 weights: each rounded to eps*|w|, besides the velocity's
        # own float32 error (as in the test above)
        np.testing.assert_allclose(ours, step_sizes([0.0], weights)[:, 0], rtol=1e-5,
                                   atol=np.finfo(np.float32).eps * np.abs(weights).max())
    # (the velocity is within 0.9^40 = 1.5% of steady before each change)
    # the warm-up's switch 0.01 -> 0.1: optax 10x at once; Caffe 0.9*old + 0.1*g = 1.9x the old step
    assert optax_[SWITCH] / optax_[SWITCH - 1] == pytest.approx(10.0, rel=0.01)
    assert caffe[SWITCH] / caffe[SWITCH - 1] == pytest.approx(1.9, rel=0.02)
    assert caffe[SWITCH + 9] < 0.7 * optax_[SWITCH + 9]  # still on its way after 10 steps
    # the drop 0.1 -> 0.01: optax / 10 at once; Caffe keeps 91% of the step, then decays by m
    assert optax_[DROP] / optax_[DROP - 1] == pytest.approx(0.1, rel=0.01)
    assert caffe[DROP] / caffe[DROP - 1] == pytest.approx(0.91, rel=0.02)
    # constant lr long enough: both forms take the same steps
    np.testing.assert_allclose(caffe[DROP - 1], optax_[DROP - 1], rtol=0.02)


def test_momentum_form_is_part_of_the_run_identity():
    """The two forms give different trajectories and optimizer-state trees: a checkpoint of the
    previous release (no momentum_form saved = optax) does not resume under the Caffe default."""
    config = cifar_config("cifar_resnet8")
    assert config.optim.momentum_form == "caffe"
    old_meta = {k: v for k, v in run_identity(config).items() if k != "momentum_form"}
    with pytest.raises(checkpoint.CheckpointError, match="momentum_form='optax', not 'caffe'"):
        checkpoint._check_identity(old_meta, run_identity(config), "W/checkpoints/100")
    config.optim.momentum_form = "optax"
    checkpoint._check_identity(old_meta, run_identity(config), "W/checkpoints/100")


@pytest.mark.numerics
def test_mean_is_subtracted_before_zero_padding(digits_engine):
    engine, ds, data = digits_engine
    seed, step, pad = np.int32(3), np.int32(5), ds.crop_padding
    images, labels = jax.jit(engine.training_batch)(seed, step, data)
    images = np.asarray(images)
    idx = np.asarray(jax.jit(engine.batch_indices, static_argnums=2)(seed, step, len(ds.train_images)))
    np.testing.assert_array_equal(labels, ds.train_labels[idx])
    # Where each output pixel came from: the same key's crops and flips of a coordinate image
    # (1-based, so the zero padding marks the padded pixels).
    batch, height, width, _ = images.shape
    ys, xs = np.meshgrid(np.arange(1, height + 1), np.arange(1, width + 1), indexing="ij")
    coords = np.broadcast_to(np.stack([ys, xs, np.ones_like(ys)], -1), images.shape).astype(np.float32)
    source = np.asarray(pad_crop_flip(jax.random.fold_in(engine.key(seed, 2), step), jnp.asarray(coords),
                                      pad)).astype(int)
    padded = source[..., 2] == 0
    assert 0 < padded.mean() < 0.5  # some crops reach into the padding
    np.testing.assert_array_equal(images[padded], 0.0)  # the mean pixel, exactly
    normalized = np.asarray(normalize(jnp.asarray(ds.train_images[idx]), data.pixel_mean))
    b, y, x = np.nonzero(~padded)
    expected = normalized[b, source[b, y, x, 0] - 1, source[b, y, x, 1] - 1]
    # the same elementwise (x/255 - mean) in another program: XLA may turn /255 into *(1/255), 1 ulp
    np.testing.assert_allclose(images[b, y, x], expected, rtol=0, atol=1e-6)


def test_fc_layer_has_he_init():
    """Sec 3.4/4.2: "the weights as in [13]": std sqrt(2/fan_in), the FC layer included."""
    model = create_model("cifar_resnet8", shortcut="A", num_classes=1000)
    with jax.threefry_partitionable(False):  # as Engine.init_state: far faster to compile on CPU
        params = jax.jit(model.init, static_argnames="train")(jax.random.key(0), jnp.zeros((1, 8, 8, 3)),
                                                              train=False)["params"]
    kernel = np.asarray(params["fc"]["kernel"])  # 64 x 1000: 64,000 draws
    # He: sqrt(2/64) = 0.177; flax's LeCun default: sqrt(1/64) = 0.125; the estimate's error ~0.3%
    assert np.std(kernel) == pytest.approx(np.sqrt(2 / 64), rel=0.02)
