"""Scanned block stacks (layers.repeated_blocks) against the unrolled nets, and the layout conversion.

Tolerances: the scanned and the unrolled nets are different XLA programs computing the same
function with the same weights: XLA fuses and orders the float32 reductions (BN moments, the
backward pass's sums over batch and positions) differently inside a loop body than in straight-line
code, so results agree to float32 rounding accumulated over the net, not bitwise. The bounds below
are relative to each quantity's scale, a few hundred float32 ulps (eps = 1.2e-7) for logits, loss
and BN statistics, more for gradients (sums of 10^3-10^4 products, through every block); bfloat16
compute rounds every activation to 8 bits, so its bound follows bf16's eps (7.8e-3).
"""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from etils import epath

from registered_nets import registered_nets
from resnet_jax import configs
from resnet_jax.models import create_model, layout, parse_model_name

F32_TOL = {"logits": 2e-5, "loss": 2e-6, "grads": 5e-4, "stats": 2e-5}
BF16_TOL = {"logits": 5e-2, "loss": 2e-2, "grads": 2e-1, "stats": 5e-2}


def _init(model, x):
    with jax.threefry_partitionable(False):  # fast XLA:CPU compile of the random init
        return jax.jit(model.init)(jax.random.key(0), x)


@functools.partial(jax.jit, static_argnums=0)
def _loss_grads_stats(model, variables, x, labels):
    def loss_fn(params):
        logits, new = model.apply({"params": params, "batch_stats": variables["batch_stats"]}, x,
                                  train=True, mutable=["batch_stats"])
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return loss, (logits, new["batch_stats"])

    (loss, (logits, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(variables["params"])
    return logits, loss, grads, stats


def _rel_err(a, b) -> float:
    """Largest elementwise difference relative to the larger tensor's scale (max |value|)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


def _compare(name, shape, tol, **kw):
    scanned = create_model(name, scan_blocks=True, **kw)
    unrolled = create_model(name, scan_blocks=False, **kw)
    x = jax.random.normal(jax.random.key(1), (8, *shape))
    labels = jnp.arange(8) % 10
    variables = _init(scanned, x)
    per_block = layout.to_per_block(variables)
    # the conversion gives exactly the unrolled net's structure
    assert jax.tree.structure(per_block) == jax.tree.structure(
        jax.eval_shape(unrolled.init, jax.random.key(0), x))
    s = _loss_grads_stats(scanned, variables, x, labels)
    u = _loss_grads_stats(unrolled, per_block, x, labels)
    assert _rel_err(s[0], u[0]) < tol["logits"]
    assert abs(float(s[1]) - float(u[1])) < tol["loss"] * max(1.0, abs(float(u[1])))
    for what, (a, b) in {"grads": (s[2], u[2]), "stats": (s[3], u[3])}.items():
        errors = jax.tree.map(_rel_err, layout.to_per_block(a), b)
        worst = max(jax.tree.leaves(errors))
        assert worst < tol[what], (what, worst)


@pytest.mark.parametrize("name, kw", [
    ("cifar_resnet14", {}),
    ("cifar_resnet20", {"shortcut": "B"}),
    ("cifar_plain20", {}),
    ("cifar_resnet32", {"bn_group_size": 4}),
    ("cifar_resnet20", {"conv_impl": "im2col"}),
    ("cifar_resnet20", {"scan_conv_impl": "im2col"}),
    ("cifar_resnet14", {"remat": "block"}),
])
def test_scanned_cifar_net_is_the_unrolled_net(name, kw):
    _compare(name, (8, 8, 3), F32_TOL, **kw)


def _variant_and_unit(name):
    spec = parse_model_name(name)
    return spec.variant, spec.block


# Every registered (variant, unit) pair that the lists of options above and below leave out.
_WITH_OPTIONS = {_variant_and_unit(n) for n in ("cifar_resnet14", "cifar_plain20", "imagenet_resnet18",
                                                "imagenet_plain34", "imagenet_resnet50")}


@pytest.mark.parametrize("name", [n for n in registered_nets() if _variant_and_unit(n) not in _WITH_OPTIONS])
def test_every_registered_net_scans_like_its_unrolled_self(name):
    _compare(name, (8, 8, 3) if name.startswith("cifar") else (32, 32, 3), F32_TOL)


def test_scanned_cifar_net_in_bfloat16():
    _compare("cifar_resnet14", (8, 8, 3), BF16_TOL, dtype="bfloat16")


@pytest.mark.parametrize("name, kw", [
    ("imagenet_resnet18", {}),
    ("imagenet_plain34", {}),
    ("imagenet_resnet50", {"shortcut": "C"}),
    ("imagenet_resnet50", {"stride_on_3x3": True, "bn_group_size": 4}),
    ("imagenet_resnet18", {"scan_conv_impl": "im2col", "remat": "block"}),  # CPU's "auto"
])
def test_scanned_imagenet_net_is_the_unrolled_net(name, kw):
    _compare(name, (32, 32, 3), F32_TOL, **kw)


@pytest.mark.parametrize("name", ["cifar_resnet20", "cifar_resnet8", "imagenet_resnet50"])
def test_layout_round_trip_is_exact(name):
    model = create_model(name)
    shape = (1, 8, 8, 3) if name.startswith("cifar") else (1, 32, 32, 3)
    variables = _init(model, jnp.zeros(shape))
    per_block = layout.to_per_block(variables)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)),
                                     layout.to_stacked(per_block), variables))
    assert jax.tree.structure(layout.to_per_block(per_block)) == jax.tree.structure(per_block)
    # and back: per-block -> stacked -> per-block
    again = layout.to_per_block(layout.to_stacked(per_block))
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), again, per_block))


def test_layout_names_follow_the_paper():
    params = jax.eval_shape(create_model("cifar_resnet20").init, jax.random.key(0),
                            jnp.zeros((1, 8, 8, 3)))["params"]
    assert {k for k in params if "stage1" in k} == {"stage1_block1", "stage1_rest"}
    assert jax.tree.leaves(params["stage1_rest"])[0].shape[0] == 2  # blocks 2 and 3
    assert [k for k in layout.to_per_block(params) if k.startswith("stage1")] == [
        "stage1_block1", "stage1_block2", "stage1_block3"]
    imagenet = jax.eval_shape(create_model("imagenet_resnet50").init, jax.random.key(0),
                              jnp.zeros((1, 32, 32, 3)))["params"]
    assert [k for k in layout.to_per_block(imagenet) if k.startswith("conv4")] == [
        f"conv4_{b}" for b in range(1, 7)]
    assert layout.layout_of(params) == layout.STACKED
    assert layout.layout_of(layout.to_per_block(params)) == layout.PER_BLOCK


def test_layout_converts_a_seed_stacked_state_and_abstract_trees():
    params = {"fc": {"kernel": np.zeros((3, 4, 2))},
              "stage1_rest": {"conv1": {"kernel": np.arange(3 * 5 * 2).reshape(3, 5, 2)}}}
    per_block = layout.to_per_block(params, axis=1)  # leading seed axis of 3, 5 stacked blocks
    assert [k for k in per_block] == ["fc"] + [f"stage1_block{b}" for b in range(2, 7)]
    np.testing.assert_array_equal(per_block["stage1_block4"]["conv1"]["kernel"],
                                  params["stage1_rest"]["conv1"]["kernel"][:, 2])
    back = layout.to_stacked(per_block, axis=1)
    np.testing.assert_array_equal(back["stage1_rest"]["conv1"]["kernel"],
                                  params["stage1_rest"]["conv1"]["kernel"])
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
    assert layout.to_per_block(abstract, axis=1)["stage1_block6"]["conv1"]["kernel"].shape == (3, 2)
    with pytest.raises(ValueError, match="expected 2..3"):
        layout.to_stacked({"stage2_block2": {}, "stage2_block4": {}})


def test_each_stacked_block_is_initialised_independently_with_he_std():
    params = _init(create_model("cifar_resnet56"), jnp.zeros((1, 8, 8, 3)))["params"]
    kernels = np.asarray(params["stage3_rest"]["conv1"]["kernel"])  # [8 blocks, 3, 3, 64, 64]
    he_std = np.sqrt(2 / (3 * 3 * 64))
    for k in kernels:  # 36,864 draws each: the std is within 1.5% of He's
        assert abs(k.std() - he_std) < 0.015 * he_std and abs(k.mean()) < 0.015 * he_std
    # independent draws: no two blocks share values, correlation ~ N(0, 1/sqrt(36864))
    flat = kernels.reshape(len(kernels), -1)
    corr = np.corrcoef(flat)[np.triu_indices(len(kernels), 1)]
    assert np.max(np.abs(corr)) < 0.03


def _small_run(workdir, steps, **fields):
    from resnet_jax.configs import cifar_config  # noqa: PLC0415
    from resnet_jax.train.loop import train_and_evaluate  # noqa: PLC0415

    config = cifar_config("cifar_resnet14")
    configs.override(config, dataset="digits", steps=steps, batch_size=32, bn_group_size=32, log_every=2,
                     eval_every=steps, checkpoint_every=2, progress=False, **fields)
    return train_and_evaluate(config, str(workdir))


@pytest.mark.parametrize("seeds", [1, 2])
def test_a_per_block_run_folder_resumes_and_loads_in_the_scanned_form(tmp_path, seeds):
    """A run folder written by the unrolled net, the layout of every checkpoint written before
    blocks were scanned, resumes and evaluates with the scanned default (converted on restore)."""
    from resnet_jax.analysis.load import load_run  # noqa: PLC0415
    from resnet_jax.train import checkpoint  # noqa: PLC0415

    first = _small_run(tmp_path, 2, scan_blocks=False, num_seeds=seeds)
    for path in tmp_path.glob("**/config.json"):  # as written before these fields existed
        config = json.loads(path.read_text())
        for field in ("scan_blocks", "scan_conv_impl", "remat"):
            del config["model"][field]
        path.write_text(json.dumps(config))
    saved = ocp.StandardCheckpointHandler().metadata(epath.Path(tmp_path) / "checkpoints/2/state")
    assert layout.layout_of(saved.tree) == layout.PER_BLOCK
    loaded = load_run(str(tmp_path) if seeds == 1 else str(tmp_path / "seed1"))
    assert layout.layout_of(loaded.state.params) == layout.STACKED and loaded.step == 2
    assert loaded.engine.model.scan_blocks
    resumed = _small_run(tmp_path, 4, num_seeds=seeds)  # resumes at step 2, saves stacked

    def record(r):
        return r["runs"][0] if seeds > 1 else r

    assert record(resumed)["steps"] == 4 and np.isfinite(record(resumed)["test_error"])
    assert record(first)["steps"] == 2
    mngr = checkpoint.manager(str(tmp_path))
    assert sorted(mngr.all_steps()) == [2, 4]
    mngr.close()
