"""Run with XLA_FLAGS=--xla_force_host_platform_device_count=8 (tests/test_multidevice.py does):
prints the largest differences between 8-device and 1-device computations as JSON."""

from __future__ import annotations

import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from resnet_jax import configs
from resnet_jax.configs import cifar_config
from resnet_jax.data.base import ArrayDataset
from resnet_jax.models import create_model
from resnet_jax.train.distributed import global_batch_from_process_local
from resnet_jax.train.engine import create_engine, make_mesh, put_dataset

BATCH, GROUP = 32, 16


def max_diff(a, b) -> float:
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def tiny_dataset() -> ArrayDataset:
    rng = np.random.default_rng(0)
    return ArrayDataset("tiny", rng.integers(0, 256, (96, 8, 8, 3), dtype=np.uint8),
                        rng.integers(0, 10, 96).astype(np.int32),
                        rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8),
                        rng.integers(0, 10, 40).astype(np.int32), num_classes=10, crop_padding=1,
                        eval_split="test")


def train_steps_global_bn(ds: ArrayDataset) -> dict:
    """Two full Engine steps (gather, augment, SGD) with sync BN: 8 devices vs 1."""
    config = cifar_config("cifar_resnet8")
    configs.override(config, batch_size=BATCH, bn_group_size=0, eval_batch_size=40)
    out, init = {}, None
    for name, devices in (("one", jax.devices()[:1]), ("eight", jax.devices())):
        engine = create_engine(config, ds.crop_padding, ds.num_classes, mesh=make_mesh(devices))
        data = put_dataset(ds, engine.mesh, 40)
        init = engine.init_state(ds.image_shape) if init is None else init
        # The same initial values on both meshes (copied: train_chunk donates its input state).
        state = jax.device_put(jax.tree.map(jnp.copy, init), engine.replicated)
        metrics = []
        for _ in range(2):
            state, m = engine.train_chunk(state, data, 1)
            metrics.append(m)
        out[name] = (state, metrics)
    one, eight = out["one"], out["eight"]
    return {"devices": len(eight[0].params["conv1"]["kernel"].sharding.device_set),
            "params": max_diff(one[0].params, eight[0].params),
            "batch_stats": max_diff(one[0].batch_stats, eight[0].batch_stats),
            "opt_state": max_diff(one[0].opt_state, eight[0].opt_state),
            "metrics": max_diff(one[1], eight[1])}


def group_bn_vs_group_by_group() -> dict:
    """BN over groups of 16 with the batch split over 8 devices (4 images each, so every group spans
    4 devices) vs. sync BN applied to each group alone on one device."""
    grouped = create_model("cifar_resnet8", bn_group_size=GROUP)
    single = create_model("cifar_resnet8", bn_group_size=0)
    rng = np.random.default_rng(1)
    images = rng.normal(size=(BATCH, 8, 8, 3)).astype(np.float32)
    labels = rng.integers(0, 10, BATCH).astype(np.int32)
    variables = single.init(jax.random.key(0), images[:1], train=False)
    # Non-trivial running statistics, to see the update average the groups' statistics.
    variables = {"params": variables["params"],
                 "batch_stats": jax.tree.map(lambda x: x + 0.5, variables["batch_stats"])}

    def loss_grads_stats(model, params, batch_stats, x, y):
        def loss_fn(p):
            logits, new = model.apply({"params": p, "batch_stats": batch_stats}, x, train=True,
                                      mutable=["batch_stats"])
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
            return loss, (logits, new["batch_stats"])
        (loss, (logits, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        return loss, logits, grads, stats

    mesh = make_mesh()
    shard = NamedSharding(mesh, P("data"))
    fn8 = jax.jit(lambda p, s, x, y: loss_grads_stats(grouped, p, s, x, y),
                  out_shardings=NamedSharding(mesh, P()))
    on8 = fn8(*jax.device_put((variables["params"], variables["batch_stats"]), NamedSharding(mesh, P())),
              jax.device_put(images, shard), jax.device_put(labels, shard))
    fn1 = jax.jit(lambda p, s, x, y: loss_grads_stats(single, p, s, x, y))
    one = jax.device_put(variables, jax.devices()[0])
    parts = [fn1(one["params"], one["batch_stats"], images[i:i + GROUP], labels[i:i + GROUP])
             for i in range(0, BATCH, GROUP)]
    mean = lambda *xs: sum(xs) / len(xs)  # noqa: E731 (the batch loss is the mean of group losses)
    reference = (mean(*[p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                 jax.tree.map(mean, *[p[2] for p in parts]), jax.tree.map(mean, *[p[3] for p in parts]))
    return {"loss": max_diff(on8[0], reference[0]), "logits": max_diff(on8[1], reference[1]),
            "grads": max_diff(on8[2], reference[2]), "batch_stats": max_diff(on8[3], reference[3])}


def host_fed_batch() -> dict:
    mesh = make_mesh()
    local = np.arange(BATCH * 3, dtype=np.float32).reshape(BATCH, 3)
    rows = slice(0, BATCH)  # one process feeds every row of the global batch
    batch = global_batch_from_process_local(local[rows], mesh)
    return {"rows": [rows.start, rows.stop], "shards": len(batch.addressable_shards),
            "shard_rows": batch.addressable_shards[1].data.shape[0],
            "diff": float(np.max(np.abs(np.asarray(batch) - local)))}


def timed(fn, *args):
    t, c = time.perf_counter(), time.process_time()
    result = fn(*args)
    print(f"{fn.__name__}: {time.perf_counter() - t:.1f}s ({time.process_time() - c:.1f}s CPU)",
          file=sys.stderr)
    return result


if __name__ == "__main__":
    assert jax.device_count() == 8, jax.devices()
    print(json.dumps({"train_steps_global_bn": timed(train_steps_global_bn, tiny_dataset()),
                      "group_bn": timed(group_bn_vs_group_by_group),
                      "host_fed": timed(host_fed_batch)}))
