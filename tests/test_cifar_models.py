"""CIFAR nets against Sec 4.2 and Table 6 of the paper."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from resnet_jax.models.complexity import count_params, model_complexity
from resnet_jax import experiments
from resnet_jax.models import create_model, layout, parse_model_name
from resnet_jax.models.layers import PatchConv, Shortcut, subsample_and_zero_pad

_PAPER = {int(net.removeprefix("resnet")): n for net, n in experiments.get("table6").paper.items()}
TABLE6 = {depth: {"params": n["params"].value} for depth, n in _PAPER.items()}  # Table 6, exact
CIFAR_MULT_ADDS_M = {depth: n["mult_adds_m"].value for depth, n in _PAPER.items()}  # Sec 4.2


def abstract_params(name, shape=(32, 32, 3), **kw):
    model = create_model(name, **kw)
    variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, *shape)))
    return variables["params"]


@pytest.mark.parametrize("depth", sorted(TABLE6))
def test_param_counts_option_a_match_table6(depth):
    assert count_params(abstract_params(f"cifar_resnet{depth}")) == TABLE6[depth]["params"]


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_option_b_adds_exactly_two_projections(depth):
    # 1x1 conv + BN at 16->32 and 32->64: (16*32 + 2*32) + (32*64 + 2*64) = 2,752 parameters.
    a = count_params(abstract_params(f"cifar_resnet{depth}", shortcut="A"))
    b = count_params(abstract_params(f"cifar_resnet{depth}", shortcut="B"))
    assert b - a == 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64


@pytest.mark.parametrize("depth", [20, 56])
def test_option_a_is_parameter_free_and_plain_has_no_shortcut(depth):
    plain = abstract_params(f"cifar_plain{depth}")
    resnet = abstract_params(f"cifar_resnet{depth}")
    assert jax.tree.structure(plain) == jax.tree.structure(resnet)
    assert count_params(plain) == TABLE6[depth]["params"]

    calls = []

    def spy(next_fun, args, kwargs, context):
        if isinstance(context.module, Shortcut):
            calls.append(context.module.name)
        return next_fun(*args, **kwargs)

    x = jnp.ones((2, 32, 32, 3))
    for kind, expected in (("plain", 0), ("resnet", 3 * (depth - 2) // 6)):
        calls.clear()
        # unrolled: one call per block (a scanned stack traces its one body)
        model = create_model(f"cifar_{kind}{depth}", scan_blocks=False)
        with nn.intercept_methods(spy):
            jax.eval_shape(model.init, jax.random.key(0), x)
        assert len(calls) == expected, kind


@pytest.mark.parametrize("depth", [20, 56, 110])
def test_mult_adds_match_paper(depth):
    macs = model_complexity(f"cifar_resnet{depth}").mult_adds
    assert round(macs / 1e6, 1) == CIFAR_MULT_ADDS_M[depth]


def test_feature_map_sizes_and_output_shape():
    model = create_model("cifar_resnet20")
    x = jnp.zeros((2, 32, 32, 3))
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    logits, state = jax.eval_shape(
        lambda v: model.apply(v, x, capture_intermediates=True, mutable=["intermediates"]), variables)
    assert logits.shape == (2, 10) and logits.dtype == jnp.float32
    inter = layout.to_per_block(state["intermediates"])  # a scanned stack captures per block
    for stage, (size, width) in enumerate([(32, 16), (16, 32), (8, 64)], start=1):
        for block in range(1, 4):
            assert inter[f"stage{stage}_block{block}"]["__call__"][0].shape == (2, size, size, width)
    # any input size: the offline digits run uses 8x8 images
    assert jax.eval_shape(model.apply, variables, jnp.zeros((3, 8, 8, 3))).shape == (3, 10)


def test_option_a_shortcut_subsamples_and_zero_pads():
    x = jnp.arange(2 * 4 * 4 * 3, dtype=jnp.float32).reshape(2, 4, 4, 3)
    y = subsample_and_zero_pad(x, 2, 6)
    assert y.shape == (2, 2, 2, 6)
    np.testing.assert_array_equal(y[..., :3], x[:, ::2, ::2, :])
    np.testing.assert_array_equal(y[..., 3:], 0)


def test_he_init_std():
    with jax.threefry_partitionable(False):  # fast XLA:CPU compile of the random init
        params = jax.jit(create_model("cifar_resnet20").init)(jax.random.key(1),
                                                              jnp.zeros((1, 8, 8, 3)))["params"]
    kernel = layout.to_per_block(params)["stage3_block2"]["conv1"]["kernel"]
    fan_in = 3 * 3 * 64
    assert abs(float(jnp.std(kernel)) - np.sqrt(2 / fan_in)) < 0.05 * np.sqrt(2 / fan_in)


@pytest.mark.parametrize("bad", ["cifar_resnet21", "cifar_resnet2", "resnet20", "cifar_wide20",
                                 "imagenet_resnet20"])
def test_bad_model_names_rejected(bad):
    with pytest.raises(ValueError, match="6n\\+2|unknown model|depths"):
        parse_model_name(bad)


def test_bf16_compute_keeps_float32_params():
    model = create_model("cifar_resnet20", dtype="bfloat16")
    x = jnp.ones((4, 8, 8, 3))
    with jax.threefry_partitionable(False):
        variables = jax.jit(model.init)(jax.random.key(0), x)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables))
    logits, _ = jax.jit(lambda v: model.apply(v, x, train=True, mutable=["batch_stats"]))(variables)
    assert logits.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(logits)))


@pytest.mark.numerics
@pytest.mark.parametrize("size,k,stride,padding", [(8, 3, 1, 1), (7, 3, 2, 1), (8, 1, 2, "SAME"),
                                                   (7, 3, 1, "SAME")])
def test_patch_conv_is_nn_conv_as_a_matmul(size, k, stride, padding):
    """Same parameter (init included), same outputs and gradients as nn.Conv."""
    x = jax.random.normal(jax.random.key(1), (2, size, size, 5))
    ours = PatchConv(6, (k, k), strides=stride, padding=padding)
    ref = nn.Conv(6, (k, k), strides=stride, padding=padding, use_bias=False,
                  kernel_init=ours.kernel_init)
    params = ref.init(jax.random.key(2), x)
    jax.tree.map(np.testing.assert_array_equal, ours.init(jax.random.key(2), x), params)

    @jax.jit  # one compile per case instead of one per op
    def outputs_and_grads(params, x):
        loss = lambda m: lambda p, x: jnp.sum(jnp.sin(m.apply(p, x)))  # noqa: E731
        return [(m.apply(params, x), jax.grad(loss(m), argnums=(0, 1))(params, x))
                for m in (ours, ref)]

    (y, grads), (y_ref, grads_ref) = outputs_and_grads(params, x)
    # A matmul and a convolution sum the same k*k*c products in another order: float32 rounding
    # (eps 1.2e-7 times the O(10) sums of O(1) terms) on any instruction set; a wrong patch or
    # padding is off by O(1). The gradients sum over the batch and positions too: 10x that.
    np.testing.assert_allclose(y, y_ref, atol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-4), grads, grads_ref)


@pytest.mark.numerics
def test_im2col_model_has_the_same_parameters_cost_and_outputs():
    xla, im2col = (create_model("cifar_resnet8", shortcut="B", conv_impl=c) for c in ("xla", "im2col"))
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    with jax.threefry_partitionable(False):  # as Engine.init_state: XLA:CPU compiles it 8x faster
        variables = jax.jit(xla.init)(jax.random.key(3), x)
        jax.tree.map(np.testing.assert_array_equal, jax.jit(im2col.init)(jax.random.key(3), x),
                     variables)
    # the same sums in another order through 8 layers (as above, grown through the BNs)
    np.testing.assert_allclose(jax.jit(im2col.apply)(variables, x),
                               jax.jit(xla.apply)(variables, x), atol=1e-4)
    a, b = (model_complexity("cifar_resnet20", conv_impl=c) for c in ("xla", "im2col"))
    assert (a.params, a.mult_adds) == (b.params, b.mult_adds)
