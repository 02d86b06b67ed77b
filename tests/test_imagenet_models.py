"""ImageNet nets of Table 1: exact sizes, multiply-adds, stride placement and shapes (abstract only).

Everything here runs through jax.eval_shape: no 224x224 forward pass is ever computed on CPU.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from resnet_jax.analysis import paper_imagenet as paper
from resnet_jax.models.complexity import model_complexity as _model_complexity
from resnet_jax.models import create_model, layout
from resnet_jax.models.imagenet import STAGES, WIDTHS

# Output side of conv2_x..conv5_x for a 224x224 input (Table 1).
STAGE_SIDES = (56, 28, 14, 7)
model_complexity = functools.cache(_model_complexity)  # several tests share the deep nets


def projection_cost(depth: int, all_blocks: bool) -> tuple[int, int]:
    """(params, mult-adds) of the 1x1 projection shortcuts (conv + BN), derived from Table 1 alone."""
    kind, counts = STAGES[depth]
    expansion = 4 if kind == "bottleneck" else 1
    params = macs = 0
    in_ch = 64
    for stage, (width, count, side) in enumerate(zip(WIDTHS, counts, STAGE_SIDES)):
        out_ch = width * expansion
        for block in range(count):
            first = block == 0
            if all_blocks or (first and (stage > 0 or in_ch != out_ch)):
                params += in_ch * out_ch + 2 * out_ch
                macs += side * side * in_ch * out_ch
            in_ch = out_ch
    return params, macs


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_parameter_counts_match_the_spec(depth):
    assert model_complexity(f"imagenet_resnet{depth}", shortcut="B").params == paper.PARAMS[depth]


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_multiply_adds_match_the_computed_reference(depth):
    info = model_complexity(f"imagenet_resnet{depth}", shortcut=paper.TABLE1_SHORTCUT[depth])
    assert round(info.mult_adds / 1e9, 3) == paper.TABLE1_GMACS_COMPUTED[depth]
    # and the paper's one-decimal FLOPs to within one unit of their last digit (50: 3.858 vs 3.8)
    assert abs(info.mult_adds / 1e9 - paper.TABLE1_GFLOPS[depth]) < 0.1


@pytest.mark.parametrize("depth", [18, 34])
def test_shortcut_options_differ_by_exactly_their_projections(depth):
    a = model_complexity(f"imagenet_resnet{depth}", shortcut="A")
    b = model_complexity(f"imagenet_resnet{depth}", shortcut="B")
    c = model_complexity(f"imagenet_resnet{depth}", shortcut="C")
    plain = model_complexity(f"imagenet_plain{depth}")
    # option A and the plain net are parameter-free on the shortcut path: identical cost
    assert (a.params, a.mult_adds) == (plain.params, plain.mult_adds)
    for option, all_blocks in ((b, False), (c, True)):
        params, macs = projection_cost(depth, all_blocks)
        assert option.params - a.params == params
        assert option.mult_adds - a.mult_adds == macs
    if depth == 34:
        assert b.params == paper.PARAMS[34] and round(a.mult_adds / 1e9, 3) == 3.644


@pytest.mark.parametrize("depth", [50, 152])
def test_bottleneck_nets_use_projections_only_on_dimension_changes(depth):
    b = model_complexity(f"imagenet_resnet{depth}", shortcut="B")
    plain = model_complexity(f"imagenet_plain{depth}")
    params, macs = projection_cost(depth, all_blocks=False)
    assert b.params - plain.params == params and b.mult_adds - plain.mult_adds == macs


def record_convs(model, shape=(1, 224, 224, 3)):
    """{module path: (kernel_size, strides, output shape)} of every conv, by abstract evaluation."""
    convs = {}

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        mod = context.module
        if context.method_name == "__call__" and isinstance(mod, nn.Conv):
            strides = mod.strides if isinstance(mod.strides, int) else tuple(mod.strides)[0]
            convs["/".join(mod.path)] = (tuple(mod.kernel_size), strides, out.shape)
        return out

    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    with nn.intercept_methods(record):
        jax.eval_shape(model.apply, variables, x)
    return convs


@pytest.mark.parametrize("v15", [False, True])
def test_bottleneck_stride_position_v1_vs_v15(v15):
    convs = record_convs(create_model("imagenet_resnet50", stride_on_3x3=v15))
    for stage in (3, 4, 5):
        k1, s1, out1 = convs[f"conv{stage}_1/conv1"]
        k3, s3, out3 = convs[f"conv{stage}_1/conv2"]
        assert (k1, k3) == ((1, 1), (3, 3))
        assert (s1, s3) == ((1, 2) if v15 else (2, 1))
        side = STAGE_SIDES[stage - 2]
        # v1 subsamples in the 1x1 conv; v1.5 keeps the previous resolution until the 3x3
        assert out1[1] == (2 * side if v15 else side) and out3[1] == side
        assert convs[f"conv{stage}_1/shortcut/proj_conv"][1] == 2
    # no other conv of the net is strided besides conv1 and these
    strided = sorted(p for p, (_, s, _) in convs.items() if s != 1)
    expected = ["conv1"] + [f"conv{s}_1/{'conv2' if v15 else 'conv1'}" for s in (3, 4, 5)]
    expected += [f"conv{s}_1/shortcut/proj_conv" for s in (3, 4, 5)]
    assert strided == sorted(expected)


@pytest.mark.parametrize("name", ["imagenet_resnet18", "imagenet_plain34", "imagenet_resnet50"])
def test_stage_output_shapes_follow_table1(name):
    convs = record_convs(create_model(name))
    assert convs["conv1"][2] == (1, 112, 112, 64)
    kind, counts = STAGES[int("".join(ch for ch in name if ch.isdigit()))]
    expansion = 4 if kind == "bottleneck" else 1
    for stage, (width, count, side) in enumerate(zip(WIDTHS, counts, STAGE_SIDES)):
        # the last block: in the stage's scanned stack (one body for blocks 2..count), if any
        last = layout.stacked_name(f"conv{stage + 2}") if count > 1 else f"conv{stage + 2}_1"
        final_conv = max(p for p in convs if p.startswith(last + "/conv"))
        assert convs[final_conv][2] == (1, side, side, width * expansion)


@pytest.mark.parametrize("size", [224, 320, 97])
def test_logits_shape_and_any_input_size(size):
    model = create_model("imagenet_resnet50", num_classes=1000)
    x = jax.ShapeDtypeStruct((2, size, size + 32, 3), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    logits = jax.eval_shape(model.apply, variables, x)
    assert logits.shape == (2, 1000) and logits.dtype == jnp.float32


def test_plain_nets_have_no_shortcut_modules():
    convs = record_convs(create_model("imagenet_plain18"))
    assert not any("shortcut" in p for p in convs)
    assert len(convs) == 17  # conv1 + 16 convs: the 18th weighted layer is the fc
