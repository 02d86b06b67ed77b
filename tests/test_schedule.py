"""The learning-rate schedule of Sec 4.2, and ResNet-110's error-triggered warm-up."""

import jax.numpy as jnp
import numpy as np
import pytest

from resnet_jax.configs import cifar_config, scaled_steps
from resnet_jax.train import schedule as sched


def test_paper_schedule_values():
    c = cifar_config()
    s = sched.step_decay(c.optim.lr, c.run.steps, c.optim.lr_boundaries, c.optim.lr_decay)
    for step, lr in [(0, 0.1), (31_999, 0.1), (32_000, 0.01), (47_999, 0.01), (48_000, 0.001),
                     (63_999, 0.001)]:
        assert float(s(step)) == pytest.approx(lr), step


def test_scaled_schedule_keeps_its_shape():
    c = scaled_steps(cifar_config(), 300)
    s = sched.step_decay(c.optim.lr, c.run.steps, c.optim.lr_boundaries, c.optim.lr_decay)
    assert [float(s(i)) for i in (149, 150, 224, 225)] == pytest.approx([0.1, 0.01, 0.01, 0.001])
    assert c.run.eval_every <= c.run.steps and c.run.log_every >= 10


def test_warmup_only_for_110_and_deeper():
    assert not cifar_config("cifar_resnet56").optim.warmup
    assert cifar_config("cifar_resnet110").optim.warmup and cifar_config("cifar_resnet1202").optim.warmup


def test_warmup_ends_when_running_error_drops_below_80_percent():
    done, ema = jnp.asarray(False), jnp.asarray(1.0)
    errors = [0.9] * 5 + [0.75] * 30 + [0.95] * 5  # goes back up: warm-up must not restart
    history = []
    for e in errors:
        lr = sched.learning_rate(lambda step: 0.1, 0, done, 0.01)
        history.append((float(lr), float(ema)))
        done, ema = sched.update_warmup(done, ema, jnp.asarray(e), 0.9, 0.8)
    lrs = np.array([h[0] for h in history])
    emas = np.array([h[1] for h in history])
    first = int(np.argmax(np.isclose(lrs, 0.1)))
    assert np.allclose(lrs[:first], 0.01) and np.allclose(lrs[first:], 0.1)
    assert emas[first - 1] >= 0.8 and emas[first] < 0.8  # switched on the error condition
    assert 5 < first < 35


def test_warmup_lr_is_used_until_done():
    s = sched.step_decay(0.1, 64_000)
    assert float(sched.learning_rate(s, 40_000, jnp.asarray(False), 0.01)) == pytest.approx(0.01)
    assert float(sched.learning_rate(s, 40_000, jnp.asarray(True), 0.01)) == pytest.approx(0.01)
    assert float(sched.learning_rate(s, 100, jnp.asarray(True), 0.01)) == pytest.approx(0.1)

