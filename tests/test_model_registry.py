"""The registry of nets (models/variants.py, models/blocks.py): every registered variant builds,
the follow-up paper's nets (He et al., "Identity Mappings in Deep Residual Networks", 1603.05027)
have its sizes, and the pre-activation bottleneck net equals an independent numpy forward.
"""

import flax.traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numpy_resnet
from registered_nets import registered_nets, smallest_depths
from resnet_jax.models import BLOCKS, VARIANTS, create_model, layout, parse_model_name
from resnet_jax.models.layers import subsample_and_zero_pad

# Parameters in millions, one decimal, as the papers print them: 1603.05027 Table 4 for the
# follow-up's nets, Table 6 of the first paper for 110/1202. The follow-up's counts are the conv and
# fc weights (with BN's scale and bias ResNet-1001 has 10.33M, which would print as 10.3M); the
# first paper's ResNet-1202 count includes BN (19.42M; its weights alone are 19.33M).
PAPER_PARAMS_M = {"cifar_resnet110": (1.7, "all"), "cifar_resnet1202": (19.4, "all"),
                  "cifar_preact110": (1.7, "weights"), "cifar_bottleneck164": (1.7, "weights"),
                  "cifar_preact_bottleneck164": (1.7, "weights"),
                  "cifar_bottleneck1001": (10.2, "weights"), "cifar_preact_bottleneck1001": (10.2, "weights")}
IMAGE = {"cifar": (8, 8, 3), "imagenet": (32, 32, 3), "explainer": (32, 32, 3)}


def abstract_variables(name, **kw):
    model = create_model(name, **kw)
    x = jnp.zeros((2, *IMAGE[parse_model_name(name).family]))
    return model, jax.eval_shape(model.init, jax.random.key(0), x), x


def test_every_registered_unit_is_in_some_variant():
    used = {b for v in VARIANTS.values()
            for b in ([v.block] if isinstance(v.block, str)
                      else v.block if isinstance(v.block, tuple) else v.block.values())}
    assert used == set(BLOCKS)


@pytest.mark.parametrize("name", registered_nets(min_blocks=1))
def test_every_registered_net_builds_with_its_stage_sizes(name):
    spec = parse_model_name(name)
    model, variables, x = abstract_variables(name, num_classes=7)
    assert jax.eval_shape(model.apply, variables, x).shape == (2, 7)
    per_block = layout.to_per_block(variables["params"])
    kinds = spec.block if isinstance(spec.block, tuple) else (spec.block,) * len(spec.stage_sizes)
    for stage, count in enumerate(spec.stage_sizes):
        kind = BLOCKS[kinds[stage]]
        key = "conv" if spec.family == "imagenet" else "stage"
        first = stage + 2 if spec.family == "imagenet" else stage + 1
        blocks = [k for k in per_block if k.startswith(f"{key}{first}_")]
        assert len(blocks) == count, (stage, blocks)
        # the unit's last conv outputs expansion x the stage width
        last = per_block[blocks[-1]]["conv3" if kind.expansion == 4 else "conv2"]["kernel"]
        assert last.shape[-1] == kind.expansion * spec.widths[stage]
    assert ("final_bn" in per_block) == kind.preact and ("bn1" in per_block) != kind.preact


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS_M))
def test_parameter_counts_match_the_papers(name):
    millions, counted = PAPER_PARAMS_M[name]
    params = flax.traverse_util.flatten_dict(abstract_variables(name)[1]["params"])
    total = sum(int(np.prod(v.shape)) for k, v in params.items()
                if counted == "all" or k[-1] == "kernel" or k[0] == "fc")
    assert round(total / 1e6, 1) == millions


def test_bottleneck_nets_follow_the_appendix():
    """ResNet-164: conv1 16, stage outputs 64/128/256 with a quarter of that inside, stride on the
    first 1x1 conv, projections where the dimensions increase (every stage's first unit, 16->64
    included), pre-activated ones without a BN of their own."""
    for name, proj_bn in (("cifar_bottleneck164", True), ("cifar_preact_bottleneck164", False)):
        spec = parse_model_name(name)
        assert spec.stage_sizes == (18, 18, 18) and spec.shortcut == "B"
        params = layout.to_per_block(abstract_variables(name)[1]["params"])
        assert params["conv1"]["kernel"].shape == (3, 3, 3, 16)
        for stage, (cin, width) in enumerate([(16, 16), (64, 32), (128, 64)], start=1):
            unit = params[f"stage{stage}_block1"]
            assert unit["conv1"]["kernel"].shape == (1, 1, cin, width)
            assert unit["conv3"]["kernel"].shape == (1, 1, width, 4 * width)
            assert unit["shortcut"]["proj_conv"]["kernel"].shape == (1, 1, cin, 4 * width)
            assert ("proj_bn" in unit["shortcut"]) == proj_bn
            assert "shortcut" not in params[f"stage{stage}_block2"]  # identity


@pytest.mark.parametrize("bad", ["cifar_bottleneck21", "cifar_preact_bottleneck165", "cifar_preact21",
                                 "cifar_preactbottleneck164", "cifar_bottleneck2", "imagenet_preact50"])
def test_bad_names_say_the_valid_forms(bad):
    with pytest.raises(ValueError, match="unknown model"):
        parse_model_name(bad)


def test_model_spec_is_a_record():
    spec = parse_model_name("cifar_preact_bottleneck1001")
    assert (spec.family, spec.variant, spec.block, spec.depth, spec.residual, spec.preact) == (
        "cifar", "cifar_preact_bottleneck", "preact_bottleneck", 1001, True, True)
    assert spec.stage_sizes == (111, 111, 111)  # "111 on each feature map size" (Sec 4.1)
    assert not parse_model_name("imagenet_plain50").residual
    assert smallest_depths("cifar_preact_bottleneck", 3) == [11, 20, 29]


@pytest.mark.parametrize("option,value", [("zero_pad", "middle"), ("init_fan", "avg"),
                                          ("input_convention", "bgr"), ("input_std", (0.2, 0.2)),
                                          ("stride_on_3x3", True)])
def test_bad_options_are_refused(option, value):
    with pytest.raises(ValueError, match=option.split("_")[0]):
        create_model("cifar_resnet20", **{option: value})


def test_input_std_needs_a_convention_that_divides():
    with pytest.raises(ValueError, match="input_std applies"):
        create_model("cifar_resnet20", input_std=(0.2, 0.2, 0.2))


@pytest.mark.parametrize("placement", ["after", "both"])
def test_option_a_zero_placement_matches_numpy(placement):
    x = np.arange(2 * 4 * 4 * 8, dtype=np.float32).reshape(2, 4, 4, 8) + 1
    ours = np.asarray(subsample_and_zero_pad(jnp.asarray(x), 2, 16, placement))
    ref = numpy_resnet.shortcut(x.astype(np.float64), {}, {}, stride=2, out_channels=16, option="A",
                                zero_pad=placement, with_bn=False)
    np.testing.assert_array_equal(ours, ref)
    identity = slice(0, 8) if placement == "after" else slice(4, 12)  # akamaster: the middle channels
    np.testing.assert_array_equal(ours[..., identity], x[:, ::2, ::2])


def test_init_fan_out_is_the_torch_codes_std():
    params = jax.jit(create_model("cifar_preact_bottleneck11", init_fan="out").init)(
        jax.random.key(0), jnp.zeros((1, 8, 8, 3)))["params"]
    kernel = params["stage3_block1"]["conv1"]["kernel"]  # 1x1, 128 -> 64
    fan_out = 1 * 1 * 64  # resnet-pre-act.lua: n = kW * kH * nOutputPlane
    assert abs(float(jnp.std(kernel)) - np.sqrt(2 / fan_out)) < 0.05 * np.sqrt(2 / fan_out)


def _randomized(variables, seed):
    """Non-trivial BN: random scale/bias and running statistics (init has mean 0, var 1)."""
    rng = np.random.default_rng(seed)
    flat = flax.traverse_util.flatten_dict(layout.to_per_block(jax.tree.map(np.asarray, variables)))
    for path, v in flat.items():
        if path[-1] in ("scale", "var"):
            flat[path] = rng.uniform(0.5, 1.5, v.shape).astype(np.float32)
        elif path[-1] in ("bias", "mean") and path[1] != "fc":
            flat[path] = rng.normal(0, 0.2, v.shape).astype(np.float32)
    return flax.traverse_util.unflatten_dict(flat)


@pytest.mark.numerics
@pytest.mark.parametrize("name,kw", [
    ("cifar_preact_bottleneck20", {}),  # the follow-up's unit, projections, shared pre-activation
    ("cifar_preact14", {}),  # pre-activation basic units, option A
    ("cifar_bottleneck11", {}),  # the original bottleneck unit, projections with BN
    ("cifar_resnet8", {"zero_pad": "both", "input_convention": "torchvision",
                       "input_std": (0.2023, 0.1994, 0.2010)}),  # akamaster / chenyaofo conventions
    ("cifar_resnet8", {"zero_pad": "after"}),
])
def test_logits_equal_an_independent_numpy_forward(name, kw):
    spec = parse_model_name(name)
    model = create_model(name, **kw)
    images = np.random.default_rng(1).normal(0, 0.5, (2, 8, 8, 3)).astype(np.float32)
    variables = _randomized(jax.jit(model.init)(jax.random.key(0), jnp.asarray(images)), seed=2)
    ours = np.asarray(jax.jit(model.apply)(layout.to_stacked(variables), jnp.asarray(images)))
    ref = numpy_resnet.forward(variables, images, block=spec.block, stage_sizes=spec.stage_sizes,
                               option=kw.get("shortcut", spec.shortcut),
                               zero_pad=kw.get("zero_pad", "after"), std=kw.get("input_std"))
    # float32 (eps 1.2e-7) against float64: each conv's sum of up to 9*64 products rounds to
    # ~eps*sqrt(576) relative, and that compounds through the depth's layers; a wrong connection
    # or channel order is off by O(1) of the logits' scale.
    eps, fan = np.finfo(np.float32).eps, 3 * 3 * 64
    tol = eps * np.sqrt(fan) * spec.depth * np.max(np.abs(ref))
    np.testing.assert_allclose(ours, ref, rtol=0, atol=tol)
    assert np.max(np.abs(ref)) > 0.1  # a net that is not dead


@pytest.mark.parametrize("typed, meant", [("resnet20", "'cifar_resnet20'"),
                                          ("cifar_resnt56", "'cifar_resnet56'"),
                                          ("resnet50", "'cifar_resnet50' or 'imagenet_resnet50'"),
                                          ("resnet7", "'explainer_resnet7'")])
def test_a_name_short_of_its_family_or_misspelled_gets_the_registered_names_at_that_depth(typed, meant):
    """Only names that exist at the depth typed are offered (no imagenet_resnet20: not 18/34/...)."""
    with pytest.raises(ValueError) as e:
        parse_model_name(typed)
    assert f"unknown model '{typed}': did you mean {meant}? expected one of cifar_resnetN" in str(e.value)


def test_a_name_of_no_family_gets_no_guess():
    with pytest.raises(ValueError) as e:
        parse_model_name("vgg16")
    assert "did you mean" not in str(e.value)
