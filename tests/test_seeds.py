"""Several seeds in one program: each seed trains exactly as it would alone, and seeds differ."""

import json
import os
import re

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from tb_events import assert_events_mirror_metrics

from resnet_jax import configs
from resnet_jax.analysis.load import load_run
from resnet_jax import experiments
from resnet_jax.analysis import report
from resnet_jax.configs import cifar_config
from resnet_jax.data import load_dataset
from resnet_jax.runs import load_results
from resnet_jax.train import checkpoint
from resnet_jax.train.engine import create_engine, put_dataset
from resnet_jax.train.loop import ConfigError, TrainingDiverged, _check_finite, train_and_evaluate
from resnet_jax.configs import validate
from resnet_jax.train.seeds import SeedsEngine, SeedsFeed, seeds_mesh

SEEDS = (3, 4)
STEPS = 3


def small_config(**overrides):
    config = cifar_config("cifar_resnet8")
    configs.override(config, dataset="digits", batch_size=32, bn_group_size=16, eval_batch_size=360,
                             steps=STEPS, log_every=STEPS, eval_every=STEPS, checkpoint_every=STEPS,
                             progress=False)
    configs.override(config, **overrides)
    return config


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def alone(digits):
    """Each seed trained on its own for STEPS steps: (params, batch_stats), evaluation, losses."""
    engine = create_engine(small_config(), digits.crop_padding, digits.num_classes)
    data = put_dataset(digits, engine.mesh, 360)
    runs = {}
    for seed in SEEDS:
        state, losses = engine.init_state(digits.image_shape, seed), []
        for _ in range(STEPS):
            state, metrics = engine.train_chunk(state, data, 1)
            losses.append(float(metrics["loss"][0]))
        runs[seed] = jax.device_get(((state.params, state.batch_stats), engine.evaluate(state, data),
                                     losses))
    return runs


def assert_same_as_alone(alone, seed, variables, atol=None, rel_norm=None):
    """Elementwise within `atol`, or the whole model within `rel_norm` of the alone run's (in norm:
    BN biases start at zero, so their own relative error says nothing)."""
    if atol is not None:
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=atol, rtol=0), variables,
                     alone[seed][0])
        return
    flat = lambda tree: np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])  # noqa: E731
    got, want = flat(variables), flat(alone[seed][0])
    assert np.linalg.norm(got - want) <= rel_norm * np.linalg.norm(want)


@pytest.mark.numerics
def test_train_seeds_trains_and_logs_each_seed_as_alone(digits, alone, tmp_path):
    """`--seeds 2` (mode "loop", the default): the shared trainer, its logs and the report."""
    programs = (SeedsEngine.train_chunk, SeedsEngine.evaluate)
    before = [p._cache_size() for p in programs]
    summary = train_and_evaluate(small_config(seed=SEEDS[0], num_seeds=len(SEEDS)), str(tmp_path))
    results = summary["runs"]
    # One compiled step and one evaluation for the whole run (the state keeps its sharding).
    assert [p._cache_size() - b for p, b in zip(programs, before)] == [1, 1]
    assert [r["seed"] for r in results] == list(SEEDS)
    final = ocp.StandardCheckpointer().restore(str(tmp_path / "checkpoints" / str(STEPS) / "state"))
    for i, (seed, r) in enumerate(zip(SEEDS, results)):
        assert_same_as_alone(alone, seed, jax.tree.map(lambda x: x[i], (final["params"],
                                                                        final["batch_stats"])), 1e-6)
        assert r["test_error"] == pytest.approx(float(alone[seed][1]["test_error"]), abs=1e-6)
        workdir = tmp_path / f"seed{seed}"
        records = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
        assert [rec["step"] for rec in records] == [STEPS]
        assert records[-1]["test_error"] == pytest.approx(r["test_error"])
        config = json.load(open(workdir / "config.json"))  # retrains this seed alone
        assert config["run"]["seed"] == seed and config["run"]["num_seeds"] == 1
        assert_events_mirror_metrics(str(workdir))  # TensorBoard: one run per seed
    a, b = (alone[s][0][0]["fc"]["kernel"] for s in SEEDS)
    assert np.abs(a - b).max() > 0.01  # different seeds, different models
    table6 = experiments.get("table6")  # the report averages the seeds
    rows = report.rows(load_results(str(tmp_path)), table6.tables[0], table6)
    assert len(rows) == 1 and rows[0]["runs"] == len(SEEDS)
    assert rows[0]["test_error"] == pytest.approx(100 * np.mean([r["test_error"] for r in results]))
    assert json.load(open(tmp_path / "seeds.json")) == summary
    run = load_run(str(tmp_path / f"seed{SEEDS[1]}"))  # analysis tools open one seed's folder
    assert run.step == STEPS
    assert_same_as_alone(alone, SEEDS[1],
                         jax.device_get((run.state.params, run.state.batch_stats)), 1e-6)
    assert summary["seeds"] == list(SEEDS) and summary["seeds_mode"] == "loop"
    # A finished run resumes without training: same results, no second record.
    again = train_and_evaluate(small_config(seed=SEEDS[0], num_seeds=len(SEEDS)), str(tmp_path))
    assert again["test_errors"] == pytest.approx(summary["test_errors"], abs=1e-7)
    assert [len(open(tmp_path / f"seed{s}" / "metrics.jsonl").readlines()) for s in SEEDS] == [1, 1]
    for s in SEEDS:
        assert_events_mirror_metrics(str(tmp_path / f"seed{s}"))
    # Resuming with another number of seeds is a different run: one clear error, nothing written.
    with pytest.raises(ConfigError, match="num_seeds=2, not 3"):
        train_and_evaluate(small_config(seed=SEEDS[0], num_seeds=3), str(tmp_path))
    assert not (tmp_path / f"seed{SEEDS[0] + 2}").exists()


class _Manager:  # what _check_finite's checkpoint.Saver asks of an orbax CheckpointManager
    directory = "/runs/x/checkpoints"

    def close(self):
        pass

    def latest_step(self):
        return 10


def test_non_finite_loss_names_the_step_and_the_seed():
    pending = [{"loss": np.array([[1.0, 1.0], [1.0, 1.0]])},
               {"loss": np.array([[1.0, 1.0], [1.0, np.nan]])}]
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 14 \(seed 4\); last good "
                                               r"checkpoint: step 10"):
        _check_finite(pending, 11, None, checkpoint.Saver(_Manager()), SEEDS)


@pytest.mark.numerics
def test_vmapped_seeds_train_as_alone(digits, alone):
    """vmap with convolutions as patch matmuls (`conv_impl=im2col`: per-seed kernels make one
    batched matmul per layer; with nn.Conv vmap makes grouped convolutions, jax's batching rule):
    float reassociation, hence the tolerance. The steps run as one scanned chunk (the accelerator
    path) with the epoch orders kept by the loop's SeedsFeed."""
    engine = create_engine(small_config(conv_impl="im2col"), digits.crop_padding,
                           digits.num_classes, mesh=seeds_mesh(len(SEEDS), "vmap"))
    multi = SeedsEngine(engine, SEEDS, "vmap")
    data = put_dataset(digits, engine.mesh, 360)
    state = multi.init_state(digits.image_shape)
    state, metrics = SeedsFeed(multi, data).train_chunk(state, STEPS)
    assert metrics["loss"].shape == (len(SEEDS), STEPS)
    for i, (seed, s) in enumerate(zip(SEEDS, multi.unstack(state))):
        np.testing.assert_allclose(metrics["loss"][i], alone[seed][2], rtol=1e-3)  # same batches
        # vmapped convs round differently; early SGD at lr 0.1 amplifies it (measured ~1e-4;
        # another seed is ~1)
        assert_same_as_alone(alone, seed, jax.device_get((s.params, s.batch_stats)), rel_norm=1e-3)


@pytest.mark.numerics
@pytest.mark.slow  # two processes
def test_seeds_over_two_processes_train_as_alone(alone, tmp_path):
    """`--seeds 2 --config.seeds_mode=devices` over 2 processes of 1 device: one seed per process,
    through the whole trainer (each process holds only its seed's state; process 0 logs both), and
    the compiled step has no collective (the seeds never talk)."""
    import scaleout_helpers as h  # noqa: PLC0415

    workdir, dump = str(tmp_path / "run"), tmp_path / "hlo"
    coordinator = f"localhost:{h.free_port()}"
    flags = ["--seeds=2", "--config.seeds_mode=devices", f"--coordinator={coordinator}",
             "--num_processes=2"]
    env = h.env(1)
    env["XLA_FLAGS"] += (f" --xla_dump_to={dump} --xla_dump_hlo_as_text"
                         " --xla_dump_hlo_module_re=train_chunk")
    env["JAX_ENABLE_COMPILATION_CACHE"] = "false"  # a cached program would not be dumped
    procs = [h.start(h.train_cmd(workdir, *flags, f"--process_id={i}", seed=SEEDS[0], steps=STEPS,
                                 log_every=STEPS, eval_every=STEPS, checkpoint_every=STEPS), env)
             for i in range(2)]
    for p in procs:
        _, stderr = p.communicate(timeout=400)
        assert p.returncode == 0, stderr[-3000:]
    for seed in SEEDS:
        state = load_run(os.path.join(workdir, f"seed{seed}")).state  # this seed's slice
        assert_same_as_alone(alone, seed, jax.device_get((state.params, state.batch_stats)), 1e-6)
        result = json.load(open(os.path.join(workdir, f"seed{seed}", "results.json")))
        assert result["test_error"] == pytest.approx(float(alone[seed][1]["test_error"]), abs=1e-6)
        assert result["processes"] == 2 and result["seeds_mode"] == "devices"
    programs = [p.read_text() for p in dump.glob("*train_chunk*after_optimizations.txt")]
    assert programs and all("convolution" in hlo for hlo in programs)
    for hlo in programs:
        assert not re.search("all-gather|all-reduce|collective-permute|all-to-all", hlo), "seeds talk"


@pytest.mark.parametrize("overrides,match", [
    ({"num_seeds": 0}, "num_seeds must be positive"),
    ({"num_seeds": 2, "seeds_mode": "pmap"}, "unknown seeds_mode"),
    ({"num_seeds": 2, "dataset": "imagenet", "model": "imagenet_resnet50"}, "device-resident dataset"),
])
def test_bad_seed_configs_rejected(overrides, match):
    with pytest.raises(ConfigError, match=match):
        validate(small_config(**overrides))


def test_devices_mode_splits_each_batch_over_its_seeds_devices_only():
    # 2 seeds on 8 devices: 4 devices per seed, batch 30 does not split over 4.
    with pytest.raises(ConfigError, match="4 devices each seed gets"):
        validate(small_config(num_seeds=2, seeds_mode="devices", batch_size=30, bn_group_size=2),
                 num_devices=8)
    validate(small_config(num_seeds=2, seeds_mode="devices", batch_size=32), num_devices=8)
    # 5 seeds on 5 devices: one each, so the paper's batch 128 needs no split at all.
    validate(small_config(num_seeds=5, seeds_mode="devices", batch_size=128,
                                 eval_batch_size=128), num_devices=5)
